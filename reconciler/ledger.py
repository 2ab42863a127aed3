"""The ledger: what the reconciler owns in one account, and what the API cannot tell it.

Read by the CLI before planning; written by ``apply``. One JSON file per account,
beside the manifests and committed with them; never a secret in it:

    {
      "format_version": 1,
      "account": "prod", "account_sid": "ameyo5m",
      "trunks": {
        "blr_bot": {
          "sid": "trmum1...",
          "protect": true,                     # remembered: the manifest may be gone
          "alias": "+918040264208",            # last applied (settings unreadable in minimal)
          "credentials": {"voice_ai_user": {"password_version": 1}},
          "fingerprint": "sha256:..."          # of the trunk's last applied desired state
        }
      }
    }

Only trunks in the ledger are ever pruned; live trunks that are neither declared nor
here are reported as unmanaged and never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reconciler.errors import LedgerError
from reconciler.state import FORMAT_VERSION, Ledger, TrunkEntry, fingerprint

__all__ = ["Ledger", "TrunkEntry", "fingerprint", "read", "write"]


def _entry(name: str, raw: Any, path: Path) -> TrunkEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("sid"), str):
        raise LedgerError(f"ledger {path}: trunk {name!r} has no sid")
    credentials = raw.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise LedgerError(f"ledger {path}: trunk {name!r}: credentials must be an object")
    versions: dict[str, int] = {}
    for username, value in credentials.items():
        version = value.get("password_version") if isinstance(value, dict) else None
        if not isinstance(version, int):
            raise LedgerError(
                f"ledger {path}: trunk {name!r}: credential {username!r} has no password_version"
            )
        versions[username] = version
    return TrunkEntry(
        sid=raw["sid"],
        protect=bool(raw.get("protect", False)),
        alias=raw.get("alias") if isinstance(raw.get("alias"), str) else None,
        credentials=versions,
        fingerprint=raw.get("fingerprint") if isinstance(raw.get("fingerprint"), str) else None,
    )


def read(path: Path, *, account: str, account_sid: str) -> Ledger:
    """The ledger at ``path``, or an empty one when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Ledger(account, account_sid)
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"ledger {path} is not valid JSON ({exc}); restore it from git") from exc
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
    return Ledger(
        account, account_sid, {name: _entry(name, raw, path) for name, raw in trunks.items()}
    )


def write(path: Path, ledger: Ledger) -> None:
    """Replace the ledger file atomically: a temporary file beside it, fsync, rename,
    fsync the folder. A crash leaves the old ledger or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(ledger.document(), indent=2, sort_keys=False) + "\n"
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
