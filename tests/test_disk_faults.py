"""``apply`` when its state files cannot be written: a full disk, a quota, an I/O error.

Against the real sandbox over HTTP. A real full filesystem is a small tmpfs mounted over
the ledger's folder (root only; skipped where mounting is not allowed), driven through the
CLI. Nothing else real produces ENOSPC on demand at a chosen point, so the tests that must
say exactly when the disk fails (and count the requests sent after it) run apply in process
with ``os.fsync`` or ``os.write`` failing, through ``monkeypatch``, for the state files only.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.executor import Halt
from reconciler.errors import LedgerError
from reconciler.live import ledger as ledgers
from tests.estate import apply, environ, live_trunks, plan, write
from tests.sandboxes import Api, Sandbox
from tests.test_plan_cli import reconciler

TRUNKS = 30  # as in the report: 30 created live, 1 in the ledger
LEDGER = Path("state/demo.json")
UNLIMITED = ("--rate-limit", "0")  # a sandbox: 4 writes a trunk would take minutes at 200


def many(count: int = TRUNKS) -> str:
    """``count`` trunks, each with two whitelisted IPs and a DID: four writes each."""
    return "".join(
        f"- name: t{i:02d}\n"
        "  account: demo\n"
        f"  whitelisted_ips: [44.248.146.{i + 1}, 52.66.1.{i + 1}]\n"
        f'  phone_numbers: ["+9180402650{i:02d}"]\n'
        for i in range(count)
    )


def path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def requests(sandbox: Sandbox) -> int:
    return int(sandbox.stats()["requests"])


def journal_of(folder: Path) -> list[dict[str, Any]]:
    text = (folder / "state" / "demo.journal.jsonl").read_text()
    assert text.endswith("\n")  # never half a line
    return [json.loads(line) for line in text.splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "state").iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def halts(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> list[int]:
    """The sandbox's request count at the moment apply learns a state file failed (on
    the event loop, so nothing of ours is sent meanwhile)."""
    seen: list[int] = []
    fail = Halt.fail

    def counted(self: Halt, error: ledgers.StateWriteError) -> None:
        if not self:
            seen.append(requests(sandbox))
        fail(self, error)

    monkeypatch.setattr(Halt, "fail", counted)
    return seen


def failing_fsync(
    monkeypatch: pytest.MonkeyPatch, *, after: int, code: int = errno.ENOSPC
) -> list[str]:
    """``os.fsync`` of a ledger's temporary file fails with ``code`` once ``after`` ledger
    writes have succeeded; returns the ledger as it was on disk at the first failure."""
    real = os.fsync
    done: list[int] = []
    before: list[str] = []

    def fsync(fd: int) -> None:
        name = Path(path_of(fd))
        if name.name.startswith(".demo.json.") and name.name.endswith(".tmp"):
            if len(done) >= after:
                if not before:
                    ledger = name.parent / "demo.json"
                    before.append(ledger.read_text() if ledger.exists() else "")
                raise OSError(code, os.strerror(code))
            done.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return before


def test_a_full_disk_stops_apply_at_once_and_the_next_run_adopts_what_landed(
    tmp_path: Path, sandbox: Sandbox, api: Api, monkeypatch: pytest.MonkeyPatch, halts: list[int]
) -> None:
    folder = write(tmp_path, many())
    planned_writes = len(plan(folder, sandbox).actions)
    assert planned_writes == TRUNKS * 4
    start = requests(sandbox)
    before = failing_fsync(monkeypatch, after=1)
    with pytest.raises(LedgerError) as raised:
        apply(folder, sandbox, per_minute=0)
    message = str(raised.value)
    assert f"cannot write ledger {folder / LEDGER}: No space left on device (ENOSPC)" in message
    assert "no new request was sent to Exotel after it" in message
    assert "Exotel now holds trunks the ledger does not" in message
    assert "Free space on the disk of" in message
    assert "run apply again: profile full finds the trunks created but not recorded" in message
    # No request after apply knew: at most the trunks' requests then in flight (a trunk's
    # actions run one at a time), and far fewer than the whole plan.
    [at_halt] = halts
    sent = requests(sandbox)
    assert sent - at_halt <= TRUNKS, (at_halt, sent)
    assert sent - start < planned_writes
    events = [record["event"] for record in journal_of(folder)]
    halted = events.index("apply.halted")
    assert "started" not in events[halted:]
    assert "skipped" in events[halted:]
    # The failed writes left the last whole ledger and no temporary file; the lock is gone.
    assert (folder / LEDGER).read_text() == before[0]
    assert leftovers(folder) == []
    assert not (folder / "state" / "demo.json.lock").exists()
    recorded = ledgers.read(folder / LEDGER, account="demo", account_sid="demo")
    live = {t["trunk_name"]: t["trunk_sid"] for t in live_trunks(sandbox)}
    assert len(recorded.trunks) < len(live)  # trunks landed that the ledger lacks...
    unrecorded = sorted(set(live) - set(recorded.trunks))
    assert all(f"{name} ({live[name]})" in message for name in unrecorded[:10])

    monkeypatch.undo()  # room again: the next run adopts them by name, creates none twice
    result = apply(folder, sandbox, per_minute=0)
    assert result.converged, [(o.action.address, o.detail) for o in result.outcomes]
    adopted = [o.action.trunk for o in result.outcomes if o.action.operation == "adopt_trunk"]
    assert sorted(adopted) == unrecorded
    names = [t["trunk_name"] for t in live_trunks(sandbox)]
    assert sorted(names) == [f"t{i:02d}" for i in range(TRUNKS)]  # no duplicate
    recorded = ledgers.read(folder / LEDGER, account="demo", account_sid="demo")
    assert {name: entry.sid for name, entry in recorded.trunks.items()} == {
        t["trunk_name"]: t["trunk_sid"] for t in live_trunks(sandbox)
    }
    assert plan(folder, sandbox).actions == ()


@pytest.mark.parametrize("code", [errno.EDQUOT, errno.EIO, errno.EROFS])
def test_a_journal_that_cannot_be_written_stops_apply(
    tmp_path: Path,
    sandbox: Sandbox,
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    halts: list[int],
    code: int,
) -> None:
    """The journal's 20th line is written in part, then the disk refuses: the part is cut
    off, nothing more is sent, and the ledger holds everything that landed."""
    folder = write(tmp_path, many())
    real = os.write
    lines: list[int] = []

    def write_(fd: int, data: bytes) -> int:
        if not path_of(fd).endswith(".journal.jsonl"):
            return real(fd, data)
        lines.append(fd)
        if len(lines) == 20:
            return real(fd, data[:17])  # a short write...
        if len(lines) > 20:
            raise OSError(code, os.strerror(code))  # ...then the refusal
        return real(fd, data)

    monkeypatch.setattr(os, "write", write_)
    with pytest.raises(LedgerError) as raised:
        apply(folder, sandbox, per_minute=0)
    message = str(raised.value)
    journal = folder / "state" / "demo.journal.jsonl"
    assert f"cannot write journal {journal}: {os.strerror(code)}" in message
    assert "no new request was sent to Exotel after it" in message
    fix = "Free space on the disk of" if code == errno.EDQUOT else "Fix what makes writing"
    assert fix in message
    [at_halt] = halts
    assert requests(sandbox) - at_halt <= TRUNKS
    records = journal_of(folder)  # every line whole: the short write was cut back off
    assert len(records) == 19
    assert not (folder / "state" / "demo.json.lock").exists()
    # The ledger was written all along: it has every trunk that landed.
    recorded = ledgers.read(folder / LEDGER, account="demo", account_sid="demo")
    live = {t["trunk_name"]: t["trunk_sid"] for t in live_trunks(sandbox)}
    assert {name: entry.sid for name, entry in recorded.trunks.items()} == live
    assert "The ledger holds every change that landed" in message

    monkeypatch.undo()
    assert apply(folder, sandbox, per_minute=0).converged
    assert len(live_trunks(sandbox)) == TRUNKS


def test_in_minimal_the_message_gives_each_unrecorded_sid_to_import(
    tmp_path: Path,
    minimal_sandbox: Sandbox,
    minimal_api: Api,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Profile minimal cannot list trunks: apply cannot find a trunk it created but did
    not record, so the message gives each SID and the import that records it."""
    folder = write(tmp_path, many(8), profile="minimal")
    failing_fsync(monkeypatch, after=0, code=errno.ENOSPC)  # the first trunk recorded
    with pytest.raises(LedgerError) as raised:
        apply(folder, minimal_sandbox, per_minute=0)
    message = str(raised.value)
    recorded = ledgers.read(folder / LEDGER, account="demo", account_sid="demo")
    live = {t["trunk_name"]: t["trunk_sid"] for t in live_trunks(minimal_sandbox)}
    unrecorded = sorted(set(live) - set(recorded.trunks))
    assert unrecorded
    assert "profile minimal cannot list trunks" in message
    for name in unrecorded:
        assert f"reconciler import --account demo --trunk-sid {live[name]}={name}" in message
    assert leftovers(folder) == []
    # Without the import, the next apply creates none twice: each name is refused (1008).
    monkeypatch.undo()
    again = apply(folder, minimal_sandbox, per_minute=0)
    assert not again.converged
    assert len(live_trunks(minimal_sandbox)) == len(live)
    # The imports the message gives record each declared trunk (no manifest rewritten),
    # and then apply converges.
    before = {path: path.read_text() for path in folder.glob("*.yaml")}
    for name in unrecorded:
        command = ["import", str(folder), "--account", "demo", "--trunk-sid"]
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *command, f"{live[name]}={name}"],
            capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, **environ(minimal_sandbox)},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"recorded trunk {name} ({live[name]}), declared in" in done.stdout
    assert {path: path.read_text() for path in folder.glob("*.yaml")} == before
    assert apply(folder, minimal_sandbox, per_minute=0).converged
    assert len(live_trunks(minimal_sandbox)) == len(live)


