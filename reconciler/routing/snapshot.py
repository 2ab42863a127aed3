"""Manifests + ledgers -> a routing ``Snapshot``, rebuilt when their files change.

Used by ``routing.service``. A new snapshot is built aside and swapped in whole, so a
request never sees half of a reload; one that fails to load leaves the old one serving
and says why (``problem``). Which SID a route's trunk dials is ``live.pairing``'s answer,
the same one plan and apply use.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import structlog

from reconciler.errors import ConfigError, ManifestError, ReconcilerError
from reconciler.live import ledger as ledgers
from reconciler.live.pairing import pair
from reconciler.manifests.load import Manifests, discover, load
from reconciler.routing.decide import Snapshot

log = structlog.get_logger("reconciler.serve")
MAX_DROPPED_SHARE = 0.5  # a reload that drops more of the routes served is refused
MISSING = "serving the SIDs last read, if any (a checkout half done, or apply never ran)"
PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?[/\\](?:[^\s/\\:'\"()]+[/\\])*[^\s/\\:'\"(),]+")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Loader:
    """Builds snapshots from the manifests and ledgers, and knows when they changed."""

    def __init__(self, path: Path) -> None:
        # Absolute, so every message names files by absolute paths that redact() finds;
        # never resolved: a folder swapped in through a symlink must be followed.
        self.path = path.absolute()
        self.snapshot = Snapshot()
        self.error: Exception | None = None  # why the newest files did not load
        self.refused = False  # the newest files load but would drop too many routes
        self.missing: list[Path] = []  # ledgers the served snapshot could not read
        self.checked_at = time.time()  # when the served state last matched the files
        self.reloads = 0  # snapshots swapped in
        self.failures = 0  # newer files that failed to load or were refused
        self._seen: dict[str, int] = {}
        self._ledgers: list[Path] = []  # where the last load found them (may be outside PATH)
        self._missing: list[Path] = []  # of those, the ones the last build could not read

    def _watched(self) -> dict[str, int]:
        files = list(discover(self.path)) if self.path.exists() else []
        state = self.path if self.path.is_dir() else self.path.parent
        files += list(state.rglob("*.json")) + self._ledgers
        stamps: dict[str, int] = {}
        for file in files:
            with contextlib.suppress(OSError):
                stamps[str(file)] = file.stat().st_mtime_ns
        return stamps

    @property
    def stale(self) -> bool:
        """The state served is not what the files say: they failed to load, or a ledger
        is missing (its SIDs are the last read, or none)."""
        return self.error is not None or bool(self.missing)

    @property
    def problem(self) -> str:
        """What is wrong with the newest files, in a line; "" when they are served."""
        if self.error is None:
            if self.missing:
                where = ", ".join(str(path) for path in self.missing)
                return f"ledger missing ({where}): {MISSING}"
            return ""
        if isinstance(self.error, ManifestError):
            return self.error.problems[0].text()
        if isinstance(self.error, ReconcilerError):
            return str(self.error)
        return f"reload failed unexpectedly: {self.error!r} (see the log)"

    @property
    def public_problem(self) -> str:
        """``problem`` without file names or paths, for callers who did not authenticate."""
        if self.error is None:
            if self.missing:
                return f"{len(self.missing)} ledger(s) missing: {MISSING}"
            return ""
        if isinstance(self.error, ManifestError):
            first = self.error.problems[0]
            field = f"{first.path}: " if first.path else ""
            more = len(self.error.problems) - 1
            text = f"{first.severity}: {field}{first.message}" + (
                f" (and {more} more; see the service's log)" if more else ""
            )
            return redact(text, [self.path, *self._ledgers])
        if isinstance(self.error, ReconcilerError):
            return redact(str(self.error), [self.path, *self._ledgers])
        return "reload failed unexpectedly (see the service's log)"

    def reload(self, *, log_failure: bool = True) -> bool:
        """Load afresh when a file changed; True when a new snapshot is in place. A load
        that fails leaves the last good snapshot serving and says why in ``problem`` (and
        in the log, unless the caller reports it itself)."""
        stamps = self._watched()
        if stamps == self._seen and self.snapshot.loaded_at:
            if not self.stale:
                self.checked_at = time.time()
            return False
        self._seen = stamps
        try:
            snapshot = self._build()
        except ReconcilerError as error:
            self.error = error
            self.failures += 1
            texts = (
                [problem.text() for problem in error.problems[:10]]
                if isinstance(error, ManifestError)
                else [str(error)]
            )
            if log_failure:
                log.error("serve.reload_failed", errors=texts)
            return False
        dropped = len(self.snapshot) - len(snapshot)
        if self.snapshot.loaded_at and dropped > len(self.snapshot) * MAX_DROPPED_SHARE:
            # As apply's empty-checkout rail: a checkout half done must not stop calls.
            self.error = ConfigError(
                f"the newest manifests serve {len(snapshot)} route(s) where {len(self.snapshot)} "
                f"were served: not swapped in (more than {MAX_DROPPED_SHARE:.0%} dropped; a "
                "checkout half done?). Restart serve to take them as they are."
            )
            self.refused = True
            self.failures += 1
            if log_failure:
                log.error("serve.reload_refused", problem=str(self.error))
            return False
        self.snapshot, self.error, self.refused = snapshot, None, False
        self.missing = self._missing
        self.reloads += 1
        if not self.missing:
            self.checked_at = time.time()
        log.info("serve.loaded", routes=len(snapshot), trunks=len(snapshot.sids))
        return True

    def _build(self) -> Snapshot:
        manifests = load(self.path)
        if manifests.errors:
            raise ManifestError(manifests.errors)
        snapshot, self._ledgers, self._missing = build(manifests, self.snapshot)
        return snapshot


def redact(text: str, roots: Iterable[Path] = ()) -> str:
    """A message with every path in it replaced by ``<file>``: first those under the
    known ``roots`` (which may hold spaces), then anything that looks absolute."""
    absolute = [r for r in roots if r.is_absolute()]  # "." or "manifests" would match words
    for root in sorted({str(r) for r in absolute} | {str(r.resolve()) for r in absolute}, key=len)[
        ::-1
    ]:
        text = re.sub(re.escape(root) + r"[^\s:'\"(),]*", "<file>", text)
    return PATH.sub("<file>", text)


class Built(NamedTuple):
    snapshot: Snapshot
    ledgers: list[Path]  # where the accounts' ledgers are
    missing: list[Path]  # of those, the ones not there


def build(manifests: Manifests, previous: Snapshot | None = None) -> Built:
    """The snapshot of valid manifests and their ledgers, where the ledgers are, and which
    of them were missing. An account whose ledger is missing keeps the SIDs of
    ``previous`` (a checkout half done)."""
    sids: dict[tuple[str, str], str] = {}
    found, missing = [], []
    for account in manifests.accounts.values():
        path = ledgers.ledger_path(manifests.root, account)
        found.append(path)
        if not path.exists():
            missing.append(path)
            # Between a checkout's delete and write, say: the SIDs last served stand.
            if previous is not None:
                log.warning("serve.ledger_missing", account=account.name, ledger=str(path))
                sids.update({k: v for k, v in previous.sids.items() if k[0] == account.name})
            continue
        read = ledgers.read(path, account=account.name, account_sid=account.spec.sid)
        sids.update({(account.name, name): e.sid for name, e in read.trunks.items()})
        desired = [t.spec for t in manifests.trunks if t.spec.account == account.name]
        # A trunk renamed in the manifests dials its old SID until apply renames it.
        paired = pair(desired, read).sids()
        sids.update({(account.name, name): sid for name, sid in paired.items()})
    accounts = {
        number.number: declared.spec.account
        for declared in manifests.trunks
        for number in declared.spec.phone_numbers
    }
    snapshot = Snapshot.build(
        [route.spec for route in manifests.routes],
        sids,
        utc_now().isoformat(timespec="seconds"),
        accounts,
    )
    return Built(snapshot, found, missing)
