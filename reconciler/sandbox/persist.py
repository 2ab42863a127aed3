"""The sandbox's state file: written atomically after every change, read at start.

Called by the sandbox's request pipeline. The write is the usual crash-safe dance: a
temporary file beside the target, fsync, rename over the target, fsync the directory,
so a crash leaves either the old state or the new one, never half of either.

At start the pipeline reads the file, then saves at once (:func:`first_save`): the same
write as every later one, so a path that cannot take it stops the start with one line
saying why, rather than failing the first change a client makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

# What would be right, by what was wrong.
_TAKES_A_FILE = "--state takes a file"
_WRITABLE = (
    f"{_TAKES_A_FILE} in a folder this user can write "
    "(each save writes a temporary file there, then renames it over the state file)"
)
_MOVE_IT = "move it away to start empty, or give --state another file"


class StateFileError(Exception):
    """The state file cannot be used; the message says why and what would be right."""


class NotDurableError(OSError):
    """The new state replaced the file, but its folder could not be synced afterwards.

    The file holds the new state (memory and disk agree); only its survival of a power
    cut is in doubt.
    """


def save(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` with ``document``, atomically; OSError leaves the old file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise NotDurableError(exc.errno, exc.strerror, exc.filename) from exc


def first_save(path: Path, document: dict[str, Any]) -> None:
    """The start's save, which proves ``path`` can be written; StateFileError if not."""
    try:
        save(path, document)
    except OSError as exc:
        raise StateFileError(
            f"cannot write state file {path}: {reason(path, exc)}; {_remedy(path)}"
        ) from exc


def load(path: Path) -> dict[str, Any] | None:
    """The saved document, or None when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(
            f"cannot read state file {path}: {reason(path, exc)}; {_remedy(path)}"
        ) from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StateFileError(f"state file {path} is not valid JSON: {exc}; {_MOVE_IT}") from exc
    if not isinstance(document, dict):
        raise StateFileError(f"state file {path} must hold a JSON object; {_MOVE_IT}")
    return document


def unusable(path: Path, problem: str) -> StateFileError:
    """A state file that reads as JSON but not as the sandbox's state."""
    return StateFileError(f"state file {path}: {problem}; {_MOVE_IT}")


def reason(path: Path, exc: OSError) -> str:
    """The OS's words for ``exc``, and which part of ``path`` is in the way when one is."""
    words = exc.strerror or type(exc).__name__
    if _is_folder(path):
        return f"{words} ({path} is a folder)"
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return f"{words} ({blocker} is a file, not a folder)"
    return words


def _remedy(path: Path) -> str:
    if _is_folder(path):
        return f"{_TAKES_A_FILE}, such as {path / 'sandbox.json'}"
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return f"{_TAKES_A_FILE} in a folder, and {blocker} is not one: choose another path"
    return _WRITABLE


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a folder."""
    for parent in path.parents:
        try:
            mode = parent.stat().st_mode
        except OSError:  # absent, or under a file itself: look further up
            continue
        return None if stat.S_ISDIR(mode) else parent
    return None
