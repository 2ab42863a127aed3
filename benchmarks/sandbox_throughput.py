"""How much the sandbox costs per request, so it never bounds later benchmarks.

Starts ``reconciler sandbox`` (latency 0, no rate limit, logging on as in normal use,
to /dev/null), seeds a trunk with 20 whitelisted IPs, then drives list calls
(``GET .../whitelisted-ips``) from two client processes with 25 keep-alive connections
each for a fixed time. Prints requests per second served and the sandbox process's
CPU time per request (user + system, read from /proc), each beside its target:

    at least 800 requests/second on a 2-core machine
    at most 0.5 ms of sandbox CPU per request

The clients use aiohttp, whose per-request CPU is well below httpx's (one httpx
process tops out near 500 requests/second on such a machine), so the clients leave
the sandbox room to show its own cost. Exits 1 when a target is missed.

    python benchmarks/sandbox_throughput.py [--seconds 10] [--clients 2] [--connections 25]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import subprocess
import sys
import time

import aiohttp
import httpx

TARGET_RPS = 800.0
TARGET_CPU_MS = 0.5
AUTH = ("demo_key", "demo_token")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc/PID/stat (fields 14 and 15, in ticks)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(url: str, connections: int, seconds: float) -> int:
    count = 0
    deadline = time.monotonic() + seconds
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Authorization": f"Basic {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"unexpected HTTP {response.status}")
                count += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return count


def client(url: str, connections: int, seconds: float, results: multiprocessing.Queue[int]) -> None:
    results.put(asyncio.run(drive(url, connections, seconds)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--connections", type=int, default=25)
    args = parser.parse_args()

    sandbox = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--rate-limit", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        base = sandbox.stdout.readline().split()[-1]
        with httpx.Client(base_url=base, auth=AUTH) as setup:
            trunk = setup.post(
                "/v2/accounts/demo/trunks",
                json={
                    "trunk_name": "bench",
                    "nso_code": "ANY-ANY",
                    "domain_name": "demo.pstn.exotel.com",
                },
            ).json()["response"]["data"]["trunk_sid"]
            for i in range(20):
                setup.post(
                    f"/v2/accounts/demo/trunks/{trunk}/whitelisted-ips",
                    json={"ip": f"44.248.146.{i + 1}"},
                )
        url = f"{base}/v2/accounts/demo/trunks/{trunk}/whitelisted-ips"
        results: multiprocessing.Queue[int] = multiprocessing.Queue()
        workers = [
            multiprocessing.Process(
                target=client, args=(url, args.connections, args.seconds, results)
            )
            for _ in range(args.clients)
        ]
        cpu_before, started = cpu_seconds(sandbox.pid), time.monotonic()
        for worker in workers:
            worker.start()
        total = sum(results.get(timeout=args.seconds + 60) for _ in workers)
        elapsed = time.monotonic() - started
        cpu_used = cpu_seconds(sandbox.pid) - cpu_before
        for worker in workers:
            worker.join()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    rps = total / elapsed
    cpu_ms = cpu_used / total * 1000
    shape = f"{args.clients} processes x {args.connections} connections"
    print(f"clients: {shape}, {args.seconds:g} s of list calls")
    print(f"requests: {total} in {elapsed:.1f} s")
    print(f"throughput: {rps:,.0f} requests/second (target: at least {TARGET_RPS:,.0f})")
    print(f"sandbox CPU: {cpu_ms:.3f} ms per request (target: at most {TARGET_CPU_MS})")
    met = rps >= TARGET_RPS and cpu_ms <= TARGET_CPU_MS
    print("result:", "targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
