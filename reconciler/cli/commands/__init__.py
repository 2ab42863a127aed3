"""One module per command: its parser, its run, its outcome and exit code.

Each module's ``register(commands)`` adds its parser to the top-level subcommands and
binds its run (``set_defaults(run=...)``). ``COMMANDS`` is the one list of them, in the
order ``reconciler --help`` shows them.
"""

from __future__ import annotations

from reconciler.cli.commands import (
    apply,
    call,
    check,
    ci,
    drift,
    graph,
    importing,
    plan,
    render_partner,
    sandbox,
    schema,
    serve,
    state,
    trace,
    validate,
)

COMMANDS = (
    validate,
    plan,
    apply,
    drift,
    importing,
    state,
    ci,
    check,
    graph,
    render_partner,
    trace,
    call,
    serve,
    schema,
    sandbox,
)

__all__ = ["COMMANDS"]
