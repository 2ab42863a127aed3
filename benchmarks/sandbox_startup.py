"""Start-up and shut-down time of ``reconciler sandbox``, against the contract's bounds.

Measures, over several runs, the time from spawning the process to its
``listening on URL`` line (bound: under 2 seconds) and from SIGTERM to exit while a
response is held by a ``timeout_after_commit`` fault (bound: within 5 seconds).
Exits 1 when a bound is missed.

    python benchmarks/sandbox_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import subprocess
import sys
import threading
import time

import httpx

START_BOUND = 2.0
STOP_BOUND = 5.0


def one_run() -> tuple[float, float]:
    spawned = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().split()[-1]
    started = time.monotonic() - spawned
    httpx.post(
        f"{url}/_sandbox/faults", json=[{"path": "*", "fault": "timeout_after_commit", "count": 1}]
    )

    def held() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the held call is cut off: expected
            httpx.get(f"{url}/v2/accounts/demo/trunks", auth=("demo_key", "demo_token"), timeout=60)

    caller = threading.Thread(target=held)
    caller.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    stopped = time.monotonic() - signalled
    caller.join()
    return started, stopped


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    starts, stops = zip(*(one_run() for _ in range(args.runs)), strict=True)
    print(f"runs: {args.runs}")
    for label, values, bound in (
        ("start to listening", starts, START_BOUND),
        ("SIGTERM to exit, response held", stops, STOP_BOUND),
    ):
        median, worst = statistics.median(values), max(values)
        print(f"{label}: median {median:.2f} s, worst {worst:.2f} s (bound: under {bound:g} s)")
    met = max(starts) < START_BOUND and max(stops) < STOP_BOUND
    print("result:", "bounds met" if met else "BOUND MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
