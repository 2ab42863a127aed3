"""``--state FILE``: every change persisted atomically, reloaded on start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandboxes import Api, error, running


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
    saved = json.loads(state.read_text())["accounts"]
    # The file keeps each credential's digest secret (HA1), so digest authentication of
    # calls survives a restart; /_sandbox/state never shows it.
    [credential] = saved["demo"]["trunks"][0]["credentials"]
    assert len(credential.pop("ha1")) == 32
    assert saved == before["accounts"]
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
        assert json.loads(state.read_text())["accounts"] == {"demo": {"trunks": []}}  # at start
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
        [line] = result.stderr.splitlines()  # one line, no traceback
        assert str(state) in line
        assert line.endswith("; move it away to start empty, or give --state another file")
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


def _start(state: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        ("file/state.json", "Not a directory"),  # a file where its folder should be
        ("file/deeper/state.json", "Not a directory"),
        ("folder", "Is a directory"),  # the path is a folder
    ],
)
def test_a_state_path_that_cannot_be_written_stops_the_start(
    tmp_path: Path, layout: str, reason: str
) -> None:
    (tmp_path / "file").write_text("in the way\n")
    (tmp_path / "folder").mkdir()
    state = tmp_path / layout
    result = _start(state)
    assert result.returncode == 1
    assert "listening" not in result.stdout
    [line] = result.stderr.splitlines()  # one line, no traceback, no log lines
    assert line.startswith(f"reconciler sandbox: cannot read state file {state}: {reason}")
    assert "--state takes a file" in line
    assert (tmp_path / "file").read_text() == "in the way\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_state_file_in_a_folder_nobody_can_write_stops_the_start() -> None:
    state = Path("/proc/sandbox-state.json")  # procfs refuses new files, even to root
    result = _start(state)
    assert result.returncode == 1
    assert "listening" not in result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith(f"reconciler sandbox: cannot write state file {state}: ")
    assert "--state takes a file in a folder this user can write" in line


def _log_events(log: Path, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def test_a_change_that_cannot_be_saved_is_answered_500_and_undone(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    state = folder / "sandbox.json"
    log = tmp_path / "a.log"
    not_saved = (500, 500, 500, "The change could not be saved, so it was not made")
    with running("--state", str(state), "--seed", "4", log_path=log) as sandbox:
        api = Api(sandbox.http)
        kept = api.create_trunk("kept")
        before = sandbox.state()
        shutil.rmtree(folder)
        folder.write_text("a file where the state's folder was\n")  # fails for root too

        body = {"trunk_name": "lost", "nso_code": "ANY-ANY", "domain_name": "x.pstn.exotel.com"}
        assert error(api.post("/trunks", body)) == not_saved
        assert error(api.delete("/trunks", params={"trunk_sid": kept})) == not_saved
        assert error(api.trunk(kept).post("whitelisted-ips", {"ip": "44.248.146.11"})) == not_saved
        assert sandbox.state() == before  # memory still matches the last state saved
        assert [t["trunk_name"] for t in ok_list(api.get("/trunks"))] == ["kept"]
        # A write that changes nothing is answered as usual.
        unknown = "trmum1" + "0" * 22
        assert error(api.delete("/trunks", params={"trunk_sid": unknown}))[:3] == (404, 404, 1000)
        # A change that cannot be saved is not committed, so a timeout_after_commit rule
        # does not hold it: the client hears the error.
        sandbox.faults({"path": "*/trunks", "fault": "timeout_after_commit", "count": 1})
        assert error(api.post("/trunks", body)) == not_saved
        sandbox.faults()
        reset = sandbox.http.post("/_sandbox/reset")
        assert reset.status_code == 500
        assert reset.json()["ok"] is False
        assert str(state) in reset.json()["error"]
        assert sandbox.state() == before

        folder.unlink()  # repaired: the next change is saved, the undone ones never were
        api.create_trunk("after")
        on_disk = json.loads(state.read_text())
        assert on_disk["accounts"] == sandbox.state()["accounts"]
        assert [t["trunk_name"] for t in on_disk["accounts"]["demo"]["trunks"]] == [
            "kept",
            "after",
        ]
    failures = _log_events(log, "state_not_saved")
    assert len(failures) == 5  # once per failed write: 4 API requests and the reset
    assert all(f["state_file"] == str(state) for f in failures)
    assert all(f"{folder} is a file, not a folder" in f["reason"] for f in failures)
    assert "Traceback" not in log.read_text()


def ok_list(response: httpx.Response) -> list[dict[str, Any]]:
    document = response.json()
    assert response.status_code == 200, document
    return [item["data"] for item in document["response"]]
