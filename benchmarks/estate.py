"""A large estate for benchmarks: manifests, live state in a sandbox, and the ledger.

Each trunk has 3 DIDs, 2 whitelisted IPs, 2 destinations (one on an IP, one by name),
1 credential and an alias. Live state is created through the sandbox's API exactly as
the manifests say (so a plan of it is a no-op), then saved as a sandbox state file, so
a benchmark can restart the sandbox with other flags (latency, rate limit) on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry, fingerprint
from reconciler.manifests.load import load
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.diff import parts

AUTH = ("demo_key", "demo_token")
PASSWORD = "bench_password_1"
ENVIRON = {
    "EXOTEL_API_KEY": AUTH[0],
    "EXOTEL_API_TOKEN": AUTH[1],
    "SIP_PASSWORD": PASSWORD,
}


class Sandbox:
    """``reconciler sandbox`` in a subprocess; logs discarded (they are not measured here)."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().split()[-1]

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stats(self) -> dict[str, object]:
        result: dict[str, object] = httpx.get(f"{self.url}/_sandbox/stats").json()
        return result

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def trunk_yaml(index: int) -> str:
    a, b = divmod(index, 200)
    return f"""  - name: t{index:05d}
    account: demo
    phone_numbers:
      - number: "+9180{index:07d}1"
        mode: flow
      - "+9180{index:07d}2"
      - "+9180{index:07d}3"
    whitelisted_ips: [44.{a + 1}.{b}.1, 13.{a + 1}.{b}.0/24]
    destination_uris:
      - 44.{a + 1}.{b}.1:5061;transport=tls
      - uri: sbc{index}.example.com:5061;transport=tls
        priority: 1
    alias: "+9180{index:07d}1"
    credentials:
      - username: u{index}
        password: ${{SIP_PASSWORD}}
"""


def write_manifests(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${EXOTEL_API_KEY}\n"
        "    api_token: ${EXOTEL_API_TOKEN}\n"
    )
    per_file = 100
    for start in range(0, count, per_file):
        body = "".join(trunk_yaml(i) for i in range(start, min(count, start + per_file)))
        (folder / f"trunks_{start // per_file:03d}.yaml").write_text("trunks:\n" + body)


async def _seed(url: str, folder: Path) -> Ledger:
    manifests = load(folder)
    assert not manifests.errors, manifests.errors[0].text()
    limits = httpx.Limits(max_connections=50)
    entries: dict[str, TrunkEntry] = {}
    async with httpx.AsyncClient(
        base_url=url + "/v2/accounts/demo", auth=AUTH, limits=limits
    ) as http:
        semaphore = asyncio.Semaphore(50)

        async def post(path: str, body: object) -> dict[str, object]:
            async with semaphore:
                answer = (await http.post(path, json=body)).json()
            assert answer["http_code"] == 200, answer
            return answer  # type: ignore[no-any-return]

        async def one(spec: TrunkSpec) -> None:
            body = {"trunk_name": spec.name, "nso_code": "ANY-ANY", "domain_name": spec.domain_name}
            sid = (await post("/trunks", body))["response"]["data"]["trunk_sid"]  # type: ignore[index]
            base = f"/trunks/{sid}"
            for ip in spec.whitelisted_ips:
                address, mask = ip.split("/")
                await post(f"{base}/whitelisted-ips", {"ip": address, "mask": int(mask)})
            destinations = [
                {"destination": d.uri, "priority": d.priority, "weight": d.weight}
                for d in spec.destination_uris
            ]
            await post(f"{base}/destination-uris", {"destinations": destinations})
            for number in spec.phone_numbers:
                mapping = {"phone_number": number.number}
                if number.mode != "pstn":
                    mapping["mode"] = number.mode
                await post(f"{base}/phone-numbers", mapping)
            alias = {"name": "trunk_external_alias", "value": spec.alias}
            await post(f"{base}/settings", {"settings": [alias]})
            for credential in spec.credentials:
                await post(
                    f"{base}/credentials", {"user_name": credential.username, "password": PASSWORD}
                )
            entries[spec.name] = TrunkEntry(
                str(sid),
                alias=spec.alias,
                credentials={c.username: c.password_version for c in spec.credentials},
                fingerprint=fingerprint(spec),
                parts=parts(spec),
            )

        await asyncio.gather(*(one(trunk.spec) for trunk in manifests.trunks))
    return Ledger("demo", "demo", entries)


def build(folder: Path, count: int) -> Path:
    """Manifests and ledger under ``folder``; returns the sandbox state file to start from."""
    write_manifests(folder / "manifests", count)
    sandbox = Sandbox("--rate-limit", "0")
    try:
        started = time.monotonic()
        ledger = asyncio.run(_seed(sandbox.url, folder / "manifests"))
        ledgers.write(folder / "manifests" / "state" / "demo.json", ledger)
        state = httpx.get(f"{sandbox.url}/_sandbox/state", timeout=60).json()
        print(f"(seeded {count} trunks in {time.monotonic() - started:.1f} s)", file=sys.stderr)
    finally:
        sandbox.stop()
    path = folder / "sandbox-state.json"
    path.write_text(json.dumps(state))
    return path
