"""Golden scenarios: one folder per validation rule under ``tests/scenarios``.

Each folder holds a ``manifests/`` tree and ``expected.txt``: exactly what
``reconciler validate`` prints there, then its exit code. Every message is checked
word for word, so a rule that stops firing, or fires in the wrong place, fails here.
Set ``UPDATE_GOLDEN=1`` to rewrite the expectations after a deliberate change, and
read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.cli.main import main

SCENARIOS = Path(__file__).parent / "scenarios"
NAMES = sorted(path.name for path in SCENARIOS.iterdir() if path.is_dir())


def run_validate(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        code = main(["validate"])
    finally:
        os.chdir(previous)
    return capsys.readouterr().out + f"exit {code}\n"


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = SCENARIOS / name
    got = run_validate(folder, capsys)
    expected_file = folder / "expected.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(got)
    assert got == expected_file.read_text()


def test_valid_scenarios_exit_zero_and_invalid_ones_one() -> None:
    for name in NAMES:
        last = (SCENARIOS / name / "expected.txt").read_text().splitlines()[-1]
        assert last == ("exit 0" if name.startswith("valid") else "exit 1"), name


def test_secret_values_are_never_repeated() -> None:
    output = (SCENARIOS / "secrets" / "expected.txt").read_text()
    for secret in ("5f2a9c0e7d1b", "Sup3r_secret_pw", "lower case"):
        assert secret in (SCENARIOS / "secrets" / "manifests" / "a.yaml").read_text()
        assert secret not in output
