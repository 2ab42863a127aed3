"""The process's open-files limit, raised toward its hard limit where more is wanted.

Used by ``check`` (a socket per probe at once) and ``serve`` (a file per connection)."""

from __future__ import annotations

import contextlib


def open_files(wanted: int, spare: int) -> int:
    """How many of ``wanted`` files (sockets) the process can hold at once, keeping
    ``spare`` for its own: the soft limit is raised toward the hard one first (it is
    often 1,024). At least 1."""
    try:
        import resource  # noqa: PLC0415 (POSIX only)
    except ImportError:  # pragma: no cover (Windows)
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted + spare:
        return wanted
    raised = wanted + spare if hard == resource.RLIM_INFINITY else min(wanted + spare, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    return max(1, min(wanted, soft - spare))
