"""Both ends of a trunk: what the partner's end must be, derived from the Exotel side,
and the checks that the two ends agree.

Called by ``load`` (the seam's problems join every other manifest problem, so
``validate`` and ``plan`` both show them) and by whatever configures the partner end
(LiveKit's planner, ``render-partner``): they all read a trunk's :class:`End` and never
derive a value twice. Pure.

What the Exotel side determines (docs/partners.md): the DIDs (E.164, the same on both
ends), Exotel's signalling host, port and addresses (the account's ``signalling``), the
transport, the codecs, the digest credential (the same ``${ENV}`` password), the caller
IDs of calls out (the alias first, then the DIDs), and the custom headers the routes send
to the trunk.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.manifests.canonical import default_domain_name
from reconciler.manifests.declared import Declared, NamedAccount, NamedPartner
from reconciler.manifests.models import (
    NO_PARTNER,
    CredentialSpec,
    DispatchSpec,
    SignallingSpec,
    TrunkSpec,
)
from reconciler.manifests.problems import Problem, Severity
from reconciler.manifests.routes import RouteSpec

CODECS = ("PCMA", "PCMU")  # what Exotel offers (docs/exotel-api.md, section 9)
# Where a LiveKit SIP server listens (livekit/sip pkg/config/config.go; docs/partners.md).
LIVEKIT_PORTS = {"tcp": 5060, "tls": 5061}
ERROR, WARNING = Severity.ERROR, Severity.WARNING
NO_DISPATCH = DispatchSpec.model_validate({})
DEFAULT_SIGNALLING = SignallingSpec.model_validate({})


@dataclass(frozen=True)
class End:
    """A trunk's partner end, as the Exotel side determines it."""

    account: str
    trunk: str
    partner: str
    platform: str
    numbers: tuple[str, ...]  # the DIDs, E.164: what the partner answers
    outbound_numbers: tuple[str, ...]  # caller IDs for calls out: the alias first, then DIDs
    alias: str | None
    exotel_host: str  # where the partner sends calls out
    exotel_port: int
    transport: str  # tls | tcp
    exotel_addresses: tuple[str, ...]  # where Exotel's signalling comes from
    realm: str  # the trunk's domain name: Exotel's digest realm and From host
    credential: CredentialSpec | None  # what the partner calls out with
    headers: tuple[str, ...]  # custom SIP headers the routes send to this trunk
    destinations: tuple[str, ...]  # the trunk's destination URIs: the partner's own addresses
    whitelisted: tuple[str, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)
    dispatch: DispatchSpec = NO_DISPATCH
    codecs: tuple[str, ...] = CODECS

    @property
    def room_prefix(self) -> str | None:
        if self.dispatch.room is not None:
            return None
        return self.dispatch.room_prefix or f"{self.trunk}-"

    @property
    def takes_calls(self) -> bool:
        """Exotel sends it calls: the trunk has DIDs."""
        return bool(self.numbers)

    @property
    def makes_calls(self) -> bool:
        """It places calls through Exotel: the trunk has a caller ID to show."""
        return bool(self.outbound_numbers) and (
            self.credential is not None or bool(self.whitelisted)
        )


def partner_name(spec: TrunkSpec, account: NamedAccount | None) -> str | None:
    """The partner a trunk names, else its account's; None for none."""
    name = spec.partner.name if spec.partner is not None else None
    if name is None and account is not None:
        name = account.spec.partner
    return None if name in (None, NO_PARTNER) else name


def transport_of(spec: TrunkSpec) -> str:
    if spec.partner is not None and spec.partner.transport is not None:
        return spec.partner.transport
    for destination in spec.destination_uris:
        return destination.uri.rpartition("transport=")[2]
    return "tls"


def headers_to(trunk: str, account: str, routes: Iterable[RouteSpec]) -> tuple[str, ...]:
    """Every custom header a route of the account sends to the trunk, in written order."""
    found: dict[str, None] = {}
    for route in routes:
        if route.account != account:
            continue
        for _, target in route.targets():
            if target.trunk == trunk:
                found.update(dict.fromkeys(target.custom_params))
    return tuple(found)


def end_of(
    spec: TrunkSpec,
    account: NamedAccount,
    partner: NamedPartner,
    routes: Iterable[RouteSpec],
) -> End:
    signalling = account.spec.signalling or DEFAULT_SIGNALLING
    transport = transport_of(spec)
    numbers = tuple(number.number for number in spec.phone_numbers)
    outbound = tuple(dict.fromkeys([*([spec.alias] if spec.alias else []), *numbers]))
    chosen = spec.partner.credential if spec.partner is not None else None
    credentials = [c for c in spec.credentials if chosen in (None, c.username)]
    realm = spec.domain_name or default_domain_name(account.spec.sid)
    return End(
        account=account.name,
        trunk=spec.name,
        partner=partner.name,
        platform=partner.spec.platform,
        numbers=numbers,
        outbound_numbers=outbound,
        alias=spec.alias,
        exotel_host=signalling.host or realm,
        exotel_port=signalling.tls_port if transport == "tls" else signalling.tcp_port,
        transport=transport,
        exotel_addresses=signalling.addresses,
        realm=realm,
        credential=credentials[0] if credentials else None,
        headers=headers_to(spec.name, account.name, routes),
        destinations=tuple(d.uri for d in spec.destination_uris),
        whitelisted=spec.whitelisted_ips,
        attributes=dict(spec.partner.attributes) if spec.partner is not None else {},
        dispatch=(spec.partner.dispatch if spec.partner and spec.partner.dispatch else NO_DISPATCH),
    )


