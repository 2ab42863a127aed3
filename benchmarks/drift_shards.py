"""Drift over many accounts, past one runner: 40 accounts of 50 trunks at Exotel's 200
requests a minute each, `reconciler drift` as 1, 4 and 8 shards (`--shard I/N`, one
process per shard, all at once, as a matrix of jobs runs them), against the per-account
rate bound.

Drifting one account of 50 trunks takes about 250 requests: more than a minute's 200, so
at least one full window (61 s, the gate's minute and a second) per account. A run
drifts up to 16 accounts at once (each has its own limit), so one shard of 40 accounts
takes at least three waves; more shards, fewer waves. The bound printed is
waves x 61 s for the largest shard; the measured time is the wall time of all shards.

    python benchmarks/drift_shards.py [--accounts 40] [--trunks 50] [--rate 200]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from estate import Sandbox

from reconciler.pipeline.accounts import shard_of
from reconciler.pipeline.drifting import ACCOUNTS_AT_ONCE

WINDOW = 61.0  # the gate's window: Exotel's minute and a second (reconciler.exotel.gate)
KEY, TOKEN = "bench_key", "bench_token"


def write(folder: Path, accounts: int, trunks: int, rate: int) -> list[str]:
    names = [f"acct{a:02d}" for a in range(accounts)]
    folder.mkdir(parents=True)
    lines = ["accounts:"]
    for name in names:
        lines += [
            f"  {name}:",
            f"    sid: {name}",
            f"    api_key: ${{KEY_{name.upper()}}}",
            f"    api_token: ${{TOKEN_{name.upper()}}}",
            f"    rate_limit: {rate}",
        ]
    (folder / "accounts.yaml").write_text("\n".join(lines) + "\n")
    for a, name in enumerate(names):
        body = "".join(
            f"  - name: t{t:03d}\n"
            f"    account: {name}\n"
            f'    phone_numbers: ["+9180{a:02d}{t:06d}"]\n'
            f"    whitelisted_ips: [44.{a + 1}.{t}.1]\n"
            f'    alias: "+9180{a:02d}{t:06d}"\n'
            for t in range(trunks)
        )
        (folder / f"{name}.yaml").write_text("trunks:\n" + body)
    return names


def reconciler(folder: Path, environ: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=folder,
        env={**os.environ, **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], allowed: tuple[int, ...]) -> None:
    _, error = process.communicate()
    if process.returncode not in allowed:
        raise SystemExit(f"exit {process.returncode}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--trunks", type=int, default=50)
    parser.add_argument("--rate", type=int, default=200, help="requests a minute, per account")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        names = write(folder / "manifests", options.accounts, options.trunks, options.rate)
        accounts = [
            arg for name in names for arg in ("--account", f"{name}:{KEY}_{name}:{TOKEN}_{name}")
        ]
        sandbox = Sandbox("--rate-limit", str(options.rate), *accounts)
        try:
            environ = {"EXOTEL_BASE_URL": sandbox.url}
            for name in names:  # each account its own key and token, as Exotel gives them
                environ[f"KEY_{name.upper()}"] = f"{KEY}_{name}"
                environ[f"TOKEN_{name.upper()}"] = f"{TOKEN}_{name}"
            started = time.perf_counter()
            finish(reconciler(folder, environ, "apply", "--auto-approve"), (0,))
            print(
                f"{options.accounts} accounts x {options.trunks} trunks applied in "
                f"{time.perf_counter() - started:.1f} s (every account at once)"
            )
            before = int(sandbox.stats()["requests"])  # type: ignore[call-overload]
            finish(reconciler(folder, environ, "drift"), (0, 2))
            per_account = (int(sandbox.stats()["requests"]) - before) / options.accounts  # type: ignore[call-overload]
            windows = math.ceil(per_account / options.rate) - 1  # full minutes to wait
            print(
                f"drift reads {per_account:.0f} requests per account; at {options.rate}/min "
                f"that is {windows} full window(s) of {WINDOW:.0f} s per account at least"
            )
            print(f"{'shards':>6}{'accounts in the largest':>25}{'bound':>9}{'measured':>10}")
            for count in (1, 4, 8):
                # Each run starts as a scheduled one would: the accounts' last minute of
                # requests behind them (back to back, the sandbox would still count them).
                time.sleep(WINDOW)
                sizes = [0] * count
                for name in names:
                    sizes[shard_of(name, count) - 1] += 1
                waves = math.ceil(max(sizes) / ACCOUNTS_AT_ONCE)
                bound = waves * windows * WINDOW
                started = time.perf_counter()
                running = [
                    reconciler(folder, environ, "drift", "--shard", f"{i}/{count}")
                    for i in range(1, count + 1)
                ]
                for process in running:
                    finish(process, (0, 2))
                measured = time.perf_counter() - started
                print(f"{count:>6}{max(sizes):>25}{bound:>8.0f}s{measured:>9.0f}s")
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main()
