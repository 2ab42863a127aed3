"""``reconciler check`` over 1,000 destinations: the time is the slowest answer's, not the sum.

Starts a SIP UAS on loopback (asyncio, in this process, on four ports) that answers each
OPTIONS with ``200 OK`` after a delay drawn uniformly from 100 to 300 ms, writes manifests
with 100 trunks of 10 destinations each (1,000 distinct host names, pointed at loopback
with ``--resolve``), and times the whole ``reconciler check`` command as a process, start-up
included. The bound: 1.5 x the slowest answer plus the per-destination timeout. Probing
one after another would take the sum of the delays, printed beside it.

    python benchmarks/check_scale.py [--destinations 1000] [--timeout 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORTS = 4
PER_TRUNK = 10
DELAYS = (0.1, 0.3)


class Uas:
    """Answers OPTIONS after a random delay; records the delays it used."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.random = random.Random(7)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            keep = [
                line
                for line in lines[1:]
                if line.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")
            ]
            delay = self.random.uniform(*DELAYS)
            self.delays.append(delay)
            await asyncio.sleep(delay)
            answer = ["SIP/2.0 200 OK", *keep, "Server: bench-uas", "Content-Length: 0", "", ""]
            writer.write("\r\n".join(answer).encode())
            await writer.drain()
            await reader.read()  # until the prober closes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def manifests(folder: Path, count: int, ports: list[int]) -> list[str]:
    trunks, resolve = [], []
    for index in range(count):
        if index % PER_TRUNK == 0:
            trunks.append(
                f"  - name: t{index // PER_TRUNK}\n    account: demo\n    destination_uris:\n"
            )
        host = f"d{index}.example.test"
        port = ports[index % len(ports)]
        trunks.append(f"      - {host}:{port};transport=tcp\n")
        resolve.append(f"--resolve={host}:{port}:127.0.0.1")
    folder.mkdir(parents=True)
    (folder / "all.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${EXOTEL_API_KEY}\n"
        "    api_token: ${EXOTEL_API_TOKEN}\n"
        "trunks:\n" + "".join(trunks)
    )
    return resolve


async def main(count: int, timeout: float) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count * 2 + 256)), hard))
    uas = Uas()
    servers = [
        await asyncio.start_server(uas.handle, "127.0.0.1", 0, backlog=count) for _ in range(PORTS)
    ]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "manifests"
        resolve = manifests(folder, count, ports)
        command = [
            sys.executable, "-m", "reconciler", "check", str(folder),
            "--format", "json", f"--timeout={timeout:g}", *resolve,
        ]  # fmt: skip
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await process.communicate()
        wall = time.perf_counter() - started
    for server in servers:
        server.close()
    if process.returncode != 0:
        print(err.decode()[-2000:], file=sys.stderr)
        print(f"check exited {process.returncode}", file=sys.stderr)
        return 1
    document = json.loads(out)
    counts = document["counts"]
    slowest = max(uas.delays)
    bound = 1.5 * slowest + timeout
    print(f"destinations: {counts['destinations']} ({counts['up']} up, {counts['down']} down)")
    print(
        f"answers: {len(uas.delays)}, delays {DELAYS[0]:g}-{DELAYS[1]:g} s, slowest {slowest:.3f} s"
    )
    print(f"one after another would take: {sum(uas.delays):.1f} s")
    verdict = "met" if wall <= bound and counts["up"] == count else "MISSED"
    print(
        f"reconciler check, whole command: {wall:.2f} s  "
        f"(bound 1.5 x {slowest:.3f} s + timeout {timeout:g} s = {bound:.2f} s: {verdict})"
    )
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--destinations", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=1.0)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.destinations, arguments.timeout)))
