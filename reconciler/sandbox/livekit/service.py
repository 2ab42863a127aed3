"""LiveKit's SIP service over Twirp: ``POST /twirp/livekit.SIP/<Method>``.

What LiveKit's server does, from its sources (docs/partners.md, "LiveKit's SIP API"):
a bearer JWT (HS256, ``iss`` the API key) whose ``sip.admin`` grant allows trunks and
dispatch rules; an unknown key or a bad signature is a plain-text 401 before Twirp; a
missing grant is Twirp's ``unauthenticated``. Bodies are protobuf or JSON, answered in
kind; errors are Twirp's JSON ``{code, msg}``. Creating assigns ``ST_``/``SDR_`` ids;
updating is ``replace`` (the whole object) or ``update`` (the fields set, lists by
``ListUpdate``); deleting an unknown trunk succeeds, an unknown rule is ``not_found``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from livekit.protocol import sip

from reconciler.sandbox.livekit.store import (
    Project,
    TwirpError,
    apply_list,
    check_inbound,
    check_outbound,
    new_id,
)

PREFIX = "/twirp/livekit.SIP/"
LEEWAY_S = 60  # clock skew allowed on nbf and exp


class UnauthorizedError(Exception):
    """Refused before Twirp: the server's middleware answers plain text 401."""


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims(header: str, keys: Mapping[str, str], now: float) -> dict[str, Any]:
    """The token's claims, once its key, signature and times check out."""
    scheme, _, token = header.partition(" ")
    parts = token.split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        raise UnauthorizedError("no authorization token")
    try:
        head, body = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except ValueError:
        raise UnauthorizedError("invalid token") from None
    if not isinstance(head, dict) or head.get("alg") != "HS256" or not isinstance(body, dict):
        raise UnauthorizedError("invalid token")
    secret = keys.get(str(body.get("iss")))
    if secret is None:
        raise UnauthorizedError("invalid API key")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), signature):
        raise UnauthorizedError("invalid token")
    try:
        early = float(body.get("nbf", 0)) > now + LEEWAY_S
        late = float(body.get("exp", now + 1)) < now - LEEWAY_S
    except (TypeError, ValueError):
        raise UnauthorizedError("invalid token") from None
    if early or late:
        raise UnauthorizedError("token expired or not yet valid")
    return body


def _listed(trunks: Iterable[Any], request: Any) -> list[Any]:
    """The trunks a list request asks for: by id, by number, or all."""
    wanted, numbers = set(request.trunk_ids), set(request.numbers)
    return [
        trunk
        for trunk in trunks
        if (not wanted or trunk.sip_trunk_id in wanted)
        and (not numbers or numbers & set(trunk.numbers))
    ]


def _update_list(message: Any, name: str, change: Any) -> None:
    """Apply the ``ListUpdate`` a partial update carries for a repeated field, if any."""
    if change.HasField(name):
        values = apply_list(list(getattr(message, name)), getattr(change, name))
        del getattr(message, name)[:]
        getattr(message, name).extend(values)


def _stamp() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


