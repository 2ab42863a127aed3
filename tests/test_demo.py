"""``make demo`` as a new user runs it: every step of the story, exit 0, no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_demo_tells_the_whole_story() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for command in (
        "$ reconciler validate",
        "$ reconciler plan",
        "$ reconciler apply --auto-approve",
        "$ reconciler drift",
        "$ reconciler state list",
        "$ reconciler trace +918040264208",
        "/connect?",
        "/handoff?",
    ):
        assert command in out, command
    assert out.count("(exit 2)") == 2  # drift found, and the replacement planned
    assert '302 {"result": "hangup", "reason": "outside business hours"}' in out
    assert '200 {"result": "agent"}' in out
    assert "serve, not restarted, dials the new SID" in out
