"""Structured logs for the reconciler's commands: stderr, JSON unless it is a terminal.

Called once by the CLI. Stdout is for what the command produces (plans, reports);
logs never go there. The level defaults to warning so a plan stays readable (serve logs
each decision at info; apply, when stderr is not a terminal, logs each action's outcome
at info as its progress);
``-v`` adds retries and progress, ``-vv`` every API request (method, path, status,
request id, duration; never a secret).
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(*, level: int = logging.WARNING) -> None:
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Standard error as it is when a line is written, not when this ran: a test's
        # captured stream, long closed, must not break a later log line.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
