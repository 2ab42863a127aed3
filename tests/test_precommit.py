"""``.pre-commit-hooks.yaml`` as a config repository uses it: ``pre-commit try-repo``
installs this repository's hook in a temporary git repository and runs it on changed
manifests, each validated with its folder's accounts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def run(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.timeout(900)
def test_the_hook_validates_changed_manifests(tmp_path: Path) -> None:
    if not PRE_COMMIT.exists():
        pytest.skip("pre-commit is not installed (pip install -e '.[dev]')")
    config = tmp_path / "config"
    shutil.copytree(
        ROOT / "manifests", config / "manifests", ignore=shutil.ignore_patterns("state")
    )
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }  # fmt: skip
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        assert run(config, *command, env=env).returncode == 0
    hook = [str(PRE_COMMIT), "try-repo", str(ROOT), "reconciler-validate", "--files"]

    good = run(config, *hook, "manifests/voice_bot.yaml", env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "reconciler validate" in good.stdout
    assert "Passed" in good.stdout

    bot = config / "manifests" / "voice_bot.yaml"
    bot.write_text(bot.read_text().replace("mode: flow", "mode: sip", 1))
    bad = run(config, *hook, "manifests/voice_bot.yaml", env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "manifests/voice_bot.yaml:" in bad.stdout  # file:line:column, then the field
    assert "phone_numbers[0].mode" in bad.stdout
    assert "Traceback" not in bad.stdout
