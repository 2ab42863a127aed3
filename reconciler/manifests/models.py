"""The manifest language as pydantic models: what users write about accounts and trunks.

Called by ``load`` (validating each account and trunk a file declares) and by
``schema`` (the JSON Schema and the field reference in docs/manifests.md are generated from the
``description`` of every field here). Pure: no I/O.

Every model is frozen and forbids unknown keys. Values reach their canonical form here,
through the functions of ``canonical``, the same ones used later for Exotel's answers.
Rules that relate one value to another (duplicates, an IP destination covered by the
trunk's whitelist, a DID on two trunks) live in ``checks``, which can point at the exact
list item at fault.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from reconciler.manifests import canonical

SECRET_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ACCOUNT_SID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
SECRET_FIELDS = frozenset({"api_key", "api_token", "password", "api_secret"})
MAX_PRIORITY = 65535  # same range as DNS SRV priority and weight, which these mirror
USER_NAME_MAX, FRIENDLY_NAME_MAX = 32, 32  # docs/exotel-api.md section 6a


def _secret_reference(example: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        # Never repeat the value: if it is not a reference, it may be the secret itself.
        if SECRET_REFERENCE.fullmatch(value):
            return value
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"write environment references with braces, like ${{{example}}}")
        if value.startswith("${") and value.endswith("}"):
            raise ValueError(
                "a reference is ${NAME} only: letters, digits and _, not starting with a "
                f"digit, with no default or other shell form (like ${{{example}}})"
            )
        raise ValueError(
            f"secrets are written only as environment references, like ${{{example}}}; "
            "put the value in that environment variable (a CI secret), never in the manifest"
        )

    return check


def _account_sid(value: str) -> str:
    if not ACCOUNT_SID.fullmatch(value):
        raise ValueError(
            f"account SID {value!r} must be letters, digits, '_' or '-', as on Exotel's "
            "dashboard (API settings), like ameyo5m"
        )
    return value


def _base_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", value):
        raise ValueError(
            f"base_url {value!r} must be an http(s) URL without query, like https://api.in.exotel.com"
        )
    return value.rstrip("/")


def _ledger(value: str) -> str:
    if value.startswith("/") or re.match(r"[A-Za-z]:[\\/]", value):
        raise ValueError(
            f"ledger {value!r} must be relative to the manifests directory, like state/prod.json"
        )
    if ".." in re.split(r"[\\/]", value):
        raise ValueError(
            f"ledger {value!r} must stay inside the manifests directory (no '..'), "
            "like state/prod.json"
        )
    if not value.endswith(".json"):
        raise ValueError(f"ledger {value!r} must be a .json file, like state/prod.json")
    return value


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"password_version must be a positive integer (1, 2, ...), not {value}")
    return value


def _priority_weight(value: int) -> int:
    if not 0 <= value <= MAX_PRIORITY:
        raise ValueError(f"{value} is out of range: use a number from 0 to {MAX_PRIORITY}")
    return value


def _user_name(value: str) -> str:
    return canonical.word(value, what="username", max_length=USER_NAME_MAX)


def _friendly_name(value: str) -> str:
    return canonical.word(value, what="friendly_name", max_length=FRIENDLY_NAME_MAX)


_SECRET_SCHEMA = Field(json_schema_extra={"pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"})
ApiKey = Annotated[StrictStr, AfterValidator(_secret_reference("EXOTEL_API_KEY")), _SECRET_SCHEMA]
ApiToken = Annotated[
    StrictStr, AfterValidator(_secret_reference("EXOTEL_API_TOKEN")), _SECRET_SCHEMA
]
SipPassword = Annotated[
    StrictStr, AfterValidator(_secret_reference("SIP_PASSWORD")), _SECRET_SCHEMA
]
E164 = Annotated[
    StrictStr,
    AfterValidator(canonical.e164),
    AfterValidator(canonical.indian),
    Field(json_schema_extra={"pattern": r"^\+[1-9][0-9 ().-]{7,}$"}),
]
TrunkName = Annotated[
    StrictStr,
    AfterValidator(canonical.trunk_name),
    Field(json_schema_extra={"pattern": r"^[A-Za-z0-9_]{1,16}$"}),
]
WhitelistedIp = Annotated[
    StrictStr,
    AfterValidator(canonical.whitelisted_ip),
    Field(
        description="a public IPv4 address, or network with a mask from /16 to /32 (/32 implied)",
        json_schema_extra={"examples": ["44.248.146.11", "13.126.40.0/24"]},
    ),
]
Priority = Annotated[StrictInt, AfterValidator(_priority_weight)]


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Shorthand(Spec):
    """A list item that may also be written as a plain string: its first field."""

    @classmethod
    def shorthand_key(cls) -> str:
        return next(iter(cls.model_fields))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {cls.shorthand_key(): data} if isinstance(data, str) else data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        key = cls.shorthand_key()
        text = {"type": "string", "description": f"shorthand for {{{key}: ...}}"}
        return {"anyOf": [text, handler(core_schema)]}


def _signalling_host(value: str) -> str:
    host = value.strip().lower()
    try:
        canonical.ipv4_address(host)
    except ValueError:
        if not canonical.is_fqdn(host):
            raise ValueError(
                f"host {value!r} must be a host name or an IPv4 address, without port or "
                "scheme, like pstn.in2.exotel.com"
            ) from None
    return host


def _any_ipv4_network(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as error:
        raise ValueError(
            f"{value!r} is not an IPv4 address or network ({error}), like 203.0.113.10 or "
            "203.0.113.0/28"
        ) from None
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"port {value} is out of range: use 1 to 65535")
    return value


def _partner_url(value: str) -> str:
    if SECRET_REFERENCE.fullmatch(value):
        return value
    if not re.fullmatch(r"(?:https?|wss?)://[^\s/?#]+/?", value):
        raise ValueError(
            f"url {value!r} must be the project's URL, like https://my-project.livekit.cloud "
            "(or an ${ENV} reference)"
        )
    return value.rstrip("/")


SignallingAddress = Annotated[
    StrictStr,
    AfterValidator(_any_ipv4_network),
    Field(
        description="an IPv4 address or network Exotel's signalling comes from",
        json_schema_extra={"examples": ["203.0.113.10", "203.0.113.0/28"]},
    ),
]
Port = Annotated[StrictInt, AfterValidator(_port)]
PARTNER_NAME = ACCOUNT_NAME
NO_PARTNER = "none"


class SignallingSpec(Spec):
    """Exotel's SIP edge as a partner platform meets it (docs/exotel-api.md, section 8)."""

    host: Annotated[StrictStr, AfterValidator(_signalling_host)] | None = Field(
        None,
        description="where partners send calls out (default: the trunk's domain_name, "
        "<account sid>.pstn.exotel.com)",
    )
    tls_port: Port = Field(
        443, description="Exotel's SIP over TLS port (developer.exotel.com: 443)"
    )
    tcp_port: Port = Field(
        5070, description="Exotel's SIP over TCP port (developer.exotel.com: 5070)"
    )
    addresses: tuple[SignallingAddress, ...] = Field(
        (),
        description="the addresses Exotel's SIP signalling comes from, as Exotel gave them "
        "(no public source lists them); partners allow exactly these",
    )


