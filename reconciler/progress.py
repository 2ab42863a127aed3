"""Apply's progress: a bar on a terminal (rich), one structured log line per action otherwise.

Called by the CLI around an apply. On a terminal people want to see it move; in CI the
log is the record, so each action's outcome becomes a structlog event on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reconciler.actions import Outcome

log = structlog.get_logger("reconciler.apply")


@contextmanager
def reporter() -> Iterator[Callable[[Outcome], None]]:
    if not sys.stderr.isatty():

        def record(outcome: Outcome) -> None:
            log.info(
                "apply.action",
                address=outcome.action.address,
                operation=outcome.action.operation,
                status=outcome.status,
                detail=outcome.detail or None,
            )

        yield record
        return
    bar = Progress(
        TextColumn("[bold]apply"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("apply", total=None, last="")

    def advance(outcome: Outcome) -> None:
        mark = {"done": "", "failed": " FAILED", "skipped": " skipped", "manual": " manual"}
        bar.update(task, advance=1, last=f"{outcome.action.address}{mark[outcome.status]}")

    with bar:
        yield advance
