"""``make demo``: the whole story against the embedded sandbox, in one command.

Starts ``reconciler sandbox`` on a free loopback port, then runs the real CLI on a copy
of the example manifests (so the repository's own ledger is never touched):

    validate -> plan (both ends: Exotel's trunks and the bot's LiveKit end) -> apply
    -> plan (no changes) -> render-partner (the Kamailio and Asterisk ends) -> changes
    by hand through the sandbox's Exotel and LiveKit APIs -> drift (exit 2, naming them)
    -> apply -> drift (exit 0)
    -> state list (the SIDs a Connect applet dials)
    -> a call to a contact-centre DID through the sandbox's SIP side (Exotel in a box),
       answered by a stand-in SBC over TLS: its ladder
    -> serve, asked as Exotel asks: /connect and /handoff inside and outside hours
    -> a trunk replaced through the manifests; serve answers with its new SID, no restart

and stops everything. Needs no Exotel account and no network. Each step prints its
command and exit code; the demo exits 0 only when every step answered as expected.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import demo_partner
import httpx
import trustme
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

ROOT = Path(__file__).parents[1]
AUTH = ("demo_key", "demo_token")
LIVEKIT = ("devkey", "secret")  # the sandbox's LiveKit key, as `livekit-server --dev` has


# The sandbox's LiveKit secret is LiveKit's short development one; the SDK's JWT library
# would warn on each request.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


class StepFailedError(Exception):
    pass


# The contact centre's SBCs (manifests/contact_centre.yaml), all played by one stand-in.
SBCS = ("sbc1.mum.example.com", "sbc2.mum.example.com", "dr-sbc.hyd.example.com")


def start_partner(folder: Path) -> tuple[int, Path]:
    """The stand-in SBC over TLS, with a certificate for the SBCs' names from a demo CA."""
    authority = trustme.CA()
    leaf = authority.issue_cert(*SBCS)
    ca = folder / "demo-ca.pem"
    authority.cert_pem.write_to_path(str(ca))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return demo_partner.start(context), ca