class PartnerSpec(Spec):
    """The platform at the other end of a trunk."""

    platform: Literal["livekit", "kamailio", "freeswitch", "asterisk"] = Field(
        description="livekit: reconciled through LiveKit's API; kamailio, freeswitch, "
        "asterisk: configuration rendered by reconciler render-partner"
    )
    url: Annotated[StrictStr, AfterValidator(_partner_url)] | None = Field(
        None,
        description="livekit: the project's URL (https://<project>.livekit.cloud or your "
        "server); the LIVEKIT_URL environment variable overrides it",
    )
    api_key: (
        Annotated[StrictStr, AfterValidator(_secret_reference("LIVEKIT_API_KEY")), _SECRET_SCHEMA]
        | None
    ) = Field(None, description="livekit: API key, as ${ENV_VAR} only")
    api_secret: (
        Annotated[
            StrictStr, AfterValidator(_secret_reference("LIVEKIT_API_SECRET")), _SECRET_SCHEMA
        ]
        | None
    ) = Field(None, description="livekit: API secret, as ${ENV_VAR} only")

    @model_validator(mode="after")
    def _platform_fields(self) -> PartnerSpec:
        given = [name for name in ("url", "api_key", "api_secret") if getattr(self, name)]
        if self.platform == "livekit":
            missing = [n for n in ("url", "api_key", "api_secret") if n not in given]
            if missing:
                raise ValueError(
                    f"a livekit partner needs {', '.join(missing)} (url: the project's URL; "
                    "api_key and api_secret: ${ENV} references)"
                )
        elif given:
            raise ValueError(
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to livekit "
                f"partners only; {self.platform}'s "
                "configuration is rendered (reconciler render-partner), not sent to an API"
            )
        return self


