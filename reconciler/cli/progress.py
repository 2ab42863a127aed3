"""Apply's progress: a bar on a terminal (rich), one structured log line per action otherwise.

Called by the CLI around an apply. On a terminal people want to see it move; in CI the
log is the record, so each action's outcome becomes a structlog event on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reconciler.plan.actions import Outcome, Status

log = structlog.get_logger("reconciler.apply")
MARKS = {
    Status.DONE: "",
    Status.FAILED: " FAILED",
    Status.SKIPPED: " skipped",
    Status.MANUAL: " manual",
}


class Reporter:
    """Called with each outcome; ``begin`` says how many actions there will be."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self.task = bar.add_task("apply", total=None, last="") if bar else None
        self.started = False

    def begin(self, total: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, total=total)

    def __call__(self, outcome: Outcome) -> None:
        if self.bar is not None and self.task is not None:
            # Drawn from the first outcome on: never under the confirmation prompt, where
            # it would redraw over what the user types.
            self.started = True
            self.bar.start()
            last = f"{outcome.action.address}{MARKS[outcome.status]}"
            self.bar.update(self.task, advance=1, last=last)
            return
        log.info(
            "apply.action",
            address=outcome.action.address,
            operation=outcome.action.operation,
            status=outcome.status,
            detail=outcome.detail or None,
        )


@contextmanager
def reporter() -> Iterator[Reporter]:
    if not sys.stderr.isatty():
        yield Reporter(None)
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
    shown = Reporter(bar)
    try:
        yield shown
    finally:
        if shown.started:
            bar.stop()


class Counter:
    """``start(total)``, then ``tick()`` per item done."""

    def __init__(self, bar: Progress | None, what: str) -> None:
        self.bar = bar
        self.task = bar.add_task(what, total=None) if bar is not None else None

    def start(self, total: int) -> None:
        if self.bar is not None and self.task is not None and total > 1:
            self.bar.update(self.task, total=total)
            self.bar.start()

    def tick(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=1)


@contextmanager
def counter(what: str) -> Iterator[Counter]:
    """A bar that counts on a terminal (``check``); silent otherwise, where the report
    that follows is the record."""
    if not sys.stderr.isatty():
        yield Counter(None, what)
        return
    bar = Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    try:
        yield Counter(bar, what)
    finally:
        bar.stop()
