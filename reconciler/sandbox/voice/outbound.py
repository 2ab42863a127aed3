"""A partner's INVITE to the PSTN, admitted or refused as Exotel's gateway does.

Called by ``gateway`` for each new INVITE. Exotel admits an outbound call by the
trunk's whitelisted IPs, its digest credentials, or both; with both set, both must match
(docs/exotel-api.md, "Calls"); the caller ID must be one the account may present, which
for a trunk means its alias or one of its DIDs. A refusal is a 403 whose reason phrase
says why (Exotel's proxy adds ``X-Exotel-ErrorCode: 4001``). Digest challenges are 407
Proxy Authentication Required, as a proxy sends them (RFC 3261 22.3), in the realm of the
trunk's ``domain_name``. Source addresses are the ones the partner's packets come from,
or what ``--peer LOCAL=PUBLIC`` says a loopback alias stands for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.sandbox.store import Store, Trunk
from reconciler.sip import digest
from reconciler.sip import message as sip


@dataclass(frozen=True)
class Admission:
    trunk: Trunk | None
    code: int = 200
    reason: str = "OK"
    challenge: str | None = None  # a Proxy-Authenticate value, with code 407
    how: str = ""  # ip | digest | ip+digest
    user: str | None = None


@dataclass
class Nonces:
    """The digest nonces this gateway issued (the newest ones)."""

    issued: list[str] = field(default_factory=list)
    limit: int = 10_000

    def new(self) -> str:
        value = sip.token(16)
        self.issued.append(value)
        del self.issued[: -self.limit]
        return value

    def known(self) -> set[str]:
        return set(self.issued)

    def spend(self, nonce: str) -> None:
        """A nonce answers one challenge: used once, it is stale (no replays)."""
        if nonce in self.issued:
            self.issued.remove(nonce)


def user_of(value: str | None) -> str:
    """The user part of a header's SIP URI: ``"x" <sip:+9180@host>;tag=1`` -> ``+9180``."""
    if not value:
        return ""
    inside = value.partition("<")[2].partition(">")[0] if "<" in value else value
    target = inside.partition(":")[2] if inside.lower().startswith(("sip:", "sips:")) else inside
    return target.partition("@")[0] if "@" in target else ""


def host_of(uri: str) -> str:
    target = uri.partition(":")[2]
    host = target.partition("@")[2] if "@" in target else target
    return host.partition(";")[0].partition(":")[0].lower()


def _whitelisted(trunk: Trunk, source: str) -> bool:
    try:
        address = ipaddress.IPv4Address(source)
    except ValueError:
        return False
    return any(
        address in ipaddress.IPv4Network(f"{entry.ip}/{entry.mask}", strict=False)
        for entry in trunk.whitelisted_ips.values()
    )


def _trunks(store: Store) -> Iterable[Trunk]:
    for account in store.accounts.values():
        yield from account.trunks.values()


def admit(store: Store, request: sip.Incoming, *, source: str, nonces: Nonces) -> Admission:
    """Which trunk takes this INVITE, or the refusal or challenge to send."""
    every = list(_trunks(store))
    domain = host_of(request.uri)
    named = [t for t in every if t.domain_name.lower() == domain] or every
    usable = [
        t
        for t in named
        if (t.whitelisted_ips or t.credentials)
        and (not t.whitelisted_ips or _whitelisted(t, source))
    ]
    if not usable:
        return Admission(None, 403, f"Forbidden - source {source} is not whitelisted on any trunk")
    digest_needed = [t for t in usable if t.credentials]
    how = "ip"
    user = None
    if digest_needed:
        answered = request.header("proxy-authorization") or request.header("authorization")
        if not answered:
            realm = digest_needed[0].domain_name
            return Admission(
                None,
                407,
                "Proxy Authentication Required",
                digest.challenge(realm, nonce=nonces.new()),
            )
        verdict, usable = _verify(answered, request, digest_needed, nonces)
        if verdict.why == "stale or unknown nonce":  # a restart, or a reused nonce: again
            realm = digest_needed[0].domain_name
            challenge = digest.challenge(realm, nonce=nonces.new(), stale=True)
            return Admission(None, 407, "Proxy Authentication Required", challenge)
        if not verdict.ok:
            return Admission(None, 403, f"Forbidden - {sip.shown(verdict.why, 80)}")
        nonces.spend(digest.params(answered).get("nonce", ""))
        user = verdict.username
        how = "ip+digest" if any(t.whitelisted_ips for t in usable) else "digest"
    caller = user_of(request.header("p-asserted-identity")) or user_of(request.header("from"))
    for trunk in usable:
        allowed = {n.phone_number for n in trunk.phone_numbers.values()}
        alias = trunk.settings.get("trunk_external_alias")
        if alias is not None:
            allowed.add(alias.value)
        if caller in allowed:
            return Admission(trunk, how=how, user=user)
    names = ", ".join(sorted(t.trunk_name for t in usable))
    return Admission(
        None,
        403,
        f"Forbidden - caller ID {sip.shown(caller, 40) or '(none)'} is not the alias or a DID "
        f"of trunk {names}",
    )


def _verify(
    answered: str, request: sip.Incoming, trunks: list[Trunk], nonces: Nonces
) -> tuple[digest.Verdict, list[Trunk]]:
    said = digest.params(answered)
    realm = said.get("realm", "")
    in_realm = [t for t in trunks if t.domain_name == realm]
    if not in_realm:
        return digest.Verdict(False, said.get("username"), f"no trunk has the realm {realm!r}"), []
    secrets_: dict[str, str] = {}
    for trunk in in_realm:
        for credential in trunk.credentials.values():
            if credential.ha1 is not None:
                secrets_.setdefault(credential.user_name, credential.ha1)
    verdict = digest.verify(
        answered, method=request.method, realm=realm, nonces=nonces.known(), secrets_=secrets_
    )
    holders = [
        t for t in in_realm if any(c.user_name == verdict.username for c in t.credentials.values())
    ]
    return verdict, holders


def peer_address(source: str, peers: Mapping[str, str]) -> str:
    return peers.get(source, source)
