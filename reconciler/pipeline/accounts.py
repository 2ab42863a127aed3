"""What every command that calls the API does first: choose the accounts and resolve
each once (what it declares, its ledger's path, its API's URL, its secrets) into an
immutable :class:`Account`; open one client per account.

Called by ``planning``, ``applying`` and ``importing``. Raises ``ManifestError`` or
``ConfigError`` before any API call, so a broken checkout never reaches Exotel.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ConfigError, LedgerError, ManifestError
from reconciler.exotel.client import ExotelClient
from reconciler.exotel.gate import DEFAULT_CONCURRENCY, Gate
from reconciler.exotel.transport import (
    OFFICIAL_HOSTS,
    Transport,
    base_url,
    foreign_host,
    http_client,
)
from reconciler.live import ledger as ledgers
from reconciler.livekit.client import CLOUD_SUFFIX, LiveKitClient, partner_url
from reconciler.manifests.declared import NamedAccount
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import SECRET_REFERENCE, AccountSpec
from reconciler.manifests.problems import did_you_mean
from reconciler.manifests.seam import End, ends
from reconciler.manifests.secrets import Secrets, require_secrets
from reconciler.plan.steps import AccountInput


@dataclass(frozen=True)
class Options:
    refresh: str = "all"  # all | changed
    max_delete: int | None = None
    per_minute: int | None = None  # None: each account's rate_limit
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 30.0  # seconds to wait for an answer
    tolerant: bool = False  # report trunks that cannot be read instead of failing (drift)
    # Per account: read only these trunks (a saved plan's scope), with the trunk list.
    scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    lookups: bool = True  # look up who holds each DID the plan maps (plans; not apply)
    trunks: frozenset[str] = frozenset()  # --trunk: only these (names), the rest unread
    shard: tuple[int, int] | None = None  # --shard I/N: only the accounts of shard I (1-based)
    transport: Transport | None = None  # tests inject faults here


ALLOWED_HOSTS = "RECONCILER_ALLOWED_HOSTS"


def in_ci(environ: Mapping[str, str]) -> bool:
    """On a CI runner, where manifests may come from a pull request: GitHub Actions sets
    ``GITHUB_ACTIONS``, and most CI systems ``CI``."""
    return environ.get("GITHUB_ACTIONS") == "true" or environ.get("CI", "").lower() in (
        "true",
        "1",
    )


def shard_of(account: str, count: int) -> int:
    """Which of ``count`` shards (1-based) an account belongs to: a hash of its name, so
    an account stays in its shard as others come and go (its ledger, its concurrency
    group and its rate limit travel with it)."""
    digest = hashlib.sha256(account.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select(
    manifests: Manifests, names: Sequence[str], shard: tuple[int, int] | None = None
) -> list[NamedAccount]:
    """The accounts to work on: all, or those named with --account (each must exist);
    with ``shard`` (I, N), only those of shard I of N."""
    chosen = _named(manifests, names)
    if shard is None:
        return chosen
    index, count = shard
    return [account for account in chosen if shard_of(account.name, count) == index]


def _named(manifests: Manifests, names: Sequence[str]) -> list[NamedAccount]:
    if not names:
        return list(manifests.accounts.values())
    unknown = [name for name in names if name not in manifests.accounts]
    if unknown:
        declared = ", ".join(sorted(manifests.accounts)) or "none"
        hint = did_you_mean(unknown[0], manifests.accounts)
        raise ConfigError(f"no account named {', '.join(unknown)}{hint} (declared: {declared})")
    return [manifests.accounts[name] for name in dict.fromkeys(names)]


def known_trunks(manifests: Manifests, accounts: Sequence[str], trunks: frozenset[str]) -> None:
    """``--trunk`` names must each be a trunk the chosen accounts declare, or one their
    ledgers still hold (a trunk on its way out); a typo is an error, never "No changes"."""
    if not trunks or manifests.errors:
        return
    chosen = select(manifests, accounts)
    names = {t.spec.name for t in manifests.trunks if t.spec.account in {a.name for a in chosen}}
    for account in chosen:
        path = ledgers.ledger_path(manifests.root, account)
        with contextlib.suppress(LedgerError):  # the command reads it too, and says why not
            held = ledgers.read(path, account=account.name, account_sid=account.spec.sid)
            names |= set(held.trunks)
    unknown = sorted(trunks - names)
    if unknown:
        hints = "".join(did_you_mean(name, names) for name in unknown)
        listed = ", ".join(a.name for a in chosen)
        where = (
            f"account {listed} declares"
            if len(chosen) == 1 and accounts
            else (f"accounts {listed} declare" if accounts else "the manifests declare")
        )
        declared = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            f"--trunk {', '.join(unknown)}: {where} no such trunk{hints} (trunks: {declared})"
        )


@dataclass(frozen=True)
class LiveKitAccess:
    """Where one LiveKit partner's API is, and its key and secret (never printed)."""

    partner: str
    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    overridden: str = ""  # the manifest's url, when LIVEKIT_URL replaces it

    def client(self, options: Options) -> LiveKitClient:
        return LiveKitClient(
            partner=self.partner,
            url=self.url,
            api_key=self.api_key,
            api_secret=self.api_secret,
            timeout=options.timeout,
        )


