"""The apply journal: one JSON line per step, appended as it happens, beside the ledger.

Written by the apply executor; read by people (and tests) after a failed or interrupted apply to
see exactly what was attempted, what landed and what did not. Each line is one write to a
file opened for appending, so a crash loses nothing already recorded. No secret is ever
written: actions carry none, and errors are Exotel's descriptions.

A write that fails (a full disk, a quota, an I/O error) is cut back off the file, so the
journal never ends in half a line, and is handed to ``on_failure`` once: apply then sends
no new request. Later lines are not attempted.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reconciler.live.ledger import StateWriteError
from reconciler.plan.actions import Action, Status

# The journal's event for each status; "started" precedes each, "interrupted" ends a run
# that was stopped, "halted" one that stopped because a state file could not be written.
EVENTS = {
    Status.DONE: "succeeded",
    Status.FAILED: "failed",
    Status.SKIPPED: "skipped",
    Status.MANUAL: "manual",
}


def _ignore(error: StateWriteError) -> None:
    pass


class Journal:
    def __init__(
        self, path: Path, *, run: str, on_failure: Callable[[StateWriteError], None] = _ignore
    ) -> None:
        """Open (or create) the journal; raises StateWriteError when it cannot be opened."""
        self.path = path
        self.run = run  # one id per apply, so runs can be told apart in the file
        self.on_failure = on_failure
        self.failure: StateWriteError | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as error:
            raise StateWriteError("journal", path, error) from error

    def started(self, action: Action) -> None:
        self._action(action, "started")

    def record(self, action: Action, status: Status, detail: str = "") -> None:
        self._action(action, EVENTS[status], detail)

    def _action(self, action: Action, event: str, detail: str = "") -> None:
        line: dict[str, object] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "run": self.run,
            "account": action.account,
            "address": action.address,
            "operation": str(action.operation),
            "event": event,
        }
        if action.target:
            line["target"] = dict(action.target)
        if detail:
            line["detail"] = detail
        self._append(line)

    def note(self, event: str, **fields: object) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "run": self.run}
        self._append({**line, "event": event, **fields})

    def _append(self, line: dict[str, object]) -> None:
        if self._fd is None or self.failure is not None:
            return
        data = (json.dumps(line) + "\n").encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as error:
            with contextlib.suppress(OSError):  # no half line: shrinking needs no space
                os.ftruncate(self._fd, self._size)
            self._failed(error)
            return
        self._size += len(data)

    def _failed(self, error: OSError) -> None:
        if self.failure is None:
            self.failure = StateWriteError("journal", self.path, error)
            self.on_failure(self.failure)

    def close(self) -> None:
        """Flush the journal to disk (a failure goes to ``on_failure``) and close it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.failure is None:
                os.fsync(fd)
        except OSError as error:
            self._failed(error)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
