"""One atomic write for every state file the reconciler keeps beside the manifests.

The ledger, drift's record of when each trunk was checked, and the ledgers a ``state
pull`` copies in all go through :func:`write_atomically`: a temporary file beside the
target, written and fsynced, renamed over it, then the folder fsynced. A crash leaves the
old file or the new one, never half of one; a failure (a full disk, a quota, an I/O
error, a read-only filesystem) removes the temporary file and raises ``StateWriteError``
naming the file and the system's reason. (The sandbox keeps its own copy: it imports
nothing from the rest of the reconciler.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from reconciler.errors import LedgerError


class StateWriteError(LedgerError):
    """A state file (the ledger, apply's journal, drift's record) could not be written: a
    full disk, a quota, an I/O error, a read-only filesystem, or any other failure of a
    write, an fsync or a rename. Apply sends no new request once one is raised."""

    def __init__(self, what: str, path: Path, error: OSError) -> None:
        self.what = what  # "ledger", "journal", ...
        self.path = path
        self.errno = error.errno
        code = errno.errorcode.get(error.errno, "") if error.errno is not None else ""
        self.reason = (error.strerror or str(error)) + (f" ({code})" if code else "")
        super().__init__(f"cannot write {what} {path}: {self.reason}")


def write_atomically(path: Path, text: str, *, what: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that it is the old file or the new one,
    whatever happens; ``what`` names the file in the error ("ledger", ...)."""
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        temporary = None
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as error:
        raise StateWriteError(what, path, error) from error
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