@dataclass(frozen=True)
class Account:
    """One chosen account, resolved once before any call: what it declares, where its
    ledger and its API are, and its secrets (left out of its repr, so never printed).
    Immutable: the stages below get it, or the parts they need, as data."""

    named: NamedAccount
    declared: AccountInput  # name, sid, profile, prune, its trunks and routes
    ledger_path: Path
    url: str  # the API's base URL
    api_key: str = field(repr=False)
    api_token: str = field(repr=False)
    # (trunk, username) -> password: all of them for apply; for other commands, those
    # whose variable this run has (plans compare them with the ledger's checks).
    passwords: Mapping[tuple[str, str], str] = field(repr=False)
    # The LiveKit partners its trunks use, or its ledger still holds objects on.
    livekit: Mapping[str, LiveKitAccess] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.named.name

    @property
    def spec(self) -> AccountSpec:
        return self.named.spec


def ledger_of(account: Account) -> ledgers.Ledger:
    return ledgers.read(account.ledger_path, account=account.name, account_sid=account.spec.sid)


def client_for(account: Account, options: Options) -> ExotelClient:
    """The account's API client, with its own connection pool and rate gate."""
    spec = account.spec
    http = http_client(
        account.url,
        account.api_key,
        account.api_token,
        concurrency=options.concurrency,
        timeout=options.timeout,
        transport=options.transport,
    )
    per_minute = spec.rate_limit if options.per_minute is None else options.per_minute
    gate = Gate(per_minute=per_minute, concurrency=options.concurrency, account=account.name)
    return ExotelClient(account=account.name, sid=spec.sid, http=http, gate=gate)


def _only_to(owner: str, what: str, found: str | None, official: str, other: str) -> None:
    """In CI, refuse a host the manifests chose (``found``: not ``official``, not listed by
    the workflow) before anything is sent to it."""
    if found is not None:
        raise ConfigError(
            f"{owner}: refusing to send {what} to {found}: in CI they go only to "
            f"{official}. A workflow that means to use another ({other}) lists it in its "
            f"own environment: {ALLOWED_HOSTS}=host:port. Nothing was sent."
        )


def partner_ends(manifests: Manifests, account: str) -> tuple[End, ...]:
    """The partner ends of an account's trunks, of every platform."""
    return tuple(
        ends(
            manifests.accounts,
            manifests.partners,
            (t.spec for t in manifests.trunks if t.spec.account == account),
            [r.spec for r in manifests.routes],
        )
    )


def livekit_partners(
    manifests: Manifests, account: NamedAccount, account_ends: Sequence[End] | None = None
) -> list[str]:
    """The LiveKit partners an account needs: those its trunks use (``account_ends``,
    derived when not given), and those its ledger still holds objects on (to delete
    them), where declared."""
    if account_ends is None:
        account_ends = partner_ends(manifests, account.name)
    used = {e.partner for e in account_ends if e.platform == "livekit"}
    with contextlib.suppress(LedgerError):  # the command reads it too, and says why not
        path = ledgers.ledger_path(manifests.root, account)
        held = ledgers.read(path, account=account.name, account_sid=account.spec.sid)
        used |= {entry.partner for entry in held.partner_objects.values()}
    declared = manifests.partners
    return sorted(n for n in used if n in declared and declared[n].spec.platform == "livekit")


