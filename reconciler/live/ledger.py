"""The ledger: what the reconciler owns in one account, and what the API cannot tell it.

Read by the pipeline before planning and by ``routing.snapshot``; written by apply
(through ``Recorder``) and by the importer. One JSON file per account,
beside the manifests and committed with them; never a secret in it:

    {
      "format_version": 1,
      "account": "prod", "account_sid": "ameyo5m",
      "trunks": {
        "blr_bot": {
          "sid": "trmum1...",
          "protect": true,                     # remembered: the manifest may be gone
          "alias": "+918040264208",            # last applied (settings unreadable in minimal)
          "credentials": {"voice_ai_user": {"password_version": 1,
                                            "password_check": "scrypt$16384$8$1$..."}},
          "fingerprint": "sha256:...",         # of the trunk's last applied desired state
          "parts": {"whitelisted_ip:13.126.40.0/24": "9f2c..."}  # each child's, for drift
        }
      },
      "partner_objects": {                      # what it owns on partner platforms
        "blr_bot/outbound_trunk": {"partner": "blr_livekit", "id": "ST_...",
                                   "digest": "4be1...", "password_version": 1}
      }
    }

Only trunks in the ledger are ever pruned; live trunks that are neither declared nor
here are reported as unmanaged and never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from reconciler.errors import LedgerError, Locked
from reconciler.live.files import StateWriteError, write_atomically
from reconciler.live.state import FORMAT_VERSION, Ledger, PartnerEntry, TrunkEntry, fingerprint
from reconciler.livekit.records import ObjectKind
from reconciler.manifests.declared import NamedAccount
from reconciler.manifests.declared import ledger_path as relative_ledger_path

__all__ = [
    "Ledger",
    "Lock",
    "Locked",
    "Recorder",
    "StateWriteError",
    "TrunkEntry",
    "fingerprint",
    "ledger_path",
    "make_folder",
    "read",
    "write",
]


log = structlog.get_logger("reconciler.ledger")
LOCK_POLL_SECONDS = 1.0
RESTORE = "take it again from the state branch (reconciler state pull --force) or from git"


def ledger_path(root: str | Path, account: NamedAccount) -> Path:
    """Where an account's ledger is: its ``ledger:`` (inside the manifests folder), or
    ``state/<account>.json`` there."""
    base = Path(root)
    base = base if base.is_dir() else base.parent
    path = base / relative_ledger_path(account)
    if not path.resolve().is_relative_to(base.resolve()):  # a link out of the folder
        raise LedgerError(f"ledger {path} of account {account.name} is outside {base}")
    return path


def in_the_way(folder: Path) -> Path | None:
    """The file (or dangling link) standing where ``folder`` or one of its parents
    should be a folder, if there is one."""
    for candidate in (folder, *folder.parents):
        if (candidate.exists() or candidate.is_symlink()) and not candidate.is_dir():
            return candidate
    return None


def make_folder(path: Path, account: NamedAccount | None = None) -> None:
    """Create the folder a ledger (and its lock and journal) goes in, or raise a
    LedgerError that says what is in the way and what would be right."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        whose = f"account {account.name}: " if account else ""
        said = f"{whose}cannot create folder {folder} for ledger {path}"
        blocking = in_the_way(folder)
        if blocking is None:
            raise LedgerError(f"{said}: {error.strerror or error}") from None
        setting = "the account's ledger:"
        if account is not None:
            setting += f" ({account.origin.where(('ledger',) if account.spec.ledger else ())})"
        raise LedgerError(
            f"{said}: {blocking} is a file, not a folder; move or rename that file, or set "
            f"{setting} to a path whose folders are free"
        ) from None


def _entry(name: str, raw: Any, path: Path) -> TrunkEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("sid"), str):
        raise LedgerError(f"ledger {path}: trunk {name!r} has no sid")
    credentials = raw.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise LedgerError(f"ledger {path}: trunk {name!r}: credentials must be an object")
    versions: dict[str, int] = {}
    checks: dict[str, str] = {}
    for username, value in credentials.items():
        version = value.get("password_version") if isinstance(value, dict) else None
        if not isinstance(version, int):
            raise LedgerError(
                f"ledger {path}: trunk {name!r}: credential {username!r} has no password_version"
            )
        versions[username] = version
        check = value.get("password_check")
        if isinstance(check, str):
            checks[username] = check
    return TrunkEntry(
        sid=raw["sid"],
        protect=bool(raw.get("protect", False)),
        alias=raw.get("alias") if isinstance(raw.get("alias"), str) else None,
        credentials=versions,
        fingerprint=raw.get("fingerprint") if isinstance(raw.get("fingerprint"), str) else None,
        parts=_parts(raw.get("parts"), name, path),
        checks=checks,
    )


