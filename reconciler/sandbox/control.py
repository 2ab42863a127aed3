"""The sandbox's control endpoints, for tests, benchmarks and demos (docs/architecture.md,
"The sandbox").

Called by the sandbox's request pipeline for every path under ``/_sandbox/``. Never
authenticated, rate limited, faulted, delayed or counted in the stats; bodies are
read as JSON whatever the content type says.

    POST /_sandbox/reset    as if just started: data, rate-limit windows, faults, stats
                            (500 and nothing reset when --state cannot take it)
    GET  /_sandbox/state    every trunk with its children (passwords only as SHA-256)
    GET  /_sandbox/stats    {"requests", "by_route", "by_status"}
    POST /_sandbox/faults   replace the fault rules (a JSON list; [] clears them)
    GET  /_sandbox/faults   the rules now in force, with the counts they have left

and the voice side's, ``/_sandbox/calls``, ``/_sandbox/flows`` and ``/_sandbox/pstn``
(``voice.endpoints``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.sandbox.faults import RuleError, parse_rules

if TYPE_CHECKING:
    from reconciler.sandbox.app import Sandbox

ENDPOINTS = (
    "POST /_sandbox/reset",
    "GET /_sandbox/state",
    "GET /_sandbox/stats",
    "POST /_sandbox/faults",
    "GET /_sandbox/faults",
    "POST /_sandbox/calls",
    "GET /_sandbox/calls",
    "GET /_sandbox/calls/{call_sid}",
    "PUT /_sandbox/pstn/{number}",
    "GET /_sandbox/pstn",
    "PUT /_sandbox/flows/{did}",
    "GET /_sandbox/flows",
    "DELETE /_sandbox/flows/{did}",
    "PUT /_sandbox/apps/{app_id}",
    "GET /_sandbox/apps",
    "DELETE /_sandbox/apps/{app_id}",
)
VOICE = ("/_sandbox/calls", "/_sandbox/pstn", "/_sandbox/flows", "/_sandbox/apps")


def _json(document: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(document, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _shown(document: dict[str, Any]) -> dict[str, Any]:
    """The state as tests see it: each credential's digest secret (HA1) left out, as
    only its password's SHA-256 is shown."""
    for account in document["accounts"].values():
        for trunk in account["trunks"]:
            for credential in trunk["credentials"]:
                credential.pop("ha1", None)
    return document


async def handle(sandbox: Sandbox, request: web.BaseRequest) -> web.Response:
    endpoint = f"{request.method} {request.path}"
    if any(request.path == p or request.path.startswith(p + "/") for p in VOICE):
        status, document = await sandbox.voice.handle(
            request.method, request.path, dict(request.query), await request.read()
        )
        return _json(document, status=status)
    if endpoint == "POST /_sandbox/reset":
        problem = sandbox.reset()
        if problem is not None:  # nothing was reset: memory still matches the state file
            return _json({"ok": False, "error": f"nothing reset: {problem}"}, status=500)
        return _json({"ok": True})
    if endpoint == "GET /_sandbox/state":
        return _json(_shown(sandbox.store.dump()))
    if endpoint == "GET /_sandbox/stats":
        return _json(sandbox.stats.report())
    if endpoint == "GET /_sandbox/faults":
        return _json({"rules": [rule.describe() for rule in sandbox.faults.rules]})
    if endpoint == "POST /_sandbox/faults":
        try:
            rules = parse_rules(json.loads(await request.read() or b"null"))
        except (ValueError, RecursionError) as exc:
            message = str(exc) if isinstance(exc, RuleError) else f"not valid JSON: {exc}"
            return _json({"ok": False, "error": message}, status=400)
        sandbox.faults.replace(rules)
        return _json({"ok": True})
    return _json(
        {"ok": False, "error": f"no control endpoint {endpoint}", "endpoints": list(ENDPOINTS)},
        status=404,
    )
