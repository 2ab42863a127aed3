"""Exotel's response envelopes and error codes, as the sandbox answers them.

Called by the sandbox's handlers and server. Pure: builds dictionaries, does no I/O.

Shapes follow docs/exotel-api.md section 2 and the captured examples in
``tests/vendor/exotel-examples``: every answer carries ``request_id``, ``method`` and
``http_code``; a single object sits in ``response`` as ``{code, error_data, status,
data}``; lists and batches put an array of such items in ``response`` beside a
``metadata`` object. The envelope's ``code``, not the HTTP status, tells success: a
duplicate is HTTP 200 with envelope code 409 (measured live).

Error tree (all raised as :class:`ApiError`, caught once by the server)::

    ApiError(http_status, envelope_code, error code, message, description)
      1000 Not Found              404  unknown trunk, child or route; a row the profile lacks
      1001 Mandatory Parameter    400  a required field absent or null
      1002 Invalid parameter      400  a value breaks a rule
      1007 Invalid request body   400  unparseable JSON or wrong JSON types (413 when over 1 MiB)
      1008 Duplicate resource     200  (envelope 409)
      1010 Authorization failed   401
      1011 unsupported content    415
      429  Too Many Requests      429  rate limit, too many in flight, injected fault
      500  Internal Server Error  500  injected fault; a change the state file could not take
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

JSON = dict[str, Any]
T = TypeVar("T")


class ApiError(Exception):
    """One failure as Exotel reports it: HTTP status, envelope code and ``error_data``."""

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        description: str,
        *,
        envelope_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.http_status = http_status
        self.envelope_code = http_status if envelope_code is None else envelope_code
        self.code = code
        self.message = message
        self.description = description
        self.headers = headers or {}


def not_found(description: str = "Not Found") -> ApiError:
    return ApiError(404, 1000, "Not Found", description)


def missing(field_name: str) -> ApiError:
    # Exotel's descriptions read "TrunkName is mandatory", "Ip is mandatory".
    words = "".join(part.capitalize() for part in field_name.split("_"))
    return ApiError(400, 1001, "Mandatory Parameter missing", f"{words} is mandatory")


def invalid(description: str) -> ApiError:
    return ApiError(400, 1002, "Invalid parameter", description)


def bad_body(description: str) -> ApiError:
    return ApiError(400, 1007, "Invalid request body", description)


def too_large(limit: int) -> ApiError:
    return ApiError(413, 1007, "Invalid request body", f"Request body is over {limit} bytes")


def duplicate(description: str) -> ApiError:
    # Measured live: HTTP 200, envelope 409 (docs/exotel-api.md section 6).
    return ApiError(200, 1008, "Duplicate resource", description, envelope_code=409)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        1010,
        "Authorization failed",
        "Authorization failed",
        headers={"WWW-Authenticate": 'Basic realm="Exotel"'},
    )


def unsupported_media(content_type: str) -> ApiError:
    shown = content_type or "(none)"
    return ApiError(415, 1011, "unsupported content type", f"Content type {shown} is not supported")


def too_many_requests(retry_after: int | None, description: str) -> ApiError:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return ApiError(429, 429, "Too Many Requests", description, headers=headers)


def internal_error(description: str = "Internal Server Error") -> ApiError:
    return ApiError(500, 500, "Internal Server Error", description)


def not_saved() -> ApiError:
    """A change ``--state`` could not save: undone, and answered as a server error."""
    return internal_error("The change could not be saved, so it was not made")


def item_ok(data: JSON) -> JSON:
    return {"code": 200, "error_data": None, "status": "success", "data": data}


def item_error(error: ApiError) -> JSON:
    return {
        "code": error.envelope_code,
        "error_data": {
            "code": error.code,
            "message": error.message,
            "description": error.description,
        },
        "status": "failure",
        "data": None,
    }


@dataclass(frozen=True)
class Reply:
    """What a handler answers: the HTTP status and the envelope without its header fields."""

    http_status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


def single(data: JSON) -> Reply:
    return Reply(200, {"response": item_ok(data)})


def failure(error: ApiError) -> Reply:
    return Reply(error.http_status, {"response": item_error(error)}, dict(error.headers))


def listing(items: Sequence[JSON], metadata: JSON | None) -> Reply:
    """A list page; ``metadata`` is None only when the whole collection is empty."""
    body: JSON = {} if metadata is None else {"metadata": metadata}
    body["response"] = [item_ok(item) for item in items]
    return Reply(200, body)


def per_item(items: Iterable[T], apply: Callable[[T], JSON]) -> list[JSON]:
    """One envelope per batch item: the item's data, or the error that item raised."""
    results = []
    for item in items:
        try:
            results.append(item_ok(apply(item)))
        except ApiError as error:
            results.append(item_error(error))
    return results


def batch(results: Sequence[JSON], *, always_report_failed: bool = True) -> Reply:
    """A batch answer: 200 when every item succeeded, 207 when any failed (even all).

    The captured settings answer has ``metadata`` ``{total, success}`` without
    ``failed`` while the destination answers carry ``failed: 0``; the sandbox copies
    both, so clients must not rely on the key.
    """
    failed = sum(1 for item in results if item["status"] != "success")
    metadata: JSON = {"total": len(results), "success": len(results) - failed}
    if failed or always_report_failed:
        metadata["failed"] = failed
    return Reply(207 if failed else 200, {"metadata": metadata, "response": list(results)})


def render(reply: Reply, *, request_id: str, method: str) -> JSON:
    """The full envelope, header fields first as in Exotel's captured answers."""
    return {
        "request_id": request_id,
        "method": method,
        "http_code": reply.http_status,
        **reply.body,
    }
