"""Chaos with a fixed seed: faults on ~10% of requests, apply repeated until converged."""

from __future__ import annotations

from pathlib import Path

from tests import chaos
from tests.estate import environ
from tests.sandboxes import running


def test_apply_converges_through_faults_without_orphans_or_duplicates(tmp_path: Path) -> None:
    with running(
        "--seed", "11", "--rate-limit", "0", "--hold-seconds", "1", log_path=tmp_path / "sb.log"
    ) as sandbox:
        report = chaos.run(sandbox, tmp_path / "manifests", environ(sandbox))
    print(report)
    assert all(runs <= chaos.MAX_RUNS for runs in report.runs), report
    assert report.faults > 0  # faults were really injected...
    assert report.orphans == []  # ...and no trunk escaped the ledger,
    assert report.duplicates == []  # nothing was created twice,
    assert report.remaining == 0  # and a plan afterwards is empty.
