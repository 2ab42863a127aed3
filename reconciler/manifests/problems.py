"""Problems found in manifests: where (file, line, column, field path) and what to do.

Created by ``yamlsource``, ``load`` and ``checks``; printed by the CLI. Pure.

Two severities, distinct on purpose:

* ``error``: the Exotel API would refuse the change, or calls would break. ``validate``
  exits 1 and no command goes on to call the API.
* ``warning``: allowed, but probably not what was meant (an alias that is none of the
  account's DIDs, ``allow_replace`` on a protected trunk). Printed; exit 0.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem is about the file as a whole
    column: int  # 1-based
    severity: Severity
    path: str  # field path such as trunks[2].whitelisted_ips[0]; "" for the file
    message: str

    def text(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {self.severity}: {field}{self.message}"

    def document(self) -> dict[str, Any]:
        return asdict(self)


def format_path(parts: Iterable[str | int]) -> str:
    """``("trunks", 2, "whitelisted_ips", 0)`` -> ``trunks[2].whitelisted_ips[0]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def plural(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest choice (any case), or nothing."""
    options = sorted(choices)
    same = [choice for choice in options if choice.lower() == word.lower()]
    close = same or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


Loc = tuple[str | int, ...]
Locator = Callable[[Loc, bool], tuple[int, int]]


@dataclass(frozen=True)
class Origin:
    """Where a declared account or trunk sits: its file, its path, and how to find lines."""

    file: str
    path: Loc
    locate: Locator = field(compare=False, repr=False)
    # For a model rebuilt without its broken list items: list field -> index as written.
    written_index: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False)

    def _written(self, sub: Loc) -> Loc:
        if len(sub) >= 2 and isinstance(sub[0], str) and isinstance(sub[1], int):
            kept = self.written_index.get(sub[0])
            if kept is not None:
                return (sub[0], kept[sub[1]], *sub[2:])
        return sub

    def position(self, sub: Loc = (), *, at_key: bool = False) -> tuple[int, int]:
        return self.locate((*self.path, *self._written(sub)), at_key)

    def problem(
        self, sub: Loc, severity: Severity, message: str, *, at_key: bool = False
    ) -> Problem:
        line, column = self.position(sub, at_key=at_key)
        path = format_path((*self.path, *self._written(sub)))
        return Problem(self.file, line, column, severity, path, message)

    def where(self, sub: Loc = ()) -> str:
        line, _ = self.position(sub)
        return f"{self.file}:{line}"
