"""Calls through Exotel in a box: place one with the sandbox's control endpoint, and wait
for its record (docs/sandbox.md, "Calls").

Called by ``pipeline.calling``. The sandbox's ``/_sandbox/calls`` is not Exotel's API, so
nothing here is sent to Exotel's hosts: the pipeline refuses those before calling. Only
this package speaks HTTP to Exotel's side (real or emulated); no credential is sent, as
the control endpoints take none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from reconciler.errors import ConfigError

WAIT_STEP_S = 30.0  # each long poll of the record
TIMEOUT_S = 10.0


async def place(
    base: str,
    *,
    account: str,
    to: str,
    caller: str,
    hangup_after: float,
    at: datetime | None,
    longest: float,
    play: str | None = None,
) -> dict[str, Any]:
    """Start the call, then its record once it has ended (or after ``longest`` seconds)."""
    body: dict[str, Any] = {
        "account": account,
        "to": to,
        "from": caller,
        "hangup_after_s": hangup_after,
    }
    if at is not None:
        body["at"] = at.isoformat()
    if play is not None:
        body["play"] = play
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S + WAIT_STEP_S) as http:
        try:
            started = await http.post("/_sandbox/calls", json=body, timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise ConfigError(f"cannot reach the sandbox at {base}: {exc}") from None
        said = _json(started)
        if started.status_code == 404 and "no control endpoint" not in str(said):
            raise ConfigError(
                f"{base} has no /_sandbox/calls: it is not a reconciler sandbox, or one older "
                "than calls"
            )
        if started.status_code != 201:
            raise ConfigError(f"the sandbox would not place the call: {said.get('error', said)}")
        sid = str(said["call_sid"])
        waited = 0.0
        while True:
            step = min(WAIT_STEP_S, max(longest - waited, 0.1))
            try:
                answer = await http.get(f"/_sandbox/calls/{sid}", params={"wait": step})
            except httpx.HTTPError as exc:
                raise ConfigError(f"lost the sandbox at {base} during call {sid}: {exc}") from None
            record = _json(answer)
            waited += step
            if record.get("status") != "in-progress" or waited >= longest:
                return record


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {"error": f"HTTP {response.status_code}: {response.text[:200]}"}
    return document if isinstance(document, dict) else {"error": str(document)[:200]}
