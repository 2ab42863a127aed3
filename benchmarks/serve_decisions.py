"""Routing decisions per second through HTTP: ``reconciler serve`` under load.

Starts ``reconciler serve`` on manifests with 200 routed DIDs (each with two rules and a
default) and their ledger, then sends ``GET /connect`` requests shaped like Exotel's
(CallSid, CallFrom, CallTo, Direction) from two client processes with 25 keep-alive
connections each, for a fixed time. Prints decisions per second (target: at least
1,000) and checks every answer was a 200 with a trunk.

    python benchmarks/serve_decisions.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry

TARGET = 1000.0
DIDS = 200


def write_estate(folder: Path) -> None:
    trunks = "".join(
        f'  - name: t{i}\n    account: demo\n    phone_numbers: ["+9180{i:08d}"]\n'
        for i in range(DIDS)
    )
    routes = "".join(
        f'  - did: "+9180{i:08d}"\n    account: demo\n    rules:\n'
        f'      - when: {{caller_prefixes: ["+9198"], hours: "09:00-18:00"}}\n'
        f"        trunk: t{(i + 1) % DIDS}\n"
        f"        custom_params: {{X-Tenant: t{i}}}\n"
        f"      - when: {{weekdays: [sat, sun]}}\n        trunk: t{(i + 2) % DIDS}\n"
        f"    default: {{trunk: t{i}, record: true}}\n"
        for i in range(DIDS)
    )
    (folder / "all.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${EXOTEL_API_KEY}\n"
        "    api_token: ${EXOTEL_API_TOKEN}\n"
        f"trunks:\n{trunks}routes:\n{routes}"
    )
    entries = {f"t{i}": TrunkEntry(f"trmum1{i:022d}") for i in range(DIDS)}
    ledgers.write(folder / "state" / "demo.json", Ledger("demo", "demo", entries))


async def drive(url: str, connections: int, seconds: float) -> tuple[int, int]:
    done = bad = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            nonlocal done, bad
            index = offset
            while time.monotonic() < deadline:
                index += 1
                query = {
                    "CallSid": f"call{index}",
                    "CallFrom": "09876543210" if index % 2 else "09123456789",
                    "CallTo": f"080{index % DIDS:08d}",
                    "Direction": "incoming",
                }
                async with session.get(url, params=query) as response:
                    body = await response.json()
                    ok = response.status == 200 and "trunk" in body.get("destination", {})
                done += 1
                bad += not ok

        await asyncio.gather(*(worker(n * 1000) for n in range(connections)))
    return done, bad


def client(
    url: str, connections: int, seconds: float, results: multiprocessing.Queue[tuple[int, int]]
) -> None:
    results.put(asyncio.run(drive(url, connections, seconds)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory) / "manifests"
        folder.mkdir()
        write_estate(folder)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            server.stdout.readline()
            url = f"http://127.0.0.1:{port}/connect"
            for _ in range(100):  # until it accepts connections
                with socket.socket() as attempt:
                    if attempt.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            results: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
            workers = [
                multiprocessing.Process(target=client, args=(url, 25, args.seconds, results))
                for _ in range(2)
            ]
            started = time.monotonic()
            for worker in workers:
                worker.start()
            answers = [results.get(timeout=args.seconds + 60) for _ in workers]
            elapsed = time.monotonic() - started
            for worker in workers:
                worker.join()
        finally:
            server.terminate()
            server.wait(timeout=10)
    done = sum(a for a, _ in answers)
    bad = sum(b for _, b in answers)
    rate = done / elapsed
    print(f"decisions: {done} in {elapsed:.1f} s over HTTP, {bad} not a 200 with a trunk")
    print(f"rate: {rate:,.0f} decisions/second (target: at least {TARGET:,.0f})")
    met = rate >= TARGET and bad == 0
    print("result:", "target met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
