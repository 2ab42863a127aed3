"""The CLI as a user runs it: a subprocess, its exit codes, and never a traceback."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress

from reconciler.cli import progress
from reconciler.cli.main import build_parser
from reconciler.manifests.document import ManifestFile
from reconciler.manifests.schema import REFERENCE_SECTIONS
from reconciler.plan.actions import Action, Kind, Operation, Origin, Outcome, Resource, Status

ROOT = Path(__file__).parents[1]
SCENARIOS = ROOT / "tests" / "scenarios"


def reconciler(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_validate_the_example_manifests() -> None:
    result = reconciler("validate")
    assert result.returncode == 0, result.stdout
    assert result.stdout == "manifests: 5 files, 1 account, 3 trunks: valid\n"
    assert result.stderr == ""


def test_validate_invalid_exits_one_without_a_traceback() -> None:
    for folder in sorted(SCENARIOS.iterdir()):
        result = reconciler("validate", cwd=folder)
        assert result.returncode == (0 if folder.name.startswith("valid") else 1), folder.name
        assert "Traceback" not in result.stdout + result.stderr


def test_validate_json() -> None:
    result = reconciler("validate", "--format", "json", cwd=SCENARIOS / "duplicate_entries")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["errors"] == 5
    assert document["warnings"] == 0
    first = document["problems"][0]
    assert first == {
        "file": "manifests/a.yaml",
        "line": 11,
        "column": 9,
        "severity": "error",
        "path": "trunks[0].phone_numbers[1]",
        "message": "DID +918040264208 is listed twice (also phone_numbers[0]); remove one",
    }


def test_validate_json_when_valid() -> None:
    result = reconciler("validate", "manifests", "--format", "json")
    document = json.loads(result.stdout)
    assert (result.returncode, document["valid"], document["accounts"], document["trunks"]) == (
        0,
        True,
        ["demo"],
        3,
    )


def test_validate_a_single_file(tmp_path: Path) -> None:
    manifest = tmp_path / "one.yml"
    manifest.write_text("trunks:\n  - name: t1\n    account: nowhere\n")
    result = reconciler("validate", str(manifest))
    assert result.returncode == 1
    assert f"{manifest}:3:14: error: trunks[0].account: unknown account 'nowhere'" in result.stdout


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01\x02", b"{{{{", b"- - - -\n  - :", b"&a [*a]", b"key: !!python/object:os.system x"],
)
def test_hostile_files_get_messages(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "m.yaml").write_bytes(content)
    result = reconciler("validate", str(tmp_path))
    assert result.returncode == 1
    assert "error" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_schema_is_the_committed_one() -> None:
    result = reconciler("schema")
    assert result.returncode == 0
    committed = (ROOT / "schema" / "manifest.schema.json").read_text()
    assert result.stdout == committed, "run: reconciler schema > schema/manifest.schema.json"
    assert json.loads(result.stdout)["title"] == "Exotel vSIP reconciler manifest"


def test_readme_field_reference_is_generated_from_the_models() -> None:
    result = reconciler("schema", "--format", "markdown")
    page = (ROOT / "docs" / "manifests.md").read_text()
    start, end = "<!-- field-reference:start -->\n", "<!-- field-reference:end -->"
    block = page[page.index(start) + len(start) : page.index(end)]
    assert block == result.stdout, (
        "run: reconciler schema --format markdown, paste into docs/manifests.md"
    )


def test_the_field_reference_reads_as_words_not_python() -> None:
    reference = reconciler("schema", "--format", "markdown").stdout
    types = [line.split(" | ")[1] for line in reference.splitlines() if line.startswith("| `")]
    assert types, reference
    for kind in types:
        for python in ("typing", "Annotated", "Strict", "dict[", "tuple[", "<class", "item"):
            assert python not in kind, kind
    assert "| `custom_params` | map of header name to value |" in reference
    assert "| `destination_uris` | list of destinations |" in reference


def test_example_manifests_point_editors_at_the_schema() -> None:
    for manifest in sorted((ROOT / "manifests").glob("*.yaml")):
        first = manifest.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schema/manifest.schema.json"


def test_help_and_version() -> None:
    assert "validate" in reconciler("--help").stdout
    assert reconciler("--version").stdout.startswith("reconciler ")
    result = reconciler("validate", "--help")
    assert "--format" in result.stdout
    assert reconciler("frobnicate").returncode == 1  # a usage error, never "changes" (2)


def test_the_field_reference_covers_every_model_of_the_language() -> None:
    """A new nested model (a new child kind) must get its own section in the reference."""

    def reachable(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
        for field in model.model_fields.values():
            stack: list[Any] = [field.annotation]
            while stack:
                annotation = stack.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    if annotation not in seen:
                        seen.add(annotation)
                        reachable(annotation, seen)
                else:
                    stack.extend(typing.get_args(annotation))
        return seen

    documented = {model for _, model in REFERENCE_SECTIONS}
    assert reachable(ManifestFile, set()) <= documented


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["plan", "--detailed-exitcode", "--acount", "acme"],
        ["drift", "--format", "yaml"],
        ["state"],
        ["apply", "--max-delete", "-1"],  # a negative limit would read as nonsense, not 0
        ["plan", "--rate-limit", "-5"],
        ["apply", "--lock-timeout", "-2"],
        ["serve", "--port", "70000"],
    ],
)
def test_usage_errors_exit_1_never_the_changes_code(words: list[str], tmp_path: Path) -> None:
    """2 means "changes or drift present": a typo in CI must not read as drift."""
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *words],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("usage: reconciler")
    assert "error:" in result.stderr


def test_verbose_is_accepted_after_the_subcommand_too() -> None:
    parser = build_parser()
    assert parser.parse_args(["drift", "-v"]).verbose == 1
    assert parser.parse_args(["-vv", "drift"]).verbose == 2
    assert parser.parse_args(["drift"]).verbose == 0


def test_validating_one_file_uses_its_folders_accounts(tmp_path: Path) -> None:
    """As a pre-commit hook calls it: the changed file, checked with its folder."""
    folder = tmp_path / "manifests"
    shutil.copytree(Path(__file__).parents[1] / "manifests", folder)
    one = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "manifests/voice_bot.yaml"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert one.returncode == 0, one.stdout + one.stderr
    broken = (folder / "voice_bot.yaml").read_text().replace("account: demo", "account: acme", 1)
    (folder / "voice_bot.yaml").write_text(broken)
    bad = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "manifests/voice_bot.yaml"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert "unknown account 'acme'; declared accounts: demo" in bad.stdout


def test_validate_checks_that_the_ledgers_parse(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    shutil.copytree(Path(__file__).parents[1] / "manifests", folder)
    (folder / "state").mkdir()
    (folder / "state" / "demo.json").write_text("<<<<<<< HEAD\n{}\n=======\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "manifests"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "manifests/state/demo.json: error: ledger" in result.stdout
    assert "is not valid JSON" in result.stdout


def test_the_progress_bar_waits_for_the_first_outcome() -> None:
    """Never drawn under the confirmation prompt, where it would overwrite the answer."""
    bar = Progress(console=Console(file=io.StringIO(), force_terminal=True), transient=True)
    shown = progress.Reporter(bar)
    shown.begin(3)  # the plan is shown, the question is being asked
    assert not bar.live.is_started
    action = Action(
        address="demo/bot", kind=Kind.CREATE, resource=Resource.TRUNK,
        operation=Operation.CREATE_TRUNK, account="demo", trunk="bot", key="", before=None,
        after={"name": "bot"}, reason="r", origin=Origin.MANIFEST,
    )  # fmt: skip
    shown(Outcome(action, Status.DONE))
    assert bar.live.is_started
    bar.stop()


def test_a_files_accounts_are_looked_for_only_inside_its_work_tree(tmp_path: Path) -> None:
    """A file in a subfolder finds the accounts declared higher up in its repository, and
    a file outside any repository is never checked against whatever folder lies above."""
    repo = tmp_path / "repo"
    shutil.copytree(Path(__file__).parents[1] / "manifests", repo)
    nested = repo / "teams" / "bots"
    nested.mkdir(parents=True)
    (repo / "voice_bot.yaml").rename(nested / "voice_bot.yaml")

    def validate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "validate", "teams/bots/voice_bot.yaml"],
            capture_output=True, text=True, cwd=repo, check=False,
        )  # fmt: skip

    alone = validate()  # not in a work tree: only its own folder, which declares no account
    assert alone.returncode == 1
    assert "unknown account 'demo'" in alone.stdout
    assert str(tmp_path) + ":" not in alone.stdout  # nothing above was loaded
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    inside = validate()
    assert inside.returncode == 0, inside.stdout + inside.stderr