def test_a_failed_ledger_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state" / "demo.json"
    first = ledgers.Ledger("demo", "demo", {"a": ledgers.TrunkEntry("trmum1a")})
    ledgers.write(path, first)
    text = path.read_text()
    for code in (errno.ENOSPC, errno.EIO):
        failing_fsync(monkeypatch, after=0, code=code)
        second = first.with_trunk("b", ledgers.TrunkEntry("trmum1b"))
        with pytest.raises(ledgers.StateWriteError, match=os.strerror(code)):
            ledgers.write(path, second)
        monkeypatch.undo()
        assert path.read_text() == text  # the previous ledger, intact
        assert leftovers(tmp_path) == []


# -- a real full filesystem ---------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """A 16 KiB tmpfs mounted on ``tmp_path/manifests/state``; call it with a size to
    remount it bigger or smaller. Skipped where mounting is not allowed."""
    state = tmp_path / "manifests" / "state"
    state.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (root only): {mounted.stderr.strip()}")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(state)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def test_a_really_full_disk_from_the_command_line(
    tmp_path: Path, sandbox: Sandbox, api: Api, small_disk: Callable[[str], None]
) -> None:
    folder = write(tmp_path / "manifests", many())
    state = folder / "state"
    env = environ(sandbox)
    # Full before anything: the lock cannot be taken, nothing is sent, no lock is left.
    filler = state / "filler"
    with pytest.raises(OSError, match="No space left"):
        filler.write_bytes(b"\0" * 64 * 1024)
    refused = reconciler("apply", "--auto-approve", *UNLIMITED, env=env, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "cannot take the lock" in refused.stderr
    assert "No space left on device" in refused.stderr
    assert "nothing was sent to Exotel" in refused.stderr
    assert requests(sandbox) == 0
    assert sorted(p.name for p in state.iterdir()) == ["filler"]
    filler.unlink()

    # 16 KiB fill up part way through: apply stops, says so, and leaves a whole ledger.
    result = reconciler(
        "apply", "--auto-approve", *UNLIMITED, "--format", "json", env=env, cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    assert (document["outcome"], document["converged"]) == ("failed", False)
    assert "No space left on device (ENOSPC)" in document["error"]
    assert "no new request was sent to Exotel after it" in document["error"]
    assert "run apply again" in document["error"]
    assert leftovers(folder) == []
    assert not (state / "demo.json.lock").exists()
    if (state / "demo.json").exists():  # whole, and every trunk in it is live
        recorded = ledgers.read(state / "demo.json", account="demo", account_sid="demo")
        live = {t["trunk_sid"] for t in live_trunks(sandbox)}
        assert {entry.sid for entry in recorded.trunks.values()} <= live
    journal = (state / "demo.journal.jsonl").read_text()
    assert all(json.loads(line) for line in journal.splitlines())
    assert live_trunks(sandbox)  # it got part of the way

    small_disk("1m")  # space freed: the next run converges, nothing created twice
    again = reconciler("apply", "--auto-approve", *UNLIMITED, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    names = sorted(t["trunk_name"] for t in live_trunks(sandbox))
    assert names == [f"t{i:02d}" for i in range(TRUNKS)]
    recorded = ledgers.read(state / "demo.json", account="demo", account_sid="demo")
    assert {name: entry.sid for name, entry in recorded.trunks.items()} == {
        t["trunk_name"]: t["trunk_sid"] for t in live_trunks(sandbox)
    }


@pytest.mark.parametrize("writer", ["drift record", "state pull"])
def test_every_state_file_is_written_by_the_one_atomic_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """Drift's record and the ledgers a state pull copies in go through the same write as
    the ledger: on a full disk the old file stays whole, no temporary file is left, and
    the error names the file."""
    from reconciler.live.files import StateWriteError  # noqa: PLC0415
    from reconciler.pipeline import drifting, state_branch  # noqa: PLC0415

    target = tmp_path / "state" / "demo.json.checked.json"
    target.parent.mkdir()
    target.write_text('{"checked": {}, "drifted": {}}\n')

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def write() -> None:
        if writer == "drift record":
            drifting._write_checked(target, drifting.Record({"t": "now"}, {}))
        else:
            state_branch.write_atomically(target, "new", what="ledger")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StateWriteError) as raised:
        write()
    assert str(target) in str(raised.value)
    assert "No space left on device (ENOSPC)" in str(raised.value)
    assert target.read_text() == '{"checked": {}, "drifted": {}}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