def _parts(raw: Any, name: str, path: Path) -> dict[str, str]:
    if raw is None:
        return {}  # written before parts were recorded: drift is told per trunk
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise LedgerError(f"ledger {path}: trunk {name!r}: parts must map keys to digests")
    return dict(raw)


def read(path: Path, *, account: str, account_sid: str) -> Ledger:
    """The ledger at ``path``, or an empty one when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Ledger(account, account_sid)
    except OSError as exc:
        blocking = in_the_way(path.parent) if isinstance(exc, NotADirectoryError) else None
        if blocking is not None:
            raise LedgerError(
                f"cannot read ledger {path}: {blocking} is a file, not a folder; move or "
                "rename that file, or set the account's ledger: to a path whose folders are free"
            ) from None
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LedgerError(f"ledger {path} is not UTF-8 text; {RESTORE}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"ledger {path} is not valid JSON ({exc}); {RESTORE}") from exc
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        version = document.get("format_version") if isinstance(document, dict) else None
        raise LedgerError(
            f"ledger {path} has format_version {version!r}; this version reads {FORMAT_VERSION}"
        )
    if document.get("account_sid") not in (None, account_sid):
        raise LedgerError(
            f"ledger {path} belongs to account SID {document.get('account_sid')!r}, "
            f"not {account_sid!r}: check the account's ledger path"
        )
    trunks = document.get("trunks") or {}
    if not isinstance(trunks, dict):
        raise LedgerError(f"ledger {path}: trunks must be an object")
    pending = document.get("pending_creates") or []
    if not isinstance(pending, list) or not all(isinstance(name, str) for name in pending):
        raise LedgerError(f"ledger {path}: pending_creates must be a list of trunk names")
    routes = document.get("routes") or {}
    if not isinstance(routes, dict) or not all(isinstance(v, str) for v in routes.values()):
        raise LedgerError(f"ledger {path}: routes must map DIDs to fingerprints")
    documents = document.get("route_documents") or {}
    if not isinstance(documents, dict) or not all(isinstance(v, dict) for v in documents.values()):
        raise LedgerError(f"ledger {path}: route_documents must map DIDs to routes")
    objects = document.get("partner_objects") or {}
    if not isinstance(objects, dict):
        raise LedgerError(f"ledger {path}: partner_objects must be an object")
    return Ledger(
        account,
        account_sid,
        {name: _entry(name, raw, path) for name, raw in trunks.items()},
        tuple(pending),
        routes,
        documents,
        {key: _partner_object(key, raw, path) for key, raw in objects.items()},
    )


KINDS = frozenset(kind.value for kind in ObjectKind)  # a partner object's key ends in one


def _partner_object(key: str, raw: Any, path: Path) -> PartnerEntry:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("partner"), str)
        or not isinstance(raw.get("id"), str)
        or not isinstance(raw.get("digest", ""), str)
        or not isinstance(raw.get("password_version", 0), int)
    ):
        raise LedgerError(
            f"ledger {path}: partner object {key!r} must be {{partner, id[, digest, "
            f"password_version]}}; {RESTORE}"
        )
    trunk, _, rest = key.partition("/")
    partner, _, kind = rest.partition("/")
    if not trunk or partner != raw["partner"] or kind not in KINDS:
        raise LedgerError(
            f"ledger {path}: partner object {key!r} must be keyed TRUNK/{raw['partner']}/KIND "
            f"with KIND one of {', '.join(sorted(KINDS))}; {RESTORE}"
        )
    return PartnerEntry(raw["partner"], raw["id"], raw.get("digest"), raw.get("password_version"))


def write(path: Path, ledger: Ledger) -> None:
    """Replace the ledger file atomically (``files.write_atomically``): a crash or a
    failure leaves the old ledger or the new one, never half of one."""
    text = json.dumps(ledger.document(), indent=2, sort_keys=False) + "\n"
    write_atomically(path, text, what="ledger")


@dataclass(frozen=True)
class Lock:
    """An exclusive lock on one ledger: ``<ledger>.lock``, created with O_EXCL.

    Holds who took it (pid, host, start time), so a second apply can say who is in the
    way; a lock left by a process that died on this host is recognised as stale and can
    be broken (``--break-lock``). A lock from another host is never broken automatically:
    only a person can tell whether that run is still going."""

    path: Path

    @classmethod
    def beside(cls, ledger_path: Path) -> Lock:
        return cls(ledger_path.with_name(ledger_path.name + ".lock"))

    def acquire(self, *, break_stale: bool = False, wait: float = 0.0) -> None:
        """Take the lock; with ``wait``, wait up to that many seconds for its holder to
        finish (saying so once), then fail naming the holder."""
        make_folder(self.path.with_suffix(""))  # the ledger's folder, or what is in the way
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        deadline = time.monotonic() + wait
        said = False
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                found = self._holder()
                if break_stale and self._stale(found):
                    self.path.unlink(missing_ok=True)
                    continue
                if time.monotonic() >= deadline:
                    raise Locked(self._message(found)) from None
                if not said:
                    log.warning(
                        "ledger.waiting",
                        message=f"{self._message(found).split(';')[0]}: waiting up to "
                        f"{wait:.0f} s for it",
                    )
                    said = True
                time.sleep(min(LOCK_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                continue
            except OSError as error:  # read-only, no inode left, no permission
                raise self._failed(error) from None
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    json.dump(holder, handle)
            except OSError as error:  # a full disk: no half-written lock is left behind
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise self._failed(error) from None
            return

    @contextlib.contextmanager
    def held(self, *, break_stale: bool = False, wait: float = 0.0) -> Iterator[Lock]:
        """The lock for the length of a ``with`` block, released however it ends."""
        self.acquire(break_stale=break_stale, wait=wait)
        try:
            yield self
        finally:
            self.release()

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _failed(self, error: OSError) -> LedgerError:
        return LedgerError(
            f"cannot take the lock {self.path}: {error.strerror or error}; nothing was sent "
            "to Exotel: free space there (or fix the cause) and run again"
        )

    def release(self) -> None:
        found = self._holder()
        if found.get("pid") == os.getpid() and found.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def _holder(self) -> dict[str, Any]:
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    @staticmethod
    def _stale(found: dict[str, Any]) -> bool:
        pid = found.get("pid")
        if found.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _message(self, found: dict[str, Any]) -> str:
        who = (
            f"pid {found.get('pid')} on host {found.get('host')}, since {found.get('started')}"
            if found
            else "an unreadable lock file"
        )
        hint = (
            "that process is gone: run again with --break-lock to remove the stale lock"
            if self._stale(found)
            else "wait for that apply to finish (CI: one apply per account at a time)"
        )
        return f"ledger {self.path.with_suffix('')} is locked by {who}; {hint}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recorder:
    """The ledger during an apply: changed in memory, saved by group commit.

    Every change that must survive a crash (a new SID, a deleted trunk, a password
    version) is followed by ``await save()``, which returns once a write containing that
    change is on disk, or raises StateWriteError when that write failed (the file on disk is
    then still the last one written, ``durable``). Concurrent savers share one write (a
    thread does the file work, so the event loop keeps the other trunks' requests
    moving): as durable as a write per change, at a fraction of the cost when hundreds of
    trunks are created at once."""

    def __init__(self, path: Path, ledger: Ledger) -> None:
        self.path = path
        self.ledger = ledger
        self.durable = ledger  # what the file on disk holds
        self._version = 0
        self._written = 0
        self._writing: asyncio.Task[None] | None = None

    def update(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._version += 1

    async def save(self) -> None:
        wanted = self._version
        while self._written < wanted:
            if self._writing is None or self._writing.done():
                self._writing = asyncio.create_task(self._write())
            await asyncio.shield(self._writing)

    async def _write(self) -> None:
        version, snapshot = self._version, self.ledger
        await asyncio.to_thread(write, self.path, snapshot)
        if version > self._written:
            self._written, self.durable = version, snapshot
