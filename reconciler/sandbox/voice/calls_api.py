"""Exotel's Calls API, as far as calls through a flow go (docs/exotel-api.md, "Calls").

Called by the sandbox's request pipeline for ``/v1/Accounts/{sid}/Calls/...``, after the
same authentication and rate limit as the trunk API:

    POST /v1/Accounts/{sid}/Calls/connect[.json]    call ``From`` (the customer); once
         they answer, connect them to the flow of ``Url``'s app id, shown ``CallerId``
    GET  /v1/Accounts/{sid}/Calls/{CallSid}[.json]  the call's details and status

As Exotel's v1 API does, form fields in, XML out (``<TwilioResponse><Call>``), or JSON
when the path ends in ``.json``; numbers accepted as ``0`` and ten digits or in E.164,
and written back with the ``0``. The flow of an app id is set with ``PUT
/_sandbox/apps/{app_id}``. ``StatusCallback`` is POSTed ``CallSid``, ``Status``,
``RecordingUrl`` and ``DateUpdated`` when the call ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from reconciler.sandbox.voice import flows
from reconciler.sandbox.voice.records import Call

# Exotel's Url for a flow: http://my.exotel.com/{sid}/exoml/start_voice/{app_id}, or the
# older http://my.exotel.in/exoml/start/{app_id}.
_APP = re.compile(r"https?://[^/]+/(?:[^/]+/)?exoml/start(?:_voice)?/(?P<app>[A-Za-z0-9_-]+)/?")
_NATIONAL = re.compile(r"0[1-9][0-9]{9}")
CALL_FIELDS = (
    "Sid",
    "ParentCallSid",
    "DateCreated",
    "DateUpdated",
    "AccountSid",
    "To",
    "From",
    "PhoneNumberSid",
    "Status",
    "StartTime",
    "EndTime",
    "Duration",
    "Price",
    "Direction",
    "AnsweredBy",
    "ForwardedFrom",
    "CallerName",
    "Uri",
    "RecordingUrl",
)


class ApiCallError(ValueError):
    """A request the Calls API refuses: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def e164(value: str, name: str) -> str:
    """A number as the API takes it (``09812345678`` or ``+919812345678``), in E.164."""
    text = value.strip()
    if _NATIONAL.fullmatch(text):
        return "+91" + text[1:]
    if re.fullmatch(r"\+[1-9][0-9]{7,14}", text):
        return text
    raise ApiCallError(400, f"{name} {value!r} is not a phone number (0 and ten digits, or E.164)")


@dataclass(frozen=True)
class Connect:
    """A validated ``Calls/connect`` request."""

    customer: str
    caller_id: str
    app_id: str
    time_limit: float
    time_out: float
    status_callback: str | None


def connect_request(form: Mapping[str, str]) -> Connect:
    missing = [name for name in ("From", "CallerId", "Url") if not form.get(name)]
    if missing:
        raise ApiCallError(400, f"missing mandatory parameter(s): {', '.join(missing)}")
    found = _APP.fullmatch(form["Url"].strip())
    if found is None:
        raise ApiCallError(
            400,
            "Url must be a flow's, like http://my.exotel.com/<sid>/exoml/start_voice/<app_id>",
        )
    limits = {"TimeLimit": (14400.0, 14400.0), "TimeOut": (60.0, 45.0)}
    values = {}
    for name, (most, default) in limits.items():
        raw = form.get(name)
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ApiCallError(400, f"{name} must be a number of seconds") from None
        if not 0 < value <= most:
            raise ApiCallError(400, f"{name} must be between 1 and {most:g} seconds")
        values[name] = value
    callback = form.get("StatusCallback") or None
    if callback is not None and not callback.startswith(("http://", "https://")):
        raise ApiCallError(400, "StatusCallback must be an http or https URL")
    return Connect(
        customer=e164(form["From"], "From"),
        caller_id=e164(form["CallerId"], "CallerId"),
        app_id=found["app"],
        time_limit=values["TimeLimit"],
        time_out=values["TimeOut"],
        status_callback=callback,
    )


STATUSES = {  # a call record's status -> the Calls API's
    "in-progress": "in-progress",
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no-answer",
    "failed": "failed",
}


def details(call: Call) -> dict[str, Any]:
    """The Call object of Exotel's v1 API for a call record."""
    answered = [leg for leg in call.legs if leg.answered_ms is not None]
    ended = call.done.is_set()
    duration = None
    if ended and answered:
        ends = [leg.ended_ms or 0 for leg in answered]
        duration = round((max(ends) - (answered[0].answered_ms or 0)) / 1000)
    created = flows.stamp(call.created_at)
    return {
        "Sid": call.sid,
        "ParentCallSid": None,
        "DateCreated": created,
        "DateUpdated": flows.stamp(call.updated_at()),
        "AccountSid": call.account,
        "To": None,  # a call to a flow has no second number (Exotel's example)
        "From": flows.national(call.from_),
        "PhoneNumberSid": flows.national(call.to),
        "Status": STATUSES.get(call.status, call.status),
        "StartTime": created,
        "EndTime": flows.stamp(call.updated_at()) if ended else None,
        "Duration": duration,
        "Price": None,
        "Direction": call.direction,
        "AnsweredBy": None,
        "ForwardedFrom": None,
        "CallerName": None,
        "Uri": f"/v1/Accounts/{call.account}/Calls/{call.sid}.json",
        "RecordingUrl": None,
    }


def render(document: Mapping[str, Any], *, as_json: bool) -> tuple[str, str]:
    """(body, content type): JSON, or XML in a ``TwilioResponse`` as Exotel's v1 API."""
    if as_json:
        return json.dumps(document), "application/json"
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<TwilioResponse>"]
    for outer, fields in document.items():
        lines.append(f" <{outer}>")
        for name, value in fields.items():
            shown = "" if value is None else escape(str(value))
            lines.append(f"  <{name}>{shown}</{name}>")
        lines.append(f" </{outer}>")
    lines.append("</TwilioResponse>")
    return "\n".join(lines) + "\n", "application/xml"


def failure(status: int, message: str, *, as_json: bool) -> tuple[int, str, str]:
    body, kind = render({"RestException": {"Status": status, "Message": message}}, as_json=as_json)
    return status, body, kind
