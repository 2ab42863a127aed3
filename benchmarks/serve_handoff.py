"""Handoffs with an agents URL under concurrent load, and what they cost other callers.

Starts a local agents server (it answers 200 at once, keep-alive) and ``reconciler
serve`` on manifests where one DID's handoff asks that URL (``timeout_ms: 300``,
``fallback: false``, as docs/routing.md shows) and another DID is routed by rules. Then,
for ``--seconds``: ``--handoffs`` concurrent callers send ``GET /handoff`` as fast as
they are answered, while one caller sends ``GET /connect`` every 20 ms on a kept-alive
connection. Each in its own process. Prints handoffs/s, the share of handoffs answered
``no-agents:fallback`` (the agents server always says yes, so every such answer is a
failed check: a caller hung up who should have reached an agent), and /connect's p50 and
p99 before and while the handoffs run. Bounds: no fallback, and /connect's p99 during
the handoffs under 10 ms.

    python benchmarks/serve_handoff.py [--seconds 10] [--handoffs 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry

BOUND_P99_MS = 10.0
HANDOFF_DID, CONNECT_DID = "08040264208", "02247788100"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_estate(folder: Path, agents_url: str) -> None:
    (folder / "all.yaml").write_text(
        f"""\
accounts:
  demo:
    sid: demo
    api_key: ${{EXOTEL_API_KEY}}
    api_token: ${{EXOTEL_API_TOKEN}}
trunks:
  - name: bot
    account: demo
    phone_numbers: ["+918040264208"]
  - name: cc
    account: demo
    phone_numbers: ["+912247788100"]
routes:
  - did: "+918040264208"
    account: demo
    default: {{trunk: bot}}
    handoff:
      agents: {{url: "{agents_url}", timeout_ms: 300, fallback: false}}
      otherwise: 302
  - did: "+912247788100"
    account: demo
    rules:
      - when: {{caller_prefixes: ["+9198"], hours: "09:00-18:00"}}
        trunk: cc
        custom_params: {{X-Tenant: acme}}
    default: {{trunk: bot, record: true}}
"""
    )
    entries = {"bot": TrunkEntry("trmum1bot" + "0" * 19), "cc": TrunkEntry("trmum1cc" + "0" * 20)}
    ledgers.write(folder / "state" / "demo.json", Ledger("demo", "demo", entries))


def agents_server(port: int) -> None:
    """An availability URL that says yes at once, on kept-alive connections."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def handoffs(url: str, callers: int, seconds: float) -> tuple[int, int, int]:
    """(answered, agent, fallback) over ``seconds`` with ``callers`` at once."""
    answered = agent = fallback = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=callers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller(number: int) -> None:
            nonlocal answered, agent, fallback
            index = 0
            while time.monotonic() < deadline:
                index += 1
                query = {"CallSid": f"h{number}-{index}", "CallTo": HANDOFF_DID}
                async with session.get(url + "/handoff", params=query) as response:
                    body = await response.json()
                answered += 1
                agent += body == {"result": "agent"}
                fallback += body.get("reason") == "no agent available"

        await asyncio.gather(*(caller(n) for n in range(callers)))
    return answered, agent, fallback


async def connects(url: str, seconds: float) -> list[float]:
    """Latencies (ms) of one caller's /connect every 20 ms on one kept-alive connection."""
    latencies = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        index = 0
        while time.monotonic() < deadline:
            index += 1
            query = {"CallSid": f"c{index}", "CallTo": CONNECT_DID, "CallFrom": "09876543210"}
            started = time.perf_counter()
            async with session.get(url + "/connect", params=query) as response:
                await response.read()
                assert response.status == 200
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
    return latencies


def run_handoffs(url: str, callers: int, seconds: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results.put(("handoffs", asyncio.run(handoffs(url, callers, seconds))))


def run_connects(url: str, seconds: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results.put(("connects", asyncio.run(connects(url, seconds))))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--handoffs", type=int, default=10, help="concurrent handoff callers")
    parser.add_argument("--workers", type=int, default=1, help="serve's --workers")
    args = parser.parse_args()
    agents_port, port = free_port(), free_port()
    agents = multiprocessing.Process(target=agents_server, args=(agents_port,), daemon=True)
    agents.start()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory) / "manifests"
        folder.mkdir()
        write_estate(folder, f"http://127.0.0.1:{agents_port}/agents")
        command = [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", str(port)]
        server = subprocess.Popen(
            [*command, "--at", "2026-11-26T12:00", "--workers", str(args.workers)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            server.stdout.readline()
            url = f"http://127.0.0.1:{port}"
            time.sleep(0.5)
            baseline = asyncio.run(connects(url, min(args.seconds, 5.0)))
            results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
            workers = [
                multiprocessing.Process(
                    target=run_handoffs, args=(url, args.handoffs, args.seconds, results)
                ),
                multiprocessing.Process(target=run_connects, args=(url, args.seconds, results)),
            ]
            started = time.monotonic()
            for worker in workers:
                worker.start()
            found = dict(results.get(timeout=args.seconds + 120) for _ in workers)
            elapsed = time.monotonic() - started
            for worker in workers:
                worker.join()
        finally:
            server.terminate()
            server.wait(timeout=60)
            agents.terminate()
    answered, agent, fallback = found["handoffs"]
    during = found["connects"]
    share = fallback / answered if answered else 1.0
    p99 = percentile(during, 0.99)
    print(
        f"{args.handoffs} concurrent handoffs for {args.seconds:g} s against an agents URL "
        f"that answers at once (timeout_ms 300, fallback false), {args.workers} worker(s)"
    )
    print(
        f"handoffs: {answered / elapsed:,.0f}/s ({answered} answered, {agent} to agents, "
        f"{fallback} no-agents:fallback = {share:.1%})"
    )
    print(
        f"/connect before: p50 {statistics.median(baseline):.2f} ms, "
        f"p99 {percentile(baseline, 0.99):.2f} ms ({len(baseline)} requests)"
    )
    print(
        f"/connect during: p50 {statistics.median(during):.2f} ms, p99 {p99:.2f} ms "
        f"({len(during)} requests)"
    )
    met = fallback == 0 and p99 < BOUND_P99_MS
    print(
        f"result: {'bounds met' if met else 'BOUND MISSED'} (no fallback; /connect p99 "
        f"during handoffs < {BOUND_P99_MS:g} ms)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
