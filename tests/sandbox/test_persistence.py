"""``--state FILE``: every change persisted atomically, reloaded on start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.sandboxes import Api, running


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "sandbox.json"
    with running("--state", str(state), "--seed", "3", log_path=tmp_path / "a.log") as sandbox:
        api = Api(sandbox.http)
        sid = api.create_trunk()
        trunk = api.trunk(sid)
        first = trunk.map("+918040264208", "flow")
        trunk.whitelist("44.248.146.11")
        trunk.post("credentials", {"user_name": "bot", "password": "pw"})
        before = sandbox.state()
    assert json.loads(state.read_text())["accounts"] == before["accounts"]
    assert [p.name for p in state.parent.iterdir()] == ["sandbox.json"]  # no temp files left
    with running("--state", str(state), "--seed", "3", log_path=tmp_path / "b.log") as sandbox:
        assert sandbox.state()["accounts"] == before["accounts"]
        api = Api(sandbox.http)
        trunk = api.trunk(sid)
        assert trunk.items("phone-numbers") == [first]
        # Ids keep growing after a restart, and the same seed does not reuse a SID.
        assert int(trunk.whitelist("13.126.40.0", 24)["id"]) > int(first["id"])
        assert api.create_trunk("second") != sid
        assert (
            api.trunk(sid)
            .post("phone-numbers", {"phone_number": "+918040264208"})
            .json()["response"]["code"]
            == 409
        )


def test_every_change_is_written_at_once(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    with running("--state", str(state), log_path=tmp_path / "a.log") as sandbox:
        api = Api(sandbox.http)
        sid = api.create_trunk()
        assert [
            t["trunk_sid"] for t in json.loads(state.read_text())["accounts"]["demo"]["trunks"]
        ] == [sid]
        api.delete("/trunks", params={"trunk_sid": sid})
        assert json.loads(state.read_text())["accounts"]["demo"]["trunks"] == []
        api.create_trunk()
        sandbox.reset()
        assert json.loads(state.read_text())["accounts"]["demo"]["trunks"] == []


def test_a_broken_state_file_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    for content in ("{not json", "[]", '{"format_version": 99}', '{"format_version": 1}'):
        state.write_text(content)
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 1
        assert str(state) in result.stderr
        assert "Traceback" not in result.stderr
        assert state.read_text() == content  # nothing overwritten


def test_a_restart_never_reissues_a_sid_or_request_id(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    with running("--state", str(state), "--seed", "5", log_path=tmp_path / "a.log") as sandbox:
        api = Api(sandbox.http)
        deleted = api.create_trunk()
        api.delete("/trunks", params={"trunk_sid": deleted})
        before = {api.get("/trunks").json()["request_id"] for _ in range(3)}
    with running("--state", str(state), "--seed", "5", log_path=tmp_path / "b.log") as sandbox:
        api = Api(sandbox.http)
        assert api.create_trunk() != deleted
        assert not before & {api.get("/trunks").json()["request_id"] for _ in range(3)}


def test_a_held_change_is_persisted(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    with running(
        "--state", str(state), "--hold-seconds", "0.2", log_path=tmp_path / "a.log"
    ) as sandbox:
        sandbox.faults({"path": "*", "fault": "timeout_after_commit", "count": 1})
        with pytest.raises(httpx.HTTPError):
            Api(sandbox.http).create_trunk()
    with running("--state", str(state), log_path=tmp_path / "b.log") as sandbox:
        assert [t["trunk_name"] for t in sandbox.state()["accounts"]["demo"]["trunks"]] == [
            "blr_bot"
        ]
