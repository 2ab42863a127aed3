"""The reconciler's error tree: every failure a user can meet, as one small hierarchy.

Raised by ``manifests`` (bad manifests), ``live.ledger`` (an unusable state file) and
``exotel`` (the Exotel API, translated once at the boundary with ``raise ... from``); caught by the
CLI, which turns each into a message and an exit code. No traceback reaches a user.

    ReconcilerError
    ├── ManifestError           the manifests are invalid (carries the problems)
    ├── LedgerError             a ledger file cannot be read or written
    │   └── Locked              another apply holds the ledger (names who)
    ├── Refused                 apply will not go on: stale plan, safety rail, no confirmation
    ├── ConfigError             a missing secret, no matching account, a bad option
    ├── GitHubError             GitHub's REST API failed, or a run's evidence does not hold
    └── ApiError                Exotel answered with a failure (or did not answer)
        ├── NotFound            1000 / HTTP 404: unknown trunk, child or route
        ├── Duplicate           1008: HTTP 200 with envelope 409, or a plain HTTP 409
        ├── Invalid             1001, 1002, 1007, 1011 / HTTP 400, 413, 415
        ├── AuthFailed          1010 / HTTP 401: wrong key or token, or the wrong region
        ├── RateLimited         HTTP 429, with Retry-After when the API sent one
        ├── ServerError         HTTP 5xx, or an answer that is not Exotel's envelope
        └── TransportError      no answer: connection refused or dropped, timeout
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.manifests.problems import Problem


class ReconcilerError(Exception):
    """Base of every error the reconciler reports to a user."""


class ManifestError(ReconcilerError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the manifests")
        self.problems = tuple(problems)


class LedgerError(ReconcilerError):
    pass


class Locked(LedgerError):
    """Another apply holds the ledger's lock."""


class Refused(ReconcilerError):
    """Apply will not go on: a stale plan, a safety rail, or nobody to confirm (exit 3)."""


class ConfigError(ReconcilerError):
    pass


class GitHubError(ReconcilerError):
    """GitHub's REST API answered with a failure, or not at all (the ``ci`` commands)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Interrupted(ReconcilerError):
    """SIGINT or SIGTERM stopped an apply: the ledger was saved and the lock released."""


@dataclass(frozen=True)
class CallInfo:
    """Which call failed and what Exotel said about it (never credentials)."""

    account: str = ""
    method: str = ""
    path: str = ""
    status: int | None = None
    code: int | None = None
    request_id: str | None = None
    partner: str = ""  # set for a partner platform's API (LiveKit), not Exotel's


class ApiError(ReconcilerError):
    """A failed call: where it went, what Exotel said, and its request id."""

    def __init__(self, message: str, call: CallInfo = CallInfo()) -> None:
        super().__init__(message)
        self.message = message
        self.call = call

    @property
    def code(self) -> int | None:
        return self.call.code

    def __str__(self) -> str:
        call = self.call
        where = f"{call.method} {call.path}".strip()
        said = f"HTTP {call.status}" if call.status is not None else "no answer"
        if call.code is not None:
            said += f", error {call.code}"
        request = f", request_id {call.request_id}" if call.request_id else ""
        account = f"account {call.account}: " if call.account else ""
        if call.partner:
            account = f"partner {call.partner}: "
        return f"{account}{where}: {self.message} ({said}{request})"


class NotFound(ApiError):
    pass


class Duplicate(ApiError):
    pass


class Invalid(ApiError):
    pass


class AuthFailed(ApiError):
    pass


class RateLimited(ApiError):
    def __init__(
        self, message: str, call: CallInfo = CallInfo(), *, retry_after: float | None = None
    ) -> None:
        super().__init__(message, call)
        self.retry_after = retry_after


class ServerError(ApiError):
    pass


class TransportError(ApiError):
    """No answer. ``maybe_committed``: the request may have reached the server and been
    carried out (a timeout or a connection dropped after sending), so a write must be
    checked before it is retried."""

    def __init__(self, message: str, call: CallInfo = CallInfo(), *, maybe_committed: bool) -> None:
        super().__init__(message, call)
        self.maybe_committed = maybe_committed