def ends(
    accounts: Mapping[str, NamedAccount],
    partners: Mapping[str, NamedPartner],
    trunks: Iterable[TrunkSpec],
    routes: Sequence[RouteSpec],
) -> list[End]:
    """The partner end of every trunk that has one (unknown names are ``check``'s)."""
    found = []
    for spec in trunks:
        account = accounts.get(spec.account)
        name = partner_name(spec, account)
        if account is not None and name is not None and name in partners:
            found.append(end_of(spec, account, partners[name], routes))
    return found


# -- the checks --------------------------------------------------------------------------


def check(
    accounts: Mapping[str, NamedAccount],
    partners: Mapping[str, NamedPartner],
    trunks: Sequence[Declared[TrunkSpec]],
    routes: Sequence[Declared[RouteSpec]],
    *,
    duplicates: Sequence[NamedPartner] = (),
    invalid: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Every problem of the seam at once: names that lead nowhere, options for another
    platform, and the ends disagreeing (each finding names both sides). ``invalid``:
    partners declared with problems of their own, and accounts whose ``signalling`` has
    them: each is told once, where it is written, not again at every trunk."""
    problems = list(_names(accounts, partners, trunks, duplicates, invalid))
    specs = [route.spec for route in routes]
    open_to_all: dict[str, list[str]] = {}  # account -> its partners and trunks, unguarded
    for trunk in trunks:
        spec, origin = trunk.spec, trunk.origin
        account = accounts.get(spec.account)
        name = partner_name(spec, account)
        if account is None or name is None or name not in partners:
            continue
        end = end_of(spec, account, partners[name], specs)
        where = ("partner",) if spec.partner is not None else ()
        chosen = spec.partner.credential if spec.partner is not None else None
        said = findings(end, credential_named=chosen is not None)
        problems += [origin.problem(where, severity, text) for severity, text in said]
        if chosen and end.credential is None:
            message = (
                f"partner credential {chosen!r} is none of trunk {spec.name}'s credentials "
                f"({_names_of(spec)}): {name} could not authenticate"
            )
            problems.append(origin.problem(("partner", "credential"), ERROR, message))
        if not end.exotel_addresses and f"signalling:{account.name}" not in invalid:
            open_to_all.setdefault(account.name, []).append(f"{name} (trunk {spec.name})")
    for name, unguarded in open_to_all.items():
        problems.append(
            accounts[name].origin.problem(
                ("signalling",),
                WARNING,
                f"account {name} lists no signalling addresses, so its partners allow calls "
                f"from any address: {', '.join(unguarded)}; ask Exotel for the addresses its "
                "SIP signalling comes from and list them under signalling.addresses (no "
                "public source lists them; docs/exotel-api.md)",
            )
        )
    for account in accounts.values():
        problems += _addresses(account)
    return problems


WIDEST = 16  # a wider network than this lets in far more than one carrier's edge


def _addresses(account: NamedAccount) -> list[Problem]:
    listed = account.spec.signalling.addresses if account.spec.signalling else ()
    problems = []
    seen: set[str] = set()
    for index, address in enumerate(listed):
        where = ("signalling", "addresses", index)
        if address in seen:
            said = f"{address} is listed twice in account {account.name}'s signalling addresses"
            problems.append(account.origin.problem(where, ERROR, said))
        seen.add(address)
        prefix = int(address.partition("/")[2] or 32)
        if prefix < WIDEST:
            said = (
                f"{address} lets every partner of account {account.name} take calls from "
                f"{2 ** (32 - prefix):,} addresses, not just Exotel's: list the addresses "
                "Exotel gives you"
            )
            problems.append(account.origin.problem(where, WARNING, said))
    return problems


def _names_of(spec: TrunkSpec) -> str:
    return ", ".join(c.username for c in spec.credentials) or "it has none"


def _names(
    accounts: Mapping[str, NamedAccount],
    partners: Mapping[str, NamedPartner],
    trunks: Sequence[Declared[TrunkSpec]],
    duplicates: Sequence[NamedPartner],
    invalid: frozenset[str],
) -> Iterable[Problem]:
    seen: dict[str, NamedPartner] = {}
    for partner in duplicates:
        first = seen.setdefault(partner.name, partner)
        if first is not partner:
            message = f"partner {partner.name!r} is already declared at {first.origin.where()}"
            yield partner.origin.problem((), ERROR, message, at_key=True)

    def unknown(name: str) -> str:
        hint = difflib.get_close_matches(name, list(partners), n=1)
        known = (
            f"did you mean {hint[0]!r}?"
            if hint
            else (f"declared: {', '.join(sorted(partners))}" if partners else "none is declared")
        )
        return f"partner {name!r} is not declared under partners: ({known}); or write none"

    for account in accounts.values():
        name = account.spec.partner
        if name not in (None, NO_PARTNER, *invalid) and name not in partners:
            yield account.origin.problem(("partner",), ERROR, unknown(str(name)))
    for trunk in trunks:
        chosen = trunk.spec.partner
        if chosen is None:
            continue
        if chosen.name in invalid:
            continue  # its own problems are told where it is declared
        if chosen.name != NO_PARTNER and chosen.name not in partners:
            yield trunk.origin.problem(("partner", "name"), ERROR, unknown(chosen.name))
            continue
        platform = partners[chosen.name].spec.platform if chosen.name in partners else None
        for option, what in (
            ("dispatch", "LiveKit's dispatch rule"),
            ("attributes", "which SIP headers become LiveKit participant attributes"),
        ):
            if getattr(chosen, option) and platform != "livekit":
                said = f"partner {chosen.name} is {platform}" if platform else "no partner"
                yield trunk.origin.problem(
                    ("partner", option),
                    ERROR,
                    f"{option} sets {what}; {said}: remove it",
                )


def findings(end: End, *, credential_named: bool = False) -> list[tuple[Severity, str]]:
    """Where the two ends would disagree, each naming both sides. ``credential_named``:
    the trunk names a credential for its partner (a wrong name is told on its own)."""
    said: list[tuple[Severity, str]] = []
    for uri in end.destinations:
        transport = uri.rpartition("transport=")[2]
        if transport != end.transport:
            said.append(
                (
                    WARNING,
                    f"trunk {end.trunk} sends calls to {end.partner} over {transport} "
                    f"(destination {uri}) but {end.partner} calls Exotel over {end.transport}: "
                    "use one transport on both ends"
                    + (
                        " (an ACK can follow the wrong one, livekit/sip issue 730)"
                        if end.platform == "livekit"
                        else ""
                    ),
                )
            )
        port = int(uri.split(";")[0].rpartition(":")[2])
        expected = LIVEKIT_PORTS.get(transport)
        if end.platform == "livekit" and expected is not None and port != expected:
            said.append(
                (
                    WARNING,
                    f"trunk {end.trunk}'s destination {uri} uses port {port}, but LiveKit's "
                    f"SIP server ({end.partner}) takes {transport} on {expected} (livekit/sip "
                    "issue 428: the wrong port is the commonest failure)",
                )
            )
    if end.platform == "livekit":
        said += _livekit(end, credential_named=credential_named)
    return said


def _livekit(end: End, *, credential_named: bool) -> list[tuple[Severity, str]]:
    said: list[tuple[Severity, str]] = []
    if end.takes_calls and not end.destinations:
        said.append(
            (
                WARNING,
                f"trunk {end.trunk} has DIDs but no destination_uris: Exotel cannot reach "
                f"{end.partner}'s inbound trunk (give its SIP URI, like "
                "<project>.sip.livekit.cloud:5061;transport=tls)",
            )
        )
    if end.alias is None and (end.credential is not None or end.whitelisted):
        said.append(
            (
                WARNING,
                f"trunk {end.trunk} has no alias, so {end.partner}'s outbound trunk offers "
                "its DIDs as caller IDs and Exotel shows whichever LiveKit picks: set alias",
            )
        )
    if end.outbound_numbers and end.credential is None and end.whitelisted and not credential_named:
        said.append(
            (
                WARNING,
                f"trunk {end.trunk} has no credential, so {end.partner}'s outbound trunk "
                "relies on Exotel whitelisting LiveKit's addresses, which LiveKit Cloud does "
                "not fix: add a credential",
            )
        )
    mapped = {name.lower() for name in end.attributes}
    for header in end.headers:
        if not header.lower().startswith("x-") and header.lower() not in mapped:
            said.append(
                (
                    WARNING,
                    f"a route sends header {header} to trunk {end.trunk}, but {end.partner} "
                    "passes on only X- headers and those under attributes: map it "
                    f"(partner.attributes: {{{header}: <attribute>}}) or rename it X-...",
                )
            )
    sent = {name.lower() for name in end.headers}
    for header, attribute in end.attributes.items():
        if header.lower() not in sent:
            said.append(
                (
                    WARNING,
                    f"{end.partner} maps header {header} to attribute {attribute}, but no "
                    f"route sends {header} to trunk {end.trunk}",
                )
            )
        if attribute.startswith(("sip.", "lk.")):
            said.append(
                (
                    ERROR,
                    f"attribute {attribute!r} (header {header}) is in LiveKit's own namespace "
                    "(sip., lk.): choose another name",
                )
            )
    return said
