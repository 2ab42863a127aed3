"""``reconciler serve`` under a real load generator: latency and throughput by concurrency.

Starts ``reconciler serve`` on manifests with 200 routed DIDs and their ledger (those of
``serve_decisions.py``), then runs ``wrk`` (Debian's package: ``apt-get install wrk``)
against ``GET /connect`` with Exotel-shaped queries (CallSid, CallFrom, CallTo over all
200 DIDs) at concurrency 1, 10, 50 and 200, each for ``--seconds`` and ``--rounds`` times,
one kept-alive connection per concurrent caller, as Exotel's would be. Prints, for each
concurrency, the medians over the rounds of p50/p95/p99 latency, of requests/s, and of
requests per second of the server's CPU time (from /proc: requests/s per core), next to
the bounds: p99 under 10 ms at concurrency 50 on loopback, and no errors.

    python benchmarks/serve_load.py [--seconds 10] [--rounds 3] [--workers 1]
                                    [--log-decisions all|failures|none]

Without ``wrk`` it says so and exits 0 (skipped). Exit 1 when a bound is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from serve_decisions import DIDS, write_estate

CONCURRENCY = (1, 10, 50, 200)
BOUND_CONCURRENCY = 50
BOUND_P99_MS = 10.0
# wrk's Lua: a different caller and DID per request, percentiles wrk does not print.
SCRIPT = f"""
local n = 0
request = function()
  n = n + 1
  local from = (n % 2 == 0) and "09876543210" or "09123456789"
  local path = string.format(
    "/connect?CallSid=call%d&CallFrom=%s&CallTo=080%08d&Direction=incoming",
    n, from, n % {DIDS})
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests": %d, "seconds": %f, "p50": %f, "p95": %f, "p99": %f, ' ..
    '"max": %f, "non2xx": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (and their reaped children), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def server_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    found = children.read_text().split() if children.exists() else []
    return [parent, *map(int, found)]


def wrk(url: str, connections: int, seconds: float, script: Path) -> dict[str, float]:
    threads = 1 if connections < 50 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script)]
    done = subprocess.run(
        [*command, "--timeout", "5s", url], capture_output=True, text=True, check=True
    )
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-decisions", default="all", choices=["all", "failures", "none"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("serve_load: skipped: wrk is not installed (Debian: apt-get install wrk)")
        return 0
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory) / "manifests"
        folder.mkdir()
        write_estate(folder)
        script = Path(directory) / "exotel.lua"
        script.write_text(SCRIPT)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", str(port)]
        command += ["--workers", str(args.workers), "--log-decisions", args.log_decisions]
        command += ["--at", "2026-11-26T12:00", "--max-connections", "1000"]
        server = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert server.stdout is not None
            server.stdout.readline()
            url = f"http://127.0.0.1:{port}/connect"
            time.sleep(1.0)  # the workers' first loads
            rows = []
            for connections in args.concurrency:
                rounds = []
                for _ in range(args.rounds):
                    pids = server_pids(server.pid)
                    cpu = cpu_seconds(pids)
                    result = wrk(url, connections, args.seconds, script)
                    result["cpu"] = cpu_seconds(pids) - cpu
                    rounds.append(result)
                rows.append((connections, rounds))
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(
        f"reconciler serve, {args.workers} worker(s), --log-decisions {args.log_decisions}, "
        f"{os.cpu_count()} cores shared with wrk; GET /connect over {DIDS} DIDs; "
        f"median of {args.rounds} round(s) of {args.seconds:g} s"
    )
    widths = {"conc": 5, "p50 ms": 8, "p95 ms": 8, "p99 ms": 8, "req/s": 9, "req/s/core": 11}
    print(" ".join(f"{name:>{width}}" for name, width in widths.items()), " errors")
    met = True
    for connections, rounds in rows:

        def median(key: str, rounds: list[dict[str, float]] = rounds) -> float:
            return statistics.median(r[key] for r in rounds)

        rate = statistics.median(r["requests"] / r["seconds"] for r in rounds)
        per_core = statistics.median(r["requests"] / r["cpu"] for r in rounds if r["cpu"])
        errors = sum(int(r["non2xx"] + r["socket_errors"]) for r in rounds)
        print(
            f"{connections:>5} {median('p50'):>8.2f} {median('p95'):>8.2f} "
            f"{median('p99'):>8.2f} {rate:>9,.0f} {per_core:>11,.0f}  {errors}"
        )
        met = met and errors == 0
        if connections == BOUND_CONCURRENCY:
            bound = median("p99") < BOUND_P99_MS
            met = met and bound
            print(
                f"      bound: p99 < {BOUND_P99_MS:g} ms at concurrency {BOUND_CONCURRENCY}: "
                f"{'met' if bound else 'MISSED'}"
            )
    print("result:", "bounds met" if met else "BOUND MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