class Service:
    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)  # API key -> secret
        self.project = Project()
        self.methods: dict[str, tuple[type[Message], Callable[[Any], Message]]] = {
            "CreateSIPInboundTrunk": (sip.CreateSIPInboundTrunkRequest, self.create_inbound),
            "CreateSIPOutboundTrunk": (sip.CreateSIPOutboundTrunkRequest, self.create_outbound),
            "GetSIPInboundTrunk": (sip.GetSIPInboundTrunkRequest, self.get_inbound),
            "GetSIPOutboundTrunk": (sip.GetSIPOutboundTrunkRequest, self.get_outbound),
            "ListSIPInboundTrunk": (sip.ListSIPInboundTrunkRequest, self.list_inbound),
            "ListSIPOutboundTrunk": (sip.ListSIPOutboundTrunkRequest, self.list_outbound),
            "UpdateSIPInboundTrunk": (sip.UpdateSIPInboundTrunkRequest, self.update_inbound),
            "UpdateSIPOutboundTrunk": (sip.UpdateSIPOutboundTrunkRequest, self.update_outbound),
            "DeleteSIPTrunk": (sip.DeleteSIPTrunkRequest, self.delete_trunk),
            "CreateSIPDispatchRule": (sip.CreateSIPDispatchRuleRequest, self.create_rule),
            "ListSIPDispatchRule": (sip.ListSIPDispatchRuleRequest, self.list_rules),
            "UpdateSIPDispatchRule": (sip.UpdateSIPDispatchRuleRequest, self.update_rule),
            "DeleteSIPDispatchRule": (sip.DeleteSIPDispatchRuleRequest, self.delete_rule),
        }

    def reset(self) -> None:
        self.project = Project()

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type) for one Twirp request."""
        try:
            found = claims(headers.get("Authorization", ""), self.keys, time.time())
        except UnauthorizedError as exc:
            return 401, str(exc).encode(), "text/plain"
        protobuf = headers.get("Content-Type", "").split(";")[0].strip() == "application/protobuf"
        try:
            grant = found.get("sip")
            if not isinstance(grant, dict) or not grant.get("admin"):
                raise TwirpError("unauthenticated", "permissions denied")
            method = path.removeprefix(PREFIX)
            if method not in self.methods:
                raise TwirpError("bad_route", f"no handler for path {path!r}")
            kind, run = self.methods[method]
            request = kind()
            try:
                if protobuf:
                    request.ParseFromString(body)
                else:
                    json_format.Parse(body or b"{}", request, ignore_unknown_fields=True)
            except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
                raise TwirpError("malformed", f"the request could not be decoded: {exc}") from None
            answer = run(request)
        except TwirpError as error:
            document = {"code": error.code, "msg": str(error)}
            return error.status, json.dumps(document).encode(), "application/json"
        if protobuf:
            return 200, answer.SerializeToString(), "application/protobuf"
        text = json_format.MessageToJson(
            answer, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        return 200, text.encode(), "application/json"

    # -- trunks --------------------------------------------------------------------------

    def create_inbound(self, request: sip.CreateSIPInboundTrunkRequest) -> Message:
        trunk = sip.SIPInboundTrunkInfo()
        trunk.CopyFrom(request.trunk)
        trunk.sip_trunk_id = new_id("ST_")
        check_inbound(trunk)
        self.project.check_conflicts(trunk)
        trunk.created_at.CopyFrom(_stamp())
        trunk.updated_at.CopyFrom(trunk.created_at)
        self.project.inbound[trunk.sip_trunk_id] = trunk
        return trunk

    def create_outbound(self, request: sip.CreateSIPOutboundTrunkRequest) -> Message:
        trunk = sip.SIPOutboundTrunkInfo()
        trunk.CopyFrom(request.trunk)
        trunk.sip_trunk_id = new_id("ST_")
        check_outbound(trunk)
        trunk.created_at.CopyFrom(_stamp())
        trunk.updated_at.CopyFrom(trunk.created_at)
        self.project.outbound[trunk.sip_trunk_id] = trunk
        return trunk

    def _inbound(self, trunk_id: str) -> sip.SIPInboundTrunkInfo:
        if trunk_id not in self.project.inbound:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        return self.project.inbound[trunk_id]

    def _outbound(self, trunk_id: str) -> sip.SIPOutboundTrunkInfo:
        if trunk_id not in self.project.outbound:
            raise TwirpError("not_found", "requested sip trunk does not exist")
        return self.project.outbound[trunk_id]

    def get_inbound(self, request: sip.GetSIPInboundTrunkRequest) -> Message:
        return sip.GetSIPInboundTrunkResponse(trunk=self._inbound(request.sip_trunk_id))

    def get_outbound(self, request: sip.GetSIPOutboundTrunkRequest) -> Message:
        return sip.GetSIPOutboundTrunkResponse(trunk=self._outbound(request.sip_trunk_id))

    def list_inbound(self, request: sip.ListSIPInboundTrunkRequest) -> Message:
        return sip.ListSIPInboundTrunkResponse(
            items=_listed(self.project.inbound.values(), request)
        )

    def list_outbound(self, request: sip.ListSIPOutboundTrunkRequest) -> Message:
        return sip.ListSIPOutboundTrunkResponse(
            items=_listed(self.project.outbound.values(), request)
        )

    def update_inbound(self, request: sip.UpdateSIPInboundTrunkRequest) -> Message:
        current = self._inbound(request.sip_trunk_id)
        trunk = sip.SIPInboundTrunkInfo()
        if request.WhichOneof("action") == "replace":
            trunk.CopyFrom(request.replace)
        elif request.WhichOneof("action") == "update":
            trunk.CopyFrom(current)
            change = request.update
            for name in ("numbers", "allowed_addresses", "allowed_numbers"):
                _update_list(trunk, name, change)
            for name in ("auth_username", "auth_password", "auth_realm", "name", "metadata"):
                if change.HasField(name):
                    setattr(trunk, name, getattr(change, name))
            if change.HasField("media"):
                trunk.media.CopyFrom(change.media)
        else:
            raise TwirpError("invalid_argument", "no update action: replace or update")
        trunk.sip_trunk_id = current.sip_trunk_id
        trunk.created_at.CopyFrom(current.created_at)
        check_inbound(trunk)
        self.project.check_conflicts(trunk)
        trunk.updated_at.CopyFrom(_stamp())
        self.project.inbound[trunk.sip_trunk_id] = trunk
        return trunk

    def update_outbound(self, request: sip.UpdateSIPOutboundTrunkRequest) -> Message:
        current = self._outbound(request.sip_trunk_id)
        trunk = sip.SIPOutboundTrunkInfo()
        if request.WhichOneof("action") == "replace":
            trunk.CopyFrom(request.replace)
        elif request.WhichOneof("action") == "update":
            trunk.CopyFrom(current)
            change = request.update
            _update_list(trunk, "numbers", change)
            for name in (
                "address",
                "transport",
                "destination_country",
                "auth_username",
                "auth_password",
                "name",
                "metadata",
                "from_host",
            ):
                if change.HasField(name):
                    setattr(trunk, name, getattr(change, name))
            if change.HasField("media"):
                trunk.media.CopyFrom(change.media)
        else:
            raise TwirpError("invalid_argument", "no update action: replace or update")
        trunk.sip_trunk_id = current.sip_trunk_id
        trunk.created_at.CopyFrom(current.created_at)
        check_outbound(trunk)
        trunk.updated_at.CopyFrom(_stamp())
        self.project.outbound[trunk.sip_trunk_id] = trunk
        return trunk

    def delete_trunk(self, request: sip.DeleteSIPTrunkRequest) -> Message:
        """Succeeds for an unknown id too, as LiveKit's server does (a Redis HDel)."""
        self.project.inbound.pop(request.sip_trunk_id, None)
        self.project.outbound.pop(request.sip_trunk_id, None)
        return sip.SIPTrunkInfo(sip_trunk_id=request.sip_trunk_id)

    # -- dispatch rules ------------------------------------------------------------------

    def create_rule(self, request: sip.CreateSIPDispatchRuleRequest) -> Message:
        rule = sip.SIPDispatchRuleInfo()
        if request.HasField("dispatch_rule"):
            rule.CopyFrom(request.dispatch_rule)
        else:  # the deprecated flat fields, still accepted
            rule.rule.CopyFrom(request.rule)
            rule.trunk_ids.extend(request.trunk_ids)
            rule.inbound_numbers.extend(request.inbound_numbers)
            rule.hide_phone_number, rule.name, rule.metadata = (
                request.hide_phone_number,
                request.name,
                request.metadata,
            )
        if rule.rule.WhichOneof("rule") is None:
            raise TwirpError("invalid_argument", "missing rule")
        rule.sip_dispatch_rule_id = new_id("SDR_")
        rule.created_at.CopyFrom(_stamp())
        rule.updated_at.CopyFrom(rule.created_at)
        self.project.rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def list_rules(self, request: sip.ListSIPDispatchRuleRequest) -> Message:
        wanted, trunks = set(request.dispatch_rule_ids), set(request.trunk_ids)
        items = [
            rule
            for rule in self.project.rules.values()
            if (not wanted or rule.sip_dispatch_rule_id in wanted)
            and (not trunks or not rule.trunk_ids or trunks & set(rule.trunk_ids))
        ]
        return sip.ListSIPDispatchRuleResponse(items=items)

    def _rule(self, rule_id: str) -> sip.SIPDispatchRuleInfo:
        if not rule_id:
            raise TwirpError("invalid_argument", "dispatch rule id is required")
        if rule_id not in self.project.rules:
            raise TwirpError("not_found", "requested sip dispatch rule does not exist")
        return self.project.rules[rule_id]

    def update_rule(self, request: sip.UpdateSIPDispatchRuleRequest) -> Message:
        current = self._rule(request.sip_dispatch_rule_id)
        rule = sip.SIPDispatchRuleInfo()
        action = request.WhichOneof("action")
        if action == "replace":
            rule.CopyFrom(request.replace)
        elif action == "update":  # livekit/protocol livekit/sip.go SIPDispatchRuleUpdate.Apply
            rule.CopyFrom(current)
            change = request.update
            _update_list(rule, "trunk_ids", change)
            if change.HasField("rule"):
                rule.rule.CopyFrom(change.rule)
            for name in ("name", "metadata", "media_encryption"):
                if change.HasField(name):
                    setattr(rule, name, getattr(change, name))
            if change.HasField("media"):
                rule.media.CopyFrom(change.media)
            for key, value in change.attributes.items():  # an empty value removes the key
                if value:
                    rule.attributes[key] = value
                else:
                    rule.attributes.pop(key, None)
        else:
            raise TwirpError("invalid_argument", "missing or unsupported update action")
        if rule.rule.WhichOneof("rule") is None:
            raise TwirpError("invalid_argument", "missing rule")
        rule.sip_dispatch_rule_id = current.sip_dispatch_rule_id
        rule.created_at.CopyFrom(current.created_at)
        rule.updated_at.CopyFrom(_stamp())
        self.project.rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def delete_rule(self, request: sip.DeleteSIPDispatchRuleRequest) -> Message:
        return self.project.rules.pop(self._rule(request.sip_dispatch_rule_id).sip_dispatch_rule_id)
