"""LiveKit's SIP API, through LiveKit's official SDK (``livekit-api``): read, create,
replace and delete the inbound trunks, outbound trunks and dispatch rules of a project.

Called by the pipeline (``plan``, ``drift``, ``import``: reads) and by apply's handlers
(writes). Every failure becomes one of the reconciler's ``ApiError`` kinds, naming the
partner and never a secret. A replace starts from the object as LiveKit holds it, so
what this tool does not manage (Krisp, ringing timeouts, room presets) is kept
(docs/partners/livekit.md).

Where the API secret may go: LiveKit's URL comes from the manifest (or ``LIVEKIT_URL``),
so in CI, where a pull request may have written it, tokens signed with the secret go
only to LiveKit Cloud over HTTPS or to hosts the workflow itself lists in
``RECONCILER_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TypeVar

import aiohttp
import structlog
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from livekit.api.sip_service import SipService
from livekit.protocol import sip as sip_pb

from reconciler.errors import (
    ApiError,
    AuthFailed,
    CallInfo,
    ConfigError,
    Invalid,
    NotFound,
    ServerError,
    TransportError,
)
from reconciler.livekit.records import (
    Fields,
    LiveObject,
    ObjectKind,
    dispatch_message,
    from_dispatch,
    from_inbound,
    from_outbound,
    inbound_message,
    outbound_message,
)

log = structlog.get_logger("reconciler.livekit")
CLOUD_SUFFIX = ".livekit.cloud"
URL_VARIABLE = "LIVEKIT_URL"
T = TypeVar("T")
# LiveKit's development secret ("secret", as the sandbox and `livekit-server --dev` use) is
# short; the SDK's JWT library warns on every request. A tool's output is not the place.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def partner_url(configured: str, environ: Mapping[str, str]) -> str:
    """The API's URL: ``LIVEKIT_URL`` over the manifest's, as LiveKit's own tools read it;
    ``ws(s)://`` (what LiveKit's clients are given) becomes ``http(s)://``."""
    url = environ.get(URL_VARIABLE) or configured
    if not re.fullmatch(r"(?:https?|wss?)://[^\s/?#]+/?", url):
        where = URL_VARIABLE if environ.get(URL_VARIABLE) else "the partner's url"
        raise ConfigError(
            f"{where} {url!r} must be a LiveKit project's URL, like "
            "https://my-project.livekit.cloud (http, https, ws or wss; no path)"
        )
    return url.replace("wss://", "https://", 1).replace("ws://", "http://", 1).rstrip("/")


@dataclass(frozen=True)
class Project:
    """What LiveKit lists for one project: the managed fields of each object."""

    objects: Mapping[str, LiveObject] = field(default_factory=dict)  # by ID

    def of(self, kind: ObjectKind) -> list[LiveObject]:
        return [found for found in self.objects.values() if found.kind is kind]


