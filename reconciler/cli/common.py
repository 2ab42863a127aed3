"""What the commands share when they run: exit codes, the event loop, GitHub's extras.

Each command's module (``cli.commands``) parses, calls one pipeline function, prints and
returns one of these exit codes (docs/architecture.md, "Exit codes"): 0 success, 1 error,
2 changes or drift present, 3 refused. Output for machines goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from reconciler import render
from reconciler.cli import github
from reconciler.errors import ConfigError
from reconciler.manifests.load import Manifests
from reconciler.manifests.secrets import environment
from reconciler.manifests.windows import IST
from reconciler.pipeline.accounts import select

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_REFUSED = 0, 1, 2, 3
T = TypeVar("T")


GRACE = 5.0  # seconds the requests in flight get to be answered after a first signal


def run(work: Coroutine[Any, Any, T], stopping: asyncio.Event | None = None) -> T:
    """Run a command's coroutine; SIGTERM (a CI runner cancelling the job) stops it the way
    SIGINT does, by cancelling it, so its cleanup runs: locks released, ledger saved.

    With ``stopping`` (an apply that will not prompt), the first SIGINT or SIGTERM sets it
    instead: no new request is sent, and the requests in flight get ``GRACE`` seconds to be
    answered and recorded before the cancel. A second signal cancels at once. GitHub
    cancels a job with SIGINT, then SIGTERM 7.5 s later, which fits."""

    async def main() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def signalled() -> None:
            assert task is not None
            if stopping is None or stopping.is_set():
                task.cancel()
                return
            stopping.set()
            print(
                f"reconciler: stopping: no new request is sent; those in flight get {GRACE:g} s "
                "to be answered and recorded (signal again to stop now)",
                file=sys.stderr,
                flush=True,
            )
            loop.call_later(GRACE, task.cancel)

        signals = (signal.SIGTERM, signal.SIGINT) if stopping is not None else (signal.SIGTERM,)
        if task is not None:
            for signum in signals:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, signalled)
        return await work

    return asyncio.run(main())


def print_annotations(manifests: Manifests) -> None:
    """On standard error, which the runner reads too, so ``--format json`` stays parseable."""
    for line in github.annotate(manifests.problems):
        print(line, file=sys.stderr)


def annotated(manifests: Manifests, args: argparse.Namespace) -> Manifests:
    """On GitHub, manifest errors also become annotations on the pull request's diff.
    With ``--shard`` that holds none of the accounts, says so (on standard error): the
    run goes on, with nothing to do."""
    if manifests.errors and github.enabled(getattr(args, "github", False), environment()):
        print_annotations(manifests)
    shard = getattr(args, "shard", None)
    if shard is not None and not manifests.errors:
        with contextlib.suppress(ConfigError):  # an unknown --account is told later
            if not select(manifests, args.account or [], shard):
                index, count = shard
                print(
                    f"reconciler: --shard {index}/{count} holds none of the accounts: "
                    "nothing to do",
                    file=sys.stderr,
                )
    return manifests


def on_github(text: str, args: argparse.Namespace) -> str:
    """Any markdown body for GitHub: its footer, and bounded to a comment's size."""
    environ = environment()
    if not github.enabled(getattr(args, "github", False), environ):
        return text
    return render.bounded(text, footer=github.footer(environ), elsewhere=github.elsewhere(environ))


def unwatched() -> bool:
    """Nobody watches a progress bar on stderr (a CI log, a file): log each outcome instead."""
    return not sys.stderr.isatty()


def moment(text: str, option: str = "--at") -> datetime:
    """``--at`` (serve's also as ``--now``): an ISO 8601 time; without an offset it is
    Asia/Kolkata's, as rules are."""
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if clock:  # a time today, in Asia/Kolkata
        text = f"{datetime.now(IST).date().isoformat()}T{int(clock[1]):02d}:{clock[2]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a time: write it as 2026-12-02T10:30 or 10:30 (today; "
            "Asia/Kolkata), or with an offset, 2026-12-02T05:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=IST)


def read_text(path: str) -> str:
    """A file a command was given, or a ``ConfigError`` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None


__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_REFUSED",
    "annotated",
    "moment",
    "on_github",
    "print_annotations",
    "read_text",
    "run",
    "unwatched",
]
