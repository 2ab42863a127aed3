"""Exotel's envelopes, decoded once: success or which error of the tree, per item for batches.

Used by ``session``. The envelope decides, never the HTTP status alone: a duplicate
comes back as HTTP 200 with envelope code 409 (measured live) or as a plain HTTP 409
(Exotel's sample repository), and both are :class:`Duplicate`. Batch answers (HTTP
207) carry one envelope per item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import (
    ApiError,
    AuthFailed,
    CallInfo,
    Duplicate,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class ItemResult:
    """One item of a batch answer (destination URIs, settings)."""

    data: JSON | None
    error: ApiError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def retry_after_of(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_for(status: int, envelope: Mapping[str, Any] | None) -> type[ApiError]:
    code = envelope.get("code") if envelope else None
    error_data = (envelope or {}).get("error_data") or {}
    error_code = error_data.get("code") if isinstance(error_data, Mapping) else None
    if error_code == 1008 or code == 409 or status == 409:
        return Duplicate
    if status == 401 or error_code == 1010:
        return AuthFailed
    if status == 429 or code == 429:
        return RateLimited
    if status == 404 or error_code == 1000:
        return NotFound
    if status >= 500 or (isinstance(code, int) and code >= 500):
        return ServerError
    return Invalid


def envelope_error(envelope: Mapping[str, Any], status: int, info: CallInfo) -> ApiError:
    error_data = envelope.get("error_data") or {}
    if not isinstance(error_data, Mapping):
        error_data = {}
    message = str(error_data.get("description") or error_data.get("message") or "failed")
    code = error_data.get("code") if isinstance(error_data.get("code"), int) else None
    kind = error_for(status, envelope)
    call = CallInfo(info.account, info.method, info.path, status, code, info.request_id)
    return kind(message, call)


def with_status(info: CallInfo, status: int | None, request_id: str | None) -> CallInfo:
    return CallInfo(info.account, info.method, info.path, status, info.code, request_id)


_UNREAD = object()


def request_id_of(response: httpx.Response, document: Any = _UNREAD) -> str | None:
    if document is _UNREAD:
        try:
            document = response.json()
        except ValueError:
            return None
    value = document.get("request_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
