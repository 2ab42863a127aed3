"""The apply journal: one JSON line per step, appended as it happens, beside the ledger.

Written by the apply executor; read by people (and tests) after a failed or interrupted apply to
see exactly what was attempted, what landed and what did not. Lines are flushed as they
are written, so a crash loses nothing already recorded. No secret is ever written:
actions carry none, and errors are Exotel's descriptions.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from reconciler.plan.actions import Action, Status

# The journal's event for each status; "started" precedes each, "interrupted" ends a run
# that was stopped.
EVENTS = {
    Status.DONE: "succeeded",
    Status.FAILED: "failed",
    Status.SKIPPED: "skipped",
    Status.MANUAL: "manual",
}


class Journal:
    def __init__(self, path: Path, *, run: str) -> None:
        self.path = path
        self.run = run  # one id per apply, so runs can be told apart in the file
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

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
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def note(self, event: str, **fields: object) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "run": self.run}
        self._file.write(json.dumps({**line, "event": event, **fields}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
