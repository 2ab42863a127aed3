"""Both ends of N trunks, end to end through the CLI, against ``reconciler sandbox``
(Exotel's API and LiveKit's SIP API in one process, no added latency, no rate limit).

Each trunk: 2 DIDs, a whitelisted IP, a TLS destination, the alias, a credential and a
LiveKit partner (so an inbound trunk, a dispatch rule and an outbound trunk on LiveKit).
Prints the wall time of each command as a user sees it (process start included): plan,
apply, a plan with nothing to do, drift, and an apply rotating every trunk's password
(Exotel's credential, then LiveKit's outbound trunk); the LiveKit objects made; and
what the LiveKit end adds: LiveKit is read with three
requests per partner whatever the number of trunks, so a no-change plan of N trunks
with and without the partner differs by a constant, not by N.

    python benchmarks/livekit_partner.py [--trunks 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from estate import AUTH, PASSWORD, Sandbox
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # LiveKit's dev secret

ACCOUNTS = """\
accounts:
  demo:
    sid: demo
    api_key: ${EXOTEL_API_KEY}
    api_token: ${EXOTEL_API_TOKEN}
    rate_limit: 0
    signalling:
      addresses: [203.0.113.10]
partners:
  lk:
    platform: livekit
    url: https://bench.livekit.cloud
    api_key: ${LIVEKIT_API_KEY}
    api_secret: ${LIVEKIT_API_SECRET}
"""


def trunk(index: int, *, partner: bool) -> str:
    return f"""\
  - name: bot_{index:04d}
    account: demo
    phone_numbers: ["+9180{4000_0000 + 2 * index:08d}", "+9180{4000_0001 + 2 * index:08d}"]
    whitelisted_ips: [44.248.{index // 250}.{index % 250 + 1}]
    destination_uris: ["bench.sip.livekit.cloud:5061;transport=tls"]
    alias: "+9180{4000_0000 + 2 * index:08d}"
    credentials:
      - username: bot_{index:04d}
        password: ${{SIP_PASSWORD}}
{"    partner: lk" if partner else "    partner: none"}
"""


def write(folder: Path, count: int, *, partner: bool) -> None:
    (folder / "manifests").mkdir(parents=True, exist_ok=True)
    (folder / "manifests" / "accounts.yaml").write_text(ACCOUNTS)
    body = "".join(trunk(i, partner=partner) for i in range(count))
    (folder / "manifests" / "trunks.yaml").write_text("trunks:\n" + body)


def timed(folder: Path, environ: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=folder,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"reconciler {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return elapsed


async def objects(url: str) -> int:
    async with api.LiveKitAPI(url, "devkey", "secret") as lk:
        inbound = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        outbound = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        rules = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        return len(inbound.items) + len(outbound.items) + len(rules.items)


def run(count: int, *, partner: bool) -> dict[str, float]:
    sandbox = Sandbox("--rate-limit", "0")
    try:
        environ = {
            "EXOTEL_BASE_URL": sandbox.url,
            "EXOTEL_API_KEY": AUTH[0],
            "EXOTEL_API_TOKEN": AUTH[1],
            "LIVEKIT_URL": sandbox.url,
            "LIVEKIT_API_KEY": "devkey",
            "LIVEKIT_API_SECRET": "secret",
            "SIP_PASSWORD": PASSWORD,
        }
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work)
            write(folder, count, partner=partner)
            figures = {
                "plan (all new)": timed(folder, environ, "plan"),
                "apply": timed(folder, environ, "apply", "--auto-approve"),
                "plan (no changes)": timed(folder, environ, "plan", "--detailed-exitcode"),
                "drift": timed(folder, environ, "drift"),
            }
            manifest = folder / "manifests" / "trunks.yaml"
            rotated = manifest.read_text().replace(
                "password: ${SIP_PASSWORD}",
                "password: ${SIP_PASSWORD}\n        password_version: 2",
            )
            manifest.write_text(rotated)
            figures["apply (rotate all)"] = timed(folder, environ, "apply", "--auto-approve")
            figures["LiveKit objects"] = asyncio.run(objects(sandbox.url))
            return figures
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunks", type=int, default=100)
    count = parser.parse_args().trunks
    both = run(count, partner=True)
    alone = run(count, partner=False)
    print(f"{count} trunks, each with a LiveKit end (inbound trunk, dispatch rule, outbound)")
    print(f"{'command':<20}{'both ends':>12}{'Exotel only':>14}{'LiveKit adds':>14}")
    for name in ("plan (all new)", "apply", "plan (no changes)", "drift", "apply (rotate all)"):
        added = both[name] - alone[name]
        print(f"{name:<20}{both[name]:>11.2f}s{alone[name]:>13.2f}s{added:>13.2f}s")
    made = int(both["LiveKit objects"])
    print(f"LiveKit objects made: {made} (expected {3 * count})")
    if made != 3 * count:
        raise SystemExit("apply did not make every LiveKit object exactly once")


if __name__ == "__main__":
    main()