def _livekit_access(
    manifests: Manifests, names: Sequence[str], secrets: Secrets, environ: Mapping[str, str]
) -> dict[str, LiveKitAccess]:
    access = {}
    for name in names:
        spec = manifests.partners[name].spec
        assert spec.url is not None
        assert spec.api_key is not None and spec.api_secret is not None  # noqa: PT018
        written = SECRET_REFERENCE.fullmatch(spec.url)
        configured = secrets.get(spec.url) if written else spec.url
        url = partner_url(configured, environ)
        if in_ci(environ):
            _only_to(
                f"partner {name}",
                "LiveKit API requests",
                foreign_host(
                    url,
                    environ.get(ALLOWED_HOSTS, ""),
                    official=lambda host: host.endswith(CLOUD_SUFFIX),
                ),
                f"LiveKit Cloud over HTTPS (*{CLOUD_SUFFIX})",
                "its own server, a sandbox",
            )
        written_url = partner_url(configured, {})
        access[name] = LiveKitAccess(
            name,
            url,
            secrets.get(spec.api_key),
            secrets.get(spec.api_secret),
            overridden=written_url if written_url != url else "",
        )
    return access


def _resolve(
    manifests: Manifests,
    named: NamedAccount,
    secrets: Secrets,
    environ: Mapping[str, str],
    *,
    account_ends: tuple[End, ...],
    livekit: Sequence[str],
) -> Account:
    spec = named.spec
    url = base_url(spec.region, spec.base_url, environ)
    if in_ci(environ):
        _only_to(
            f"account {named.name}",
            "its API credentials",
            foreign_host(url, environ.get(ALLOWED_HOSTS, "")),
            f"Exotel's API hosts over HTTPS ({', '.join(sorted(OFFICIAL_HOSTS))})",
            "a sandbox",
        )
    desired = tuple(t.spec for t in manifests.trunks if t.spec.account == named.name)
    routes = tuple(r.spec for r in manifests.routes if r.spec.account == named.name)
    passwords = {
        (trunk.name, credential.username): secrets.values[found[1]]
        for trunk in desired
        for credential in trunk.credentials
        if (found := SECRET_REFERENCE.fullmatch(credential.password)) and found[1] in secrets.values
    }
    return Account(
        named=named,
        declared=AccountInput(
            name=named.name,
            sid=spec.sid,
            profile=spec.api,
            prune=spec.prune,
            desired=desired,
            routes=routes,
            ends=account_ends,
        ),
        ledger_path=ledgers.ledger_path(manifests.root, named),
        url=url,
        api_key=secrets.get(spec.api_key),
        api_token=secrets.get(spec.api_token),
        passwords=passwords,
        livekit=_livekit_access(manifests, livekit, secrets, environ),
    )


def choose(
    manifests: Manifests,
    names: Sequence[str],
    environ: Mapping[str, str],
    *,
    passwords: bool = True,
    shard: tuple[int, int] | None = None,
) -> tuple[Account, ...]:
    """The chosen accounts, each resolved once; raises before any API call when the
    manifests have errors, an account is unknown, a secret is missing or (in CI) an
    API host is not Exotel's."""
    if manifests.errors:
        raise ManifestError(manifests.errors)
    chosen = select(manifests, names, shard)
    # Each account's ends and partners once (a ledger read each): for its secrets and
    # for its own resolving.
    account_ends = {a.name: partner_ends(manifests, a.name) for a in chosen}
    needs = {a.name: livekit_partners(manifests, a, account_ends[a.name]) for a in chosen}
    partners = sorted({p for found in needs.values() for p in found})
    secrets, problems = require_secrets(
        manifests,
        environ,
        accounts=[a.name for a in chosen],
        passwords=passwords,
        partners=partners,
    )
    if problems:
        raise ManifestError(problems)
    return tuple(
        _resolve(
            manifests,
            named,
            secrets,
            environ,
            account_ends=account_ends[named.name],
            livekit=needs[named.name],
        )
        for named in chosen
    )
