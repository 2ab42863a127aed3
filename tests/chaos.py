"""Chaos: apply under injected faults until converged, then check nothing was lost or doubled.

Used by ``tests/test_chaos.py`` (a fixed seed, in every test run) and by
``benchmarks/chaos_soak.py`` (a random seed, to find what a fixed one misses). The
sandbox injects a fault on about 10% of requests, one kind per method so every kind
occurs: POST ``timeout_after_commit`` (the change lands, the answer never comes), PUT
``error_500``, DELETE ``drop_connection``, GET ``rate_limit``. Fifty trunks are created,
then twenty changed and ten deleted; apply is repeated until it reports convergence.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.live import ledger as ledgers
from reconciler.manifests.load import load
from reconciler.pipeline import ApplyOptions, Options, apply, make_plan
from tests.sandboxes import Sandbox

PROBABILITY = 0.1
MAX_RUNS = 5
FAULTS = [
    {"method": "POST", "path": "*", "fault": "timeout_after_commit", "probability": PROBABILITY},
    {"method": "PUT", "path": "*", "fault": "error_500", "probability": PROBABILITY},
    {"method": "DELETE", "path": "*", "fault": "drop_connection", "probability": PROBABILITY},
    {
        "method": "GET",
        "path": "*",
        "fault": "rate_limit",
        "probability": PROBABILITY,
        "retry_after": 0,
    },
]


def trunk(index: int, *, changed: bool) -> str:
    a, b = divmod(index, 200)
    extra_ip = f", 52.{a + 1}.{b}.0/24" if changed else ""
    mode = "pstn" if changed else "flow"
    return textwrap.dedent(
        f"""\
        - name: c{index:03d}
          account: demo
          phone_numbers:
            - number: "+9180{index:07d}1"
              mode: {mode}
            - "+9180{index:07d}2"
          whitelisted_ips: [44.{a + 1}.{b}.1{extra_ip}]
          destination_uris:
            - 44.{a + 1}.{b}.1:5061;transport=tls
            - uri: sbc{index}.example.com:5061;transport=tls
              priority: {2 if changed else 1}
          alias: "+9180{index:07d}1"
          credentials:
            - username: u{index}
              password: ${{SIP_PASSWORD}}
              password_version: {2 if changed else 1}
        """
    )


def write(folder: Path, trunks: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${EXOTEL_API_KEY}\n"
        "    api_token: ${EXOTEL_API_TOKEN}\n    prune: true\n"
    )
    (folder / "trunks.yaml").write_text("trunks:\n" + textwrap.indent(trunks, "  "))


@dataclass
class Report:
    runs: list[int]  # applies needed per phase
    faults: int  # faulted exchanges the sandbox counted
    orphans: list[str]  # live trunks the ledger does not know
    duplicates: list[str]  # children present twice on a trunk
    remaining: int  # actions a final plan still finds


def _converge(folder: Path, environ: dict[str, str]) -> int:
    for run in range(1, MAX_RUNS + 1):
        try:
            result = asyncio.run(
                apply(
                    load(folder),
                    accounts=[],
                    environ=environ,
                    options=Options(per_minute=0, timeout=10.0),
                    apply_options=ApplyOptions(force=True),
                    confirm=lambda plan: True,
                )
            )
        except ReconcilerError:
            continue  # a whole-run failure (say, the first read failing) is a run spent
        if result.converged:
            return run
    return MAX_RUNS + 1


def _duplicates(trunks: list[dict[str, Any]]) -> list[str]:
    found = []
    for live in trunks:
        keys = {
            "phone_numbers": lambda c: c["phone_number"],
            "whitelisted_ips": lambda c: (c["ip"], c["mask"]),
            "destination_uris": lambda c: c["destination"].lower(),
            "credentials": lambda c: c["user_name"],
        }
        for collection, key in keys.items():
            counted = Counter(key(child) for child in live[collection])
            found += [f"{live['trunk_name']}/{collection}/{k}" for k, n in counted.items() if n > 1]
    return found


def run(sandbox: Sandbox, folder: Path, environ: dict[str, str], *, trunks: int = 50) -> Report:
    write(folder, "".join(trunk(i, changed=False) for i in range(trunks)))
    sandbox.faults(*FAULTS)
    runs = [_converge(folder, environ)]
    kept = range(trunks - trunks // 5)  # the last tenth... fifth is deleted
    write(folder, "".join(trunk(i, changed=i < trunks * 2 // 5) for i in kept))
    runs.append(_converge(folder, environ))
    sandbox.faults()
    stats = sandbox.stats()["by_status"]
    faults = sum(stats.get(key, 0) for key in ("held", "dropped", "500", "429"))
    live = sandbox.state()["accounts"]["demo"]["trunks"]
    ledger = ledgers.read(folder / "state" / "demo.json", account="demo", account_sid="demo")
    known = {entry.sid for entry in ledger.trunks.values()}
    orphans = [t["trunk_sid"] for t in live if t["trunk_sid"] not in known]
    final = asyncio.run(
        make_plan(load(folder), accounts=[], environ=environ, options=Options(per_minute=0))
    )
    return Report(runs, faults, orphans, _duplicates(live), len(final.actions))
