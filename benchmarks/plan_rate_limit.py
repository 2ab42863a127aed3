"""A plan under Exotel-style rate limiting: no 429s, and the allowed rate used.

The sandbox and the client both allow 6,000 requests a minute (a strict sliding window
on the sandbox; the client's window is a second longer, for network jitter). A no-op
plan of 1,300 trunks needs 6,513 calls, more than one window allows, so the client must
hold back. Prints the 429 responses the sandbox sent (target: 0) and the rate achieved
against the allowed 100 a second (target: at least 90%).

    python benchmarks/plan_rate_limit.py [--trunks 1300] [--per-minute 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from estate import ENVIRON, Sandbox, build

from reconciler.cli import logs
from reconciler.manifests.load import load
from reconciler.pipeline import Options, make_plan


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=1300)
    parser.add_argument("--per-minute", type=int, default=6000)
    args = parser.parse_args()
    logs.configure()  # warnings only, as the CLI does by default
    with tempfile.TemporaryDirectory() as directory:
        state = build(Path(directory), args.trunks)
        sandbox = Sandbox("--state", str(state), "--rate-limit", str(args.per_minute))
        try:
            manifests = load(Path(directory) / "manifests")
            environ = {**ENVIRON, "EXOTEL_BASE_URL": sandbox.url}
            options = Options(per_minute=args.per_minute)
            started = time.perf_counter()
            plan = asyncio.run(make_plan(manifests, accounts=[], environ=environ, options=options))
            elapsed = time.perf_counter() - started
            stats = sandbox.stats()
        finally:
            sandbox.stop()
    calls = sum(account.calls for account in plan.accounts)
    refused = stats["by_status"].get("429", 0)  # type: ignore[attr-defined]
    allowed = args.per_minute / 60
    achieved = calls / elapsed
    print(f"no-op plan of {args.trunks} trunks, sandbox and client at {args.per_minute}/minute")
    print(f"  calls: {calls} in {elapsed:.1f} s; actions: {len(plan.actions)}")
    print(f"  429 responses: {refused} (target: 0)")
    print(
        f"  rate: {achieved:.1f}/s of {allowed:.0f}/s allowed = {achieved / allowed:.0%} "
        "(target: at least 90%)"
    )
    met = refused == 0 and achieved >= 0.9 * allowed and not plan.actions
    print("result:", "targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