class LiveKitClient:
    """One LiveKit project's SIP API. An async context manager: the SDK's HTTP session
    lives as long as the block."""

    def __init__(
        self, *, partner: str, url: str, api_key: str, api_secret: str, timeout: float = 30.0
    ) -> None:
        self.partner = partner
        self.url = url
        self._key = api_key
        self._secret = api_secret
        self._timeout = timeout
        self._api: api.LiveKitAPI | None = None
        self.calls = 0

    def __repr__(self) -> str:
        return f"LiveKitClient(partner={self.partner!r}, url={self.url!r})"

    async def __aenter__(self) -> LiveKitClient:
        self._api = api.LiveKitAPI(
            self.url,
            self._key,
            self._secret,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            # No silent resend to another URL: a create resent unseen could land twice;
            # apply looks for a lost create itself before it sends one again.
            failover=False,
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    @property
    def _sip(self) -> SipService:
        if self._api is None:
            raise RuntimeError("LiveKitClient is used outside its async with block")
        return self._api.sip

    async def read(self) -> Project:
        """Every inbound trunk, outbound trunk and dispatch rule: three requests."""
        inbound = await self._call(
            "list inbound trunks",
            self._sip.list_inbound_trunk(sip_pb.ListSIPInboundTrunkRequest()),
        )
        outbound = await self._call(
            "list outbound trunks",
            self._sip.list_outbound_trunk(sip_pb.ListSIPOutboundTrunkRequest()),
        )
        rules = await self._call(
            "list dispatch rules",
            self._sip.list_dispatch_rule(sip_pb.ListSIPDispatchRuleRequest()),
        )
        objects: dict[str, LiveObject] = {}
        for trunk in inbound.items:
            objects[trunk.sip_trunk_id] = from_inbound(trunk)
        for out in outbound.items:
            objects[out.sip_trunk_id] = from_outbound(out)
        for rule in rules.items:
            objects[rule.sip_dispatch_rule_id] = from_dispatch(rule)
        return Project(objects)

    async def create(self, kind: ObjectKind, fields: Fields, password: str = "") -> LiveObject:
        if kind is ObjectKind.INBOUND_TRUNK:
            request = sip_pb.CreateSIPInboundTrunkRequest(trunk=inbound_message(fields))
            return from_inbound(
                await self._call("create inbound trunk", self._sip.create_inbound_trunk(request))
            )
        if kind is ObjectKind.OUTBOUND_TRUNK:
            outbound = sip_pb.CreateSIPOutboundTrunkRequest(
                trunk=outbound_message(fields, password)
            )
            return from_outbound(
                await self._call("create outbound trunk", self._sip.create_outbound_trunk(outbound))
            )
        rule = sip_pb.CreateSIPDispatchRuleRequest(dispatch_rule=dispatch_message(fields))
        return from_dispatch(
            await self._call("create dispatch rule", self._sip.create_dispatch_rule(rule))
        )

    async def replace(
        self, kind: ObjectKind, object_id: str, fields: Fields, password: str = ""
    ) -> LiveObject:
        """Replace the object with its managed fields set, starting from it as LiveKit
        holds it now (one read of that object, then the write)."""
        base = await self._one(kind, object_id)
        if base is None:
            raise NotFound(f"LiveKit ({self.partner}): {kind.value} {object_id} does not exist")
        if kind is ObjectKind.INBOUND_TRUNK:
            assert isinstance(base, sip_pb.SIPInboundTrunkInfo)
            message = inbound_message(fields, base)
            return from_inbound(
                await self._call(
                    "replace inbound trunk", self._sip.update_inbound_trunk(object_id, message)
                )
            )
        if kind is ObjectKind.OUTBOUND_TRUNK:
            assert isinstance(base, sip_pb.SIPOutboundTrunkInfo)
            outbound = outbound_message(fields, password, base)
            return from_outbound(
                await self._call(
                    "replace outbound trunk", self._sip.update_outbound_trunk(object_id, outbound)
                )
            )
        assert isinstance(base, sip_pb.SIPDispatchRuleInfo)
        rule = dispatch_message(fields, base)
        return from_dispatch(
            await self._call(
                "replace dispatch rule", self._sip.update_dispatch_rule(object_id, rule)
            )
        )

    async def _one(self, kind: ObjectKind, object_id: str) -> object | None:
        """One object as LiveKit holds it, listed by its ID (one request)."""
        found: Sequence[object]
        if kind is ObjectKind.INBOUND_TRUNK:
            request = sip_pb.ListSIPInboundTrunkRequest(trunk_ids=[object_id])
            found = (
                await self._call("list inbound trunks", self._sip.list_inbound_trunk(request))
            ).items
        elif kind is ObjectKind.OUTBOUND_TRUNK:
            outbound = sip_pb.ListSIPOutboundTrunkRequest(trunk_ids=[object_id])
            found = (
                await self._call("list outbound trunks", self._sip.list_outbound_trunk(outbound))
            ).items
        else:
            rules = sip_pb.ListSIPDispatchRuleRequest(dispatch_rule_ids=[object_id])
            found = (
                await self._call("list dispatch rules", self._sip.list_dispatch_rule(rules))
            ).items
        return found[0] if found else None

    async def delete(self, kind: ObjectKind, object_id: str) -> None:
        if kind is ObjectKind.DISPATCH_RULE:
            request = sip_pb.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=object_id)
            await self._call("delete dispatch rule", self._sip.delete_dispatch_rule(request))
        else:
            trunk = sip_pb.DeleteSIPTrunkRequest(sip_trunk_id=object_id)
            await self._call(
                f"delete {kind.value.replace('_', ' ')}", self._sip.delete_trunk(trunk)
            )

    async def _call(self, what: str, request: Awaitable[T]) -> T:
        """Await one SDK request; its failure as an ``ApiError`` naming the partner, the
        Twirp method and LiveKit's answer (never a secret)."""
        self.calls += 1
        writing = not what.startswith("list")
        call = CallInfo(partner=self.partner, method="POST", path=f"{SERVICE}/{METHODS[what]}")
        said = f"{what} at {self.url}"
        log.debug("livekit.request", partner=self.partner, method=METHODS[what])
        try:
            return await request
        except api.TwirpError as error:
            raise _error(said, error, replace(call, status=error.status)) from None
        except TimeoutError:
            raise TransportError(
                f"{said}: no answer within {self._timeout:g} s", call, maybe_committed=writing
            ) from None
        except aiohttp.ClientConnectorError as error:
            raise TransportError(
                f"{said}: cannot connect ({error.os_error.strerror or error})",
                call,
                maybe_committed=False,
            ) from None
        except aiohttp.ClientError as error:
            raise TransportError(
                f"{said}: {type(error).__name__}: {error}", call, maybe_committed=writing
            ) from None


SERVICE = "/twirp/livekit.SIP"
METHODS = {  # what the reconciler calls it -> LiveKit's Twirp method
    "list inbound trunks": "ListSIPInboundTrunk",
    "list outbound trunks": "ListSIPOutboundTrunk",
    "list dispatch rules": "ListSIPDispatchRule",
    "create inbound trunk": "CreateSIPInboundTrunk",
    "create outbound trunk": "CreateSIPOutboundTrunk",
    "create dispatch rule": "CreateSIPDispatchRule",
    "replace inbound trunk": "UpdateSIPInboundTrunk",
    "replace outbound trunk": "UpdateSIPOutboundTrunk",
    "replace dispatch rule": "UpdateSIPDispatchRule",
    "delete inbound trunk": "DeleteSIPTrunk",
    "delete outbound trunk": "DeleteSIPTrunk",
    "delete dispatch rule": "DeleteSIPDispatchRule",
}


def _error(said: str, error: api.TwirpError, call: CallInfo) -> ApiError:
    text = f"{said}: {error.code}: {error.message}"
    if error.code in ("unauthenticated", "permission_denied") or error.status in (401, 403):
        return AuthFailed(text, call)
    if error.code in ("not_found", "bad_route"):
        return NotFound(text, call)
    if error.code in ("invalid_argument", "already_exists", "failed_precondition"):
        return Invalid(text, call)
    return ServerError(text, call)
