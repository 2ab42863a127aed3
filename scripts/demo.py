"""``make demo``: the whole story against the embedded sandbox, in one command.

Starts ``reconciler sandbox`` on a free loopback port, then runs the real CLI on a copy
of the example manifests (so the repository's own ledger is never touched):

    validate -> plan -> apply -> plan (no changes) -> a change by hand through the
    sandbox's API -> plan (drift shown) -> apply (converged)

and stops the sandbox. Needs no Exotel account and no network. Exits 0 only when every
step answered as expected.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[1]
AUTH = ("demo_key", "demo_token")


class StepFailedError(Exception):
    pass


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return process, line.split()[-1]


def step(title: str, *args: str, env: dict[str, str], cwd: Path, expect: int = 0) -> str:
    print(f"\n=== {title}\n$ reconciler {' '.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout, end="")
    if result.returncode != expect:
        print(result.stderr, file=sys.stderr)
        raise StepFailedError(f"{title}: exit {result.returncode}, expected {expect}")
    print(f"(exit {result.returncode})")
    return result.stdout


def change_by_hand(url: str) -> None:
    """What an engineer might do in a hurry: edit the live trunk outside of git."""
    with httpx.Client(base_url=f"{url}/v2/accounts/demo", auth=AUTH, timeout=10) as api:
        trunks = api.get("/trunks").json()["response"]
        sid = next(
            t["data"]["trunk_sid"] for t in trunks if t["data"]["trunk_name"] == "blr_voicebot"
        )
        numbers = api.get(f"/trunks/{sid}/phone-numbers").json()["response"]
        first = numbers[-1]["data"]
        api.put(
            f"/trunks/{sid}/phone-numbers/{first['id']}",
            json={"phone_number": first["phone_number"], "mode": "pstn"},
        )
        api.post(f"/trunks/{sid}/whitelisted-ips", json={"ip": "52.66.100.1", "mask": 32})
    print(
        f"\n=== A change by hand, outside git\n"
        f"Through the API: {first['phone_number']} switched from flow to pstn on blr_voicebot, "
        "and 52.66.100.1 added to its ACL."
    )


def main() -> int:
    process, url = start_sandbox()
    print(f"Started the Exotel sandbox at {url} (account demo).")
    workdir = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    shutil.copytree(
        ROOT / "manifests", workdir / "manifests", ignore=shutil.ignore_patterns("state")
    )
    env = {
        **os.environ,
        "EXOTEL_BASE_URL": url,
        "RECONCILER_ALLOWED_HOSTS": url.split("://", 1)[1],  # the sandbox, also under CI
        "EXOTEL_API_KEY": AUTH[0],
        "EXOTEL_API_TOKEN": AUTH[1],
        "SIP_PASSWORD_MUM_PBX": "demo_pbx_password_1",
        "NO_COLOR": "1",
    }
    try:
        step("Validate the example manifests", "validate", env=env, cwd=workdir)
        step("Plan: what would change", "plan", env=env, cwd=workdir)
        step("Apply", "apply", "--auto-approve", env=env, cwd=workdir)
        step("Plan again: nothing to do", "plan", "--detailed-exitcode", env=env, cwd=workdir)
        change_by_hand(url)
        drift = step(
            "Plan: the drift shows", "plan", "--detailed-exitcode", env=env, cwd=workdir, expect=2
        )
        if "(drift)" not in drift:
            raise StepFailedError("the hand-made change was not labelled drift")
        step("Apply: back to what git says", "apply", "--auto-approve", env=env, cwd=workdir)
        step("Plan once more: converged", "plan", "--detailed-exitcode", env=env, cwd=workdir)
    except StepFailedError as failure:
        print(f"\nThe demo failed: {failure}", file=sys.stderr)
        return 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nStopped the sandbox. The ledger the apply wrote lived in a temporary copy.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