def start_sandbox(partner: int, ca: Path) -> tuple[subprocess.Popen[str], str]:
    routes = [f"--connect-to={host}:5061:127.0.0.1:{partner}" for host in SBCS]
    process = subprocess.Popen(
        [
            sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--seed", "1",
            "--sip-port", "0", "--sip-ca", str(ca), *routes,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    process.stdout.readline()  # sip listening on ...
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
    asyncio.run(allow_anyone_on_livekit(url))
    print(
        f"\n=== A change by hand, outside git\n"
        f"Through Exotel's API: {first['phone_number']} switched from flow to pstn on "
        "blr_voicebot, and 52.66.100.1 added to its ACL.\n"
        "Through LiveKit's API: the bot's inbound trunk opened to any address."
    )


async def allow_anyone_on_livekit(url: str) -> None:
    """The LiveKit end changed by hand, as someone debugging refused calls might: its
    inbound trunk opened to every address."""
    async with api.LiveKitAPI(url, *LIVEKIT) as lk:
        listed = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        for trunk in listed.items:
            update = api.ListUpdate(add=["0.0.0.0/0"])
            await lk.sip.update_inbound_trunk_fields(trunk.sip_trunk_id, allowed_addresses=update)


# A Wednesday, inside and outside the business hours of manifests/routes.yaml (IST).
INSIDE, OUTSIDE = "2026-12-02T11:00", "2026-12-02T21:30"
BOT_DID, CALLER = "08040264208", "09812345678"  # as Exotel sends them: national form


def start_serve(folder: Path, now: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """serve on the example routes with a fixed clock (--now), to ask at two times of day."""
    print(f"\n=== serve the routes as if it were {now} (Asia/Kolkata)")
    print(f"$ reconciler serve manifests --port 0 --now {now} --reload-interval 0.2 &")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", "0", "--now", now,
         "--reload-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("serving routes on "):
        process.kill()
        raise StepFailedError(f"serve did not start: {line!r}")
    print(line, end="")
    return process, line.split()[3]


def ask(url: str, path: str, title: str) -> dict[str, object]:
    """A request shaped like Exotel's: CallSid, CallFrom, CallTo, Direction."""
    query = {"CallSid": "demo0001", "CallFrom": CALLER, "CallTo": BOT_DID, "Direction": "incoming"}
    answer = httpx.get(url + path, params=query, timeout=10)
    body: dict[str, object] = answer.json()
    print(f"\n=== {title}\n$ curl '{answer.request.url}'\n{answer.status_code} {json.dumps(body)}")
    return {"status": answer.status_code, **body}


def routing(folder: Path, env: dict[str, str], workdir: Path) -> None:
    """serve on the example routes, asked at two times of day; then a trunk replaced."""
    inside, inside_url = start_serve(folder, INSIDE, env)
    outside, outside_url = start_serve(folder, OUTSIDE, env)
    try:
        connect = ask(
            inside_url, "/connect", f"Connect applet's Dynamic URL at {INSIDE} (inside hours)"
        )
        if connect.get("record") is not True or "X-Bot-Persona=support" not in str(connect):
            raise StepFailedError("inside hours, the business-hours rule should answer")
        night = ask(outside_url, "/connect", f"The same call at {OUTSIDE} (outside hours)")
        if "X-Bot-Persona=after_hours" not in str(night):
            raise StepFailedError("outside hours, the default should answer")
        if ask(inside_url, "/handoff", "Passthru after the bot, inside hours")["status"] != 200:
            raise StepFailedError("inside hours, the handoff should answer 200 (to the agents)")
        if ask(outside_url, "/handoff", "Passthru after the bot, outside hours")["status"] != 302:
            raise StepFailedError("outside hours, the handoff should answer 302 (hang up)")
        before = str(connect["destination"]["trunk"])  # type: ignore[index]
        replace_trunk(folder, env, workdir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            query = {"CallSid": "demo0002", "CallFrom": CALLER, "CallTo": BOT_DID}
            after = httpx.get(inside_url + "/connect", params=query, timeout=10).json()
            if after["destination"]["trunk"] != before:
                break
            time.sleep(0.2)
        else:
            raise StepFailedError("serve kept answering with the replaced trunk's old SID")
        ask(inside_url, "/connect", "serve, not restarted, dials the new SID")
        print(f"(before the replacement: {before})")
    finally:
        for process in (inside, outside):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def replace_trunk(folder: Path, env: dict[str, str], workdir: Path) -> None:
    """The bot's trunk rebuilt: unprotect it (a protected trunk is never replaced), then a
    change Exotel cannot make in place (its domain), which allow_replace turns into -/+."""
    manifest = folder / "voice_bot.yaml"
    text = manifest.read_text()
    unprotected = re.sub(r"protect: true.*", "protect: false", text, count=1)
    manifest.write_text(unprotected)
    print("\n=== A trunk replaced through the manifests\nvoice_bot.yaml: protect: false")
    step(
        "Apply: record that the trunk is no longer protected",
        "apply",
        "--auto-approve",
        env=env,
        cwd=workdir,
    )
    manifest.write_text(
        unprotected.replace(
            "    protect: false",
            "    protect: false\n    allow_replace: true\n"
            "    domain_name: blr.voicebot.pstn.exotel.com",
        )
    )
    print("voice_bot.yaml: allow_replace: true, domain_name: blr.voicebot.pstn.exotel.com")
    planned = step(
        "Plan: the domain cannot change in place",
        "plan",
        "--detailed-exitcode",
        env=env,
        cwd=workdir,
        expect=2,
    )
    if "-/+" not in planned:
        raise StepFailedError("the plan should replace the trunk (-/+)")
    step(
        "Apply: the trunk is rebuilt with a new SID (its 7 objects with it: over the "
        "default share of deletions, so the limit is raised for this reviewed replacement)",
        "apply",
        "--auto-approve",
        "--max-delete",
        "7",
        env=env,
        cwd=workdir,
    )
    step("The ledger's new SID", "state", "list", env=env, cwd=workdir)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    partner, ca = start_partner(workdir)
    process, url = start_sandbox(partner, ca)
    print(f"Started the Exotel sandbox at {url} (account demo), with its SIP side on.")
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
        "SIP_PASSWORD_BLR_BOT": "demo_bot_password_1",
        # The sandbox serves LiveKit's SIP API too, with LiveKit's development key.
        "LIVEKIT_URL": url,
        "LIVEKIT_API_KEY": LIVEKIT[0],
        "LIVEKIT_API_SECRET": LIVEKIT[1],
        "NO_COLOR": "1",
    }
    try:
        step("Validate the example manifests", "validate", env=env, cwd=workdir)
        planned = step("Plan: both ends of every trunk", "plan", env=env, cwd=workdir)
        if "livekit_outbound_trunk/blr_livekit" not in planned:
            raise StepFailedError("the plan should hold the bot's LiveKit end beside Exotel's")
        step("Apply", "apply", "--auto-approve", env=env, cwd=workdir)
        step("Plan again: nothing to do", "plan", "--detailed-exitcode", env=env, cwd=workdir)
        rendered = step(
            "The other end of the Kamailio and Asterisk trunks, rendered from the manifests",
            "render-partner", "--output", "partner-config",
            env=env, cwd=workdir,
        )  # fmt: skip
        if "mum_kamailio/dispatcher.list" not in rendered:
            raise StepFailedError("render-partner should write the contact centre's Kamailio files")
        change_by_hand(url)
        drift = step("Drift: what changed by hand", "drift", env=env, cwd=workdir, expect=2)
        if "52.66.100.1" not in drift or "mode flow -> pstn" not in drift:
            raise StepFailedError("drift did not name both hand-made changes on Exotel")
        if "livekit_inbound_trunk blr_livekit changed by hand" not in drift:
            raise StepFailedError("drift did not name the hand-made change on LiveKit")
        step("Apply: back to what git says", "apply", "--auto-approve", env=env, cwd=workdir)
        step("Drift once more: none", "drift", env=env, cwd=workdir)
        sids = step(
            "The SIDs a Connect applet dials (sip:<SID>)", "state", "list", env=env, cwd=workdir
        )
        if "(no SID yet)" in sids:
            raise StepFailedError("every trunk should have a SID after apply")
        ladder = step(
            "A call to a contact-centre DID, through the sandbox's SIP side",
            "call", "+912247788100", "--hangup-after", "1",
            env=env, cwd=workdir,
        )  # fmt: skip
        if "completed" not in ladder.splitlines()[0] or "own tone back" not in ladder:
            raise StepFailedError("the call should be answered, with its media echoed")
        step(
            "Where a call to the bot's DID goes at 11:00",
            "trace", "+918040264208", "--from", CALLER, "--at", INSIDE,
            env=env, cwd=workdir,
        )  # fmt: skip
        routing(workdir / "manifests", env, workdir)
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
