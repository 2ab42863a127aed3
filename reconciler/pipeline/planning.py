"""The plan pipeline: manifests -> secrets -> clients -> live state -> a plan.

Called by the CLI (``plan`` and ``drift``) and by ``applying`` (which re-plans before it
acts). It holds the sequencing only; each step is a stage of its own
(docs/architecture.md). Accounts are planned concurrently: each has its own client,
ledger and rate gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from reconciler.errors import ApiError
from reconciler.exotel.client import ExotelClient
from reconciler.live import password_check
from reconciler.live import read as live
from reconciler.live.ledger import Ledger
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import SECRET_REFERENCE, CredentialSpec, TrunkSpec
from reconciler.pipeline.accounts import Account, Options, choose, client_for, ledger_of
from reconciler.plan.actions import AccountPlan, Notice, NoticeKind, Plan
from reconciler.plan.build import plan_account
from reconciler.plan.dids import did_notices, new_numbers
from reconciler.plan.livekit import Projects


def targeted(planned: AccountPlan, trunks: frozenset[str], held: frozenset[str]) -> AccountPlan:
    """``--trunk``: only the named trunks' actions, and one word that nothing else of the
    account was read (``held``: the account's trunk names, declared or in its ledger). An
    account that holds none of them says so instead."""
    named = ", ".join(sorted(trunks & held))
    if named:
        said = (
            f"--trunk {named}: only these were looked at; the rest of the account (other "
            "trunks, routes) was not, and may differ"
        )
    else:
        said = f"--trunk {', '.join(sorted(trunks))}: none of them is in this account"
    kept = [n for n in planned.notices if n.kind is not NoticeKind.NOT_REFRESHED]
    return replace(
        planned,
        actions=tuple(a for a in planned.actions if a.trunk in trunks),
        notices=(*kept, Notice(NoticeKind.NOT_REFRESHED, planned.account, said)),
    )


async def password_notices(account: Account, ledger: Ledger) -> list[Notice]:
    """A warning for each credential whose password variable, where this run has it, is
    not the value last set while its password_version is unchanged: apply would not send
    it (live.password_check). Plans in CI have no passwords, so this speaks in apply and
    wherever someone plans with them."""
    pending: list[tuple[TrunkSpec, CredentialSpec, str]] = []  # with the ledger's check
    for spec in account.declared.desired:
        entry = ledger.trunks.get(spec.name) or ledger.trunks.get(spec.renamed_from or "")
        if entry is None:
            continue
        for credential in spec.credentials:
            check = entry.checks.get(credential.username)
            same = entry.credentials.get(credential.username) == credential.password_version
            if check and same and (spec.name, credential.username) in account.passwords:
                pending.append((spec, credential, check))

    def differing() -> list[tuple[TrunkSpec, CredentialSpec]]:
        return [
            (spec, credential)
            for spec, credential, check in pending
            if password_check.matches(account.passwords[(spec.name, credential.username)], check)
            is False
        ]

    return [
        Notice(
            NoticeKind.PASSWORD,
            account.name,
            f"{variable(credential)} is not the password last set on credential "
            f"{credential.username} of trunk {spec.name}, and its password_version is still "
            f"{credential.password_version}: apply does not send it; bump password_version "
            "to rotate the password, or set the variable back",
            f"{account.name}/{spec.name}/credential/{credential.username}",
        )
        for spec, credential in (await asyncio.to_thread(differing) if pending else [])
    ]


def variable(credential: CredentialSpec) -> str:
    """The environment variable a credential's password comes from."""
    found = SECRET_REFERENCE.fullmatch(credential.password)
    return found[1] if found else "its password"


async def read_partners(account: Account, options: Options) -> Projects:
    """What each LiveKit partner of the account lists now, through LiveKit's SDK (three
    requests each). With ``options.tolerant`` (drift) a partner that cannot be read is
    reported in the plan instead of failing it."""

    async def one(name: str) -> tuple[str, Mapping[str, Any] | str]:
        try:
            async with account.livekit[name].client(options) as client:
                return name, (await client.read()).objects
        except ApiError as error:
            if not options.tolerant:
                raise
            return name, str(error)

    found = await asyncio.gather(*(one(name) for name in sorted(account.livekit)))
    return dict(found)


async def plan_one(
    account: Account, client: ExotelClient, ledger: Ledger, options: Options
) -> AccountPlan:
    """One account: read what the plan needs, plan it, then add what only a read of
    the environment or of other trunks can tell (passwords, DIDs held elsewhere)."""
    declared = account.declared
    scope = options.trunks or options.scopes.get(account.name)
    refresh = "all" if options.trunks else options.refresh  # --trunk: exactly those
    state = await live.read(
        client,
        ledger=ledger,
        desired=declared.desired,
        profile=declared.profile,
        refresh=refresh,
        only=scope,
        listing=True if scope is not None else None,
        tolerant=options.tolerant,
    )
    projects = await read_partners(account, options) if account.livekit else {}
    planned = plan_account(
        declared, ledger, state, max_delete=options.max_delete, projects=projects
    )
    overridden = [
        Notice(
            NoticeKind.SEAM,
            account.name,
            f"partner {name}: LIVEKIT_URL sends its requests to {access.url}, not to the "
            f"manifest's {access.overridden}: the objects planned are that project's",
        )
        for name, access in sorted(account.livekit.items())
        if access.overridden
    ]
    notices = (*planned.notices, *overridden, *await password_notices(account, ledger))
    planned = replace(planned, notices=notices)
    if options.trunks:
        held = frozenset(spec.name for spec in declared.desired) | set(ledger.trunks)
        planned = targeted(planned, options.trunks, held)
    numbers = new_numbers(planned) if options.lookups else []
    if declared.profile == "full" and numbers:
        before = client.calls
        holders = await live.did_holders(client, numbers)
        planned = did_notices(planned, holders, ledger)
        planned = replace(planned, calls=planned.calls + client.calls - before)
    return planned


async def make_plan(
    manifests: Manifests,
    *,
    accounts: Sequence[str],
    environ: Mapping[str, str],
    options: Options,
) -> Plan:
    """Plan the chosen accounts; raises ManifestError or ConfigError before any API call."""
    chosen = choose(manifests, accounts, environ, passwords=False, shard=options.shard)  # GETs only
    ledgers = {account.name: ledger_of(account) for account in chosen}

    async def one(account: Account) -> AccountPlan:
        client = client_for(account, options)
        async with client.http:
            return await plan_one(account, client, ledgers[account.name], options)

    planned = await asyncio.gather(*(one(account) for account in chosen))
    return Plan(tuple(planned))