class AccountSpec(Spec):
    """An Exotel account: where its API is and which credentials reach it."""

    sid: Annotated[StrictStr, AfterValidator(_account_sid)] = Field(
        description="Exotel account SID, as in every API path (/v2/accounts/{sid})"
    )
    region: Literal["mumbai", "singapore"] = Field(
        "mumbai", description="mumbai -> api.in.exotel.com, singapore -> api.exotel.com"
    )
    base_url: Annotated[StrictStr, AfterValidator(_base_url)] | None = Field(
        None,
        description="API root overriding the region, such as a sandbox; "
        "the EXOTEL_BASE_URL environment variable overrides it in turn",
    )
    api_key: ApiKey = Field(description="API key, as ${ENV_VAR} only")
    api_token: ApiToken = Field(description="API token, as ${ENV_VAR} only")
    api: Literal["full", "minimal"] = Field(
        "full",
        description="capability profile: full (every documented call) or minimal "
        "(only the calls with captured live answers)",
    )
    prune: StrictBool = Field(
        False, description="delete ledger-tracked trunks that are no longer declared"
    )
    ledger: Annotated[StrictStr, AfterValidator(_ledger)] | None = Field(
        None,
        description="the account's state file, relative to the manifests directory "
        "(default state/<account>.json)",
    )
    signalling: SignallingSpec | None = Field(
        None,
        description="Exotel's SIP edge for this account's partners: host, ports, addresses",
    )
    partner: StrictStr | None = Field(
        None,
        description="the partner (a name under partners:) of this account's trunks, unless "
        "a trunk names its own or none",
    )
    rate_limit: StrictInt = Field(
        200,
        ge=0,
        le=100_000,
        description="API requests per minute the reconciler may spend on this account "
        "(Exotel allows 200 unless raised; set less to leave room for your own calls; "
        "0: no limit, for a sandbox started with --rate-limit 0)",
    )


class PhoneNumberSpec(Shorthand):
    """A DID mapped to the trunk. A plain string is shorthand for {number: ...}."""

    number: E164 = Field(description='the DID in E.164, quoted: "+918040264208"')
    mode: Literal["pstn", "flow"] = Field(
        "pstn", description="pstn: calls go straight to the trunk; flow: through an Exotel flow"
    )


class DestinationSpec(Shorthand):
    """Where inbound calls go. A plain string is shorthand for {uri: ...}."""

    uri: Annotated[StrictStr, AfterValidator(canonical.destination)] = Field(
        description="host:port;transport=tls|tcp (UDP is not supported); "
        "an IP host must be covered by the trunk's whitelisted_ips"
    )
    priority: Priority = Field(0, description="lower is tried first (0 to 65535)")
    weight: Priority = Field(1, description="share among equal priorities (0 to 65535)")


