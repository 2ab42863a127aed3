"""One alarm from many shard jobs: the drift workflow runs ``drift --shard I/N`` in a
matrix job per shard, each keeping ``<kind>-<I>.md`` (its markdown report) and
``<kind>-<I>.status`` (its exit code) in an artifact; the job that keeps the issue reads
them all back, and this module makes them one body and one status. Pure but for reading
the folder.

The status follows the command's exit codes: 2 when any shard found drift (the issue is
opened or updated with what was found, and says which shards could not look), 1 when none
found drift but a shard failed or kept no report (the issue is left as it is: nobody
knows), 0 only when every shard looked and found nothing (the issue is closed).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ConfigError
from reconciler.github.reports import newest


@dataclass(frozen=True)
class Shard:
    index: int
    status: int  # the command's exit code; 1 also when the shard kept no report
    body: str  # its markdown, "" when it kept none


@dataclass(frozen=True)
class Merged:
    status: int
    body: str
    failed: tuple[int, ...]


def gather(source: Path, kind: str, run_id: str, into: Path) -> dict[str, Path]:
    """Copy each shard's newest attempt (artifact ``<kind>-shard<I>-<run id>-<attempt>``,
    downloaded a folder each) into one folder; the shards' files never overlap. Returns
    the folder taken per shard."""
    kept = newest(source, kind, run_id)
    into.mkdir(parents=True, exist_ok=True)
    for folder in kept.values():  # the shards' files never overlap: any order
        shutil.copytree(folder, into, dirs_exist_ok=True)
    return kept


def read(folder: Path, expected: Sequence[int], kind: str = "drift") -> list[Shard]:
    """Each expected shard's report and exit code; a missing or unreadable one is a
    failed shard, never a clean one."""
    found = []
    for index in expected:
        body_path, status_path = folder / f"{kind}-{index}.md", folder / f"{kind}-{index}.status"
        try:
            status = int(status_path.read_text(encoding="utf-8").strip())
            body = body_path.read_text(encoding="utf-8")
        except (OSError, ValueError, UnicodeDecodeError):
            status, body = 1, ""
        found.append(Shard(index, status if status in (0, 1, 2) else 1, body))
    return found


def merge(shards: Sequence[Shard], count: int) -> Merged:
    """One body and one status. A single shard's report is its own body, unchanged."""
    if not shards:
        raise ConfigError("no shard was expected: give --expect the shards' JSON list")
    failed = tuple(s.index for s in shards if s.status == 1)
    drifted = [s for s in shards if s.status == 2]
    status = 2 if drifted else 1 if failed else 0
    if len(shards) == 1 and count == 1:
        return Merged(status, shards[0].body, failed)
    clean = [s for s in shards if s.status == 0]
    said = []
    if drifted:
        said.append(f"drift in {_shards(drifted, count)}")
    if failed:
        said.append(f"{_numbers(failed, count)} could not look (not checked this run)")
    if clean:
        said.append(f"none in {_shards(clean, count)}")
    first = _marker(shards)
    lines = [
        f"{first.split(':', 1)[0]}:shards -->" if first else "<!-- reconciler-drift:shards -->",
        f"### Exotel drift: {len(shards)} of {count} shards",
        "",
        f"**{'; '.join(said).capitalize()}.**",
        "",
    ]
    for shard in [*drifted, *clean]:
        lines += [f"#### Shard {shard.index}/{count}", "", _unmarked(shard.body).strip(), ""]
    return Merged(status, "\n".join(lines) + "\n", failed)


def _marker(shards: Sequence[Shard]) -> str:
    for shard in shards:
        first = shard.body.split("\n", 1)[0]
        if first.startswith("<!--"):
            return first
    return ""


def _unmarked(body: str) -> str:
    """A shard's body without its HTML marker and its heading: the merged body has its own."""
    lines = body.split("\n")
    while lines and (lines[0].startswith("<!--") or lines[0].startswith("### ")):
        lines.pop(0)
    return "\n".join(lines)


def _shards(shards: Sequence[Shard], count: int) -> str:
    return _numbers([s.index for s in shards], count)


def _numbers(indexes: Sequence[int], count: int) -> str:
    word = "shard" if len(indexes) == 1 else "shards"
    return f"{word} {', '.join(f'{i}/{count}' for i in indexes)}"
