"""Chaos soak: the chaos scenario of the test suite, with a random seed each run.

The sandbox injects error_500, rate_limit, timeout_after_commit and drop_connection on
about 10% of requests while 50 trunks are created, then 20 changed and 10 deleted; apply
is repeated until it converges. Prints, per round: the seed, the applies needed per
phase (bound: 5), faults injected, orphans (live trunks the ledger does not know) and
duplicate children found (bound: 0 each), and actions a final plan still finds (0).

    python benchmarks/chaos_soak.py [--rounds 3] [--trunks 50]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.cli import logs  # noqa: E402
from tests import chaos  # noqa: E402  (the scenario is shared with tests/test_chaos.py)
from tests.estate import environ  # noqa: E402
from tests.sandboxes import running  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trunks", type=int, default=50)
    args = parser.parse_args()
    logs.configure()
    failures = 0
    for round_number in range(1, args.rounds + 1):
        seed = random.SystemRandom().randrange(1, 2**31)
        with tempfile.TemporaryDirectory() as directory:
            folder = Path(directory)
            with running(
                "--seed", str(seed), "--rate-limit", "0", "--hold-seconds", "1",
                log_path=folder / "sandbox.log",
            ) as sandbox:  # fmt: skip
                report = chaos.run(
                    sandbox, folder / "manifests", environ(sandbox), trunks=args.trunks
                )
        ok = (
            all(runs <= chaos.MAX_RUNS for runs in report.runs)
            and not report.orphans
            and not report.duplicates
            and report.remaining == 0
        )
        failures += not ok
        print(
            f"round {round_number} (seed {seed}): applies needed {report.runs} (bound: "
            f"{chaos.MAX_RUNS} each), faults injected {report.faults}, orphans "
            f"{len(report.orphans)}, duplicates {len(report.duplicates)} (bound: 0), actions "
            f"left {report.remaining}: {'ok' if ok else 'FAILED'}"
        )
    print(
        "result:", "all rounds converged cleanly" if not failures else f"{failures} round(s) FAILED"
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
