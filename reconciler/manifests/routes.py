"""The ``routes:`` manifest kind: how inbound calls reach trunks, and when bots hand off.

Used by ``document`` (a manifest file may hold ``routes:``), ``route_checks`` (rules
across routes and trunks), ``windows`` and ``reconciler.routing`` (the decisions
``reconciler serve`` makes). Pure.

A route is keyed by DID (or ``"*"`` for every other DID of the account). Its rules are
tried in order and the first whose conditions all hold wins; otherwise the default.
Each names its trunk by *name*: ``serve`` resolves it to the live SID through the ledger
at request time, so a replaced trunk never breaks routing. Exotel's Connect applet
allows at most 3 custom SIP headers, 200 bytes in all, with names that do not start
``Exotel-`` or ``Veeno-`` (docs/exotel-api.md section 7).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from reconciler.manifests import canonical
from reconciler.manifests.models import Spec, TrunkName

MAX_HEADERS, MAX_HEADER_BYTES = 3, 200
RESERVED_PREFIXES = ("exotel-", "veeno-")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CATCH_ALL = "*"


def encode_params(params: dict[str, str]) -> str:
    """The Dynamic URL's ``custom_params``: ``name=value&name=value``."""
    return "&".join(f"{name}={value}" for name, value in params.items())


def _params(value: Any, handler: ValidatorFunctionWrapHandler) -> dict[str, str]:
    """Every problem of custom_params at once, checked on what was written, before the
    types: a number value is told beside a fifth header or a reserved name."""
    if isinstance(value, dict):
        typed = [
            f"the value of {name} was read as a number or true/false: quote it, like "
            f'{name}: "{header}"'
            for name, header in value.items()
            if not isinstance(header, str)
        ]
        wrong = typed + _header_problems({str(k): str(v) for k, v in value.items()})
        if wrong:
            raise ValueError("; ".join(wrong))
    checked: dict[str, str] = handler(value)
    return checked


def _header_problems(value: dict[str, str]) -> list[str]:
    wrong = []
    if len(value) > MAX_HEADERS:
        wrong.append(
            f"at most {MAX_HEADERS} custom SIP headers per call (Exotel's limit), not {len(value)}"
        )
    for name, header in value.items():
        if not HEADER_NAME.fullmatch(name):
            wrong.append(f"header name {name!r} must be letters, digits and '-'")
        elif name.lower().startswith(RESERVED_PREFIXES):
            wrong.append(f"header name {name!r} is reserved by Exotel (Exotel-*, Veeno-*)")
        if any(character in header for character in "&=\r\n"):
            wrong.append(f"the value of {name} must not contain '&', '=' or line breaks")
    size = len(encode_params(value).encode())
    if size > MAX_HEADER_BYTES:
        wrong.append(f"custom_params take {size} bytes; Exotel allows {MAX_HEADER_BYTES} in all")
    return wrong


def _window(value: str) -> str:
    match = WINDOW.fullmatch(value)
    if not match or (match[3] == "24" and match[4] != "00"):
        raise ValueError(
            f"hours {value!r} must be HH:MM-HH:MM in Asia/Kolkata time, like 09:00-18:00"
        )
    if value[:5] == value[6:]:
        raise ValueError(f"hours {value!r} is an empty window")
    return value


def _did(value: str) -> str:
    return value if value == CATCH_ALL else canonical.indian(canonical.e164(value))


def _prefix(value: str) -> str:
    if not re.fullmatch(r"\+[0-9]{1,14}", value):
        raise ValueError(f"caller prefix {value!r} must be + and digits, like +9180")
    return value


def _url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s]+", value):
        raise ValueError(f"url {value!r} must be an http(s) URL")
    return value


def _timeout(value: int) -> int:
    if not 50 <= value <= 3000:
        raise ValueError("timeout_ms must be 50 to 3000: Exotel waits for the handoff answer")
    return value


Window = Annotated[StrictStr, AfterValidator(_window)]


class Conditions(Spec):
    """All must hold; an empty condition always holds."""

    caller_prefixes: tuple[Annotated[StrictStr, AfterValidator(_prefix)], ...] = Field(
        (), description="caller numbers starting with any of these (E.164 prefixes)"
    )
    hours: Window | None = Field(
        None, description="HH:MM-HH:MM in Asia/Kolkata (may wrap midnight)"
    )
    weekdays: tuple[Weekday, ...] = Field((), description="mon ... sun, in Asia/Kolkata")

    def always(self) -> bool:
        return not (self.caller_prefixes or self.hours or self.weekdays)


class Target(Spec):
    """Where a call goes: the Connect applet's Dynamic URL answer."""

    trunk: TrunkName = Field(description="a declared trunk of the same account, by name")
    custom_params: Annotated[dict[StrictStr, StrictStr], WrapValidator(_params)] = Field(
        default_factory=dict, description="custom SIP headers: at most 3, 200 bytes in all"
    )
    record: StrictBool = Field(False, description="record the call")
    recording_channels: Literal["single", "dual"] = Field("single", description="single or dual")
    fetch_after_attempt: StrictBool = Field(
        False, description="ask the Dynamic URL again after an attempt"
    )


class Rule(Target):
    """A target with conditions; the first rule whose conditions hold wins."""

    when: Conditions = Field(description="caller_prefixes, hours, weekdays")


class Agents(Spec):
    """Whether agents can take a handed-off call: a static flag, or a URL to ask."""

    available: StrictBool | None = Field(None, description="a static answer")
    url: Annotated[StrictStr, AfterValidator(_url)] | None = Field(
        None, description="asked with GET; any 2xx means agents are available"
    )
    timeout_ms: Annotated[StrictInt, AfterValidator(_timeout)] = Field(
        300, description="how long to wait for the URL (50 to 3000)"
    )
    fallback: StrictBool = Field(False, description="the answer when the URL fails or is too slow")

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        """Checked on what was written, before the fields, so a wrong URL beside
        ``available`` is told together with the choice to make (every problem at once)."""
        if isinstance(data, dict) and ("available" in data) == ("url" in data):
            said = ["give agents either available: true|false or url: ..."]
            if isinstance(data.get("url"), str):
                try:
                    _url(data["url"])
                except ValueError as error:
                    said.append(f"url: {error}")
            raise ValueError("; ".join(said))
        return data


class Handoff(Spec):
    """The Passthru webhook after the bot: 200 to the agents' Connect applet, or hangup."""

    hours: Window | None = Field(None, description="business hours, HH:MM-HH:MM Asia/Kolkata")
    weekdays: tuple[Weekday, ...] = Field((), description="business days")
    agents: Agents = Field(description="available: true|false, or url")
    otherwise: Literal[302, 404] = Field(
        302, description="the status outside hours or without agents (302 or 404: hangup)"
    )


class RouteSpec(Spec):
    """Inbound routing for one DID of an account (or ``"*"`` for the account's others)."""

    did: Annotated[StrictStr, AfterValidator(_did)] = Field(description='the DID, or "*"')
    account: StrictStr = Field(description="the account the DID belongs to")
    rules: tuple[Rule, ...] = Field((), description="tried in order; the first match wins")
    default: Target = Field(description="where the call goes when no rule matches")
    handoff: Handoff | None = Field(None, description="bot-to-agent handoff (Passthru)")

    def targets(self) -> list[tuple[tuple[Any, ...], Target]]:
        return [
            *((("rules", i), r) for i, r in enumerate(self.rules)),
            (("default",), self.default),
        ]
