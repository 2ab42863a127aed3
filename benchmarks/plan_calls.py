"""What a plan costs in API calls and time, against the sandbox, beside its bounds.

1. No-op plan of 500 trunks (3 DIDs, 2 IPs, 2 destinations, 1 credential each) against
   ``reconciler sandbox --latency-ms 200 --rate-limit 0``:
   - API calls made / the minimum (one GET per collection per trunk, plus extra pages,
     plus the trunk list in profile full): target 1.00;
   - wall time against calls x 200 ms / 50 connections: target within 1.25x;
   - the client's CPU time per request (httpx costs about 2 ms here), for the record.
2. ``--refresh changed`` on 1,000 trunks with 3 changed: API calls, target 3 x 5 = 15
   (one GET per collection of each changed trunk, nothing for the other 997).

    python benchmarks/plan_calls.py [--trunks 500] [--refresh-trunks 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from estate import ENVIRON, Sandbox, build

from reconciler.cli import logs
from reconciler.exotel.session import PAGE_SIZE
from reconciler.manifests.load import load
from reconciler.pipeline import Options, make_plan

LATENCY_MS = 200
CONNECTIONS = 50
COLLECTIONS_FULL = 5  # DIDs, IPs, destinations, credentials, settings


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_plan(folder: Path, url: str, refresh: str = "all") -> tuple[int, float, float, int]:
    """(calls, wall seconds, client CPU seconds, actions) of one plan."""
    manifests = load(folder)
    environ = {**ENVIRON, "EXOTEL_BASE_URL": url}
    started_wall, started_cpu = time.perf_counter(), cpu()
    # The sandbox runs without a rate limit here, so the client does too (per_minute=0):
    # at Exotel's 200 a minute this plan alone would take 12.5 minutes.
    options = Options(refresh=refresh, per_minute=0)
    plan = asyncio.run(make_plan(manifests, accounts=[], environ=environ, options=options))
    wall, used = time.perf_counter() - started_wall, cpu() - started_cpu
    return sum(a.calls for a in plan.accounts), wall, used, len(plan.actions)


def noop_at_latency(trunks: int) -> bool:
    with tempfile.TemporaryDirectory() as directory:
        state = build(Path(directory), trunks)
        sandbox = Sandbox(
            "--state", str(state), "--latency-ms", str(LATENCY_MS), "--rate-limit", "0"
        )
        try:
            calls, wall, used, actions = run_plan(Path(directory) / "manifests", sandbox.url)
        finally:
            sandbox.stop()
    minimum = trunks * COLLECTIONS_FULL + -(-trunks // PAGE_SIZE)  # list pages, rounded up
    ideal = calls * LATENCY_MS / 1000 / CONNECTIONS
    print(f"no-op plan of {trunks} trunks at {LATENCY_MS} ms latency: {actions} actions")
    print(f"  API calls: {calls} made / {minimum} minimum = {calls / minimum:.2f} (target: 1.00)")
    print(
        f"  wall time: {wall:.2f} s vs {ideal:.2f} s (calls x {LATENCY_MS} ms / {CONNECTIONS}) "
        f"= {wall / ideal:.2f}x (target: at most 1.25x)"
    )
    print(f"  client CPU: {used / calls * 1000:.2f} ms per request ({used:.1f} s in all)")
    return actions == 0 and calls == minimum and wall <= 1.25 * ideal


def refresh_changed(trunks: int, changed: int = 3) -> bool:
    with tempfile.TemporaryDirectory() as directory:
        state = build(Path(directory), trunks)
        folder = Path(directory) / "manifests"
        first = folder / "trunks_000.yaml"
        text = first.read_text()
        for index in range(changed):  # one more whitelisted IP on each of the first trunks
            a, b = divmod(index, 200)
            old = f"whitelisted_ips: [44.{a + 1}.{b}.1,"
            text = text.replace(old, f"whitelisted_ips: [52.66.{index}.1, 44.{a + 1}.{b}.1,", 1)
        first.write_text(text)
        sandbox = Sandbox("--state", str(state), "--rate-limit", "0")
        try:
            calls, wall, _, actions = run_plan(folder, sandbox.url, refresh="changed")
        finally:
            sandbox.stop()
    bound = changed * COLLECTIONS_FULL
    print(f"--refresh changed on {trunks} trunks with {changed} changed: {actions} actions")
    print(f"  API calls: {calls} (target: {changed} x {COLLECTIONS_FULL} = {bound}); {wall:.2f} s")
    return actions == changed and calls == bound


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=500)
    parser.add_argument("--refresh-trunks", type=int, default=1000)
    args = parser.parse_args()
    logs.configure()  # warnings only, as the CLI does by default
    met = noop_at_latency(args.trunks)
    met = refresh_changed(args.refresh_trunks) and met
    print("result:", "targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