class CredentialSpec(Spec):
    """A SIP digest credential on the trunk. Its password is write-only."""

    username: Annotated[StrictStr, AfterValidator(_user_name)] = Field(
        description="1 to 32 letters, digits or underscores; unique on the trunk"
    )
    password: SipPassword = Field(
        description="${ENV_VAR} only; 1 to 64 letters, digits or underscores once resolved"
    )
    password_version: Annotated[StrictInt, AfterValidator(_positive)] = Field(
        1, description="bump it to rotate the password (the API never returns passwords)"
    )
    friendly_name: Annotated[StrictStr, AfterValidator(_friendly_name)] | None = Field(
        None, description="a label, up to 32 letters, digits or underscores"
    )


def _header_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError(
            f"{value!r} is not a SIP header name (letters, digits and -, like X-Bot-Persona)"
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


HeaderName = Annotated[StrictStr, AfterValidator(_header_name)]
Named = Annotated[StrictStr, AfterValidator(_not_blank)]


class DispatchSpec(Spec):
    """LiveKit: which room an inbound call joins (a dispatch rule)."""

    room_prefix: Named | None = Field(
        None,
        description="one new room per call, named <room_prefix><caller> (default: the "
        "trunk's name and '-')",
    )
    room: Named | None = Field(None, description="every call joins this one room")
    agent: Named | None = Field(
        None, description="the agent (agent_name) LiveKit dispatches into the room"
    )

    @model_validator(mode="after")
    def _one_rule(self) -> DispatchSpec:
        if self.room_prefix is not None and self.room is not None:
            raise ValueError("give room_prefix (a room per call) or room (one room), not both")
        return self


class TrunkPartnerSpec(Shorthand):
    """The trunk's partner end. A plain string is shorthand for {name: ...}."""

    name: StrictStr = Field(description="a name under partners:, or none")
    transport: Literal["tls", "tcp"] | None = Field(
        None,
        description="SIP transport between the partner and Exotel (default: the destination "
        "URIs' transport, else tls)",
    )
    credential: Annotated[StrictStr, AfterValidator(_user_name)] | None = Field(
        None,
        description="the credential the partner calls out with (default: the trunk's first)",
    )
    dispatch: DispatchSpec | None = Field(None, description="livekit: the dispatch rule")
    attributes: dict[HeaderName, Named] = Field(
        default_factory=dict,
        description="livekit: SIP header -> participant attribute (headers_to_attributes); "
        "X- headers also arrive as sip.h.<name> attributes",
    )


class TrunkSpec(Spec):
    """A vSIP trunk and everything on it."""

    name: TrunkName = Field(
        description="trunk_name: 1 to 16 letters, digits or underscores; unique per account"
    )
    account: StrictStr = Field(description="the name of an account under accounts:")
    renamed_from: TrunkName | None = Field(
        None, description="the trunk's previous name, to rename it in place instead of replacing it"
    )
    protect: StrictBool = Field(
        False, description="never delete or replace, even when removed from git"
    )
    allow_replace: StrictBool = Field(
        False,
        description="may the planner rebuild the trunk (new SID) for a change "
        "the API cannot make in place",
    )
    nso_code: Literal["ANY-ANY"] = Field("ANY-ANY", description="the only value Exotel accepts")
    domain_name: Annotated[StrictStr, AfterValidator(canonical.domain_name)] | None = Field(
        None, description="default <account sid>.pstn.exotel.com; must end .pstn.exotel.com"
    )
    phone_numbers: tuple[PhoneNumberSpec, ...] = Field((), description="DIDs mapped to the trunk")
    whitelisted_ips: tuple[WhitelistedIp, ...] = Field(
        (),
        description="the ACL: public IPv4 addresses or networks (/16 to /32) "
        "allowed to use the trunk",
    )
    destination_uris: tuple[DestinationSpec, ...] = Field(
        (), description="inbound destinations, written in one request"
    )
    alias: E164 | None = Field(
        None, description="trunk_external_alias: the caller ID on outbound calls, in E.164"
    )
    credentials: tuple[CredentialSpec, ...] = Field((), description="SIP digest credentials")
    partner: TrunkPartnerSpec | None = Field(
        None,
        description="the platform at the trunk's other end (a name under partners:, or none); "
        "default: the account's partner",
    )
