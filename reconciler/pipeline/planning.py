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

from reconciler.exotel.client import ExotelClient
from reconciler.live import password_check
from reconciler.live import read as live
from reconciler.live.ledger import Ledger
from reconciler.manifests.declared import NamedAccount
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import SECRET_REFERENCE
from reconciler.pipeline.accounts import Chosen, Options, choose
from reconciler.plan.actions import AccountPlan, Notice, NoticeKind, Plan
from reconciler.plan.build import AccountInput, plan_account
from reconciler.plan.dids import did_notices, new_numbers


def account_input(chosen: Chosen, account: NamedAccount) -> AccountInput:
    spec = account.spec
    return AccountInput(
        name=account.name,
        sid=spec.sid,
        profile=spec.api,
        prune=spec.prune,
        desired=chosen.desired(account),
        routes=chosen.routes(account),
    )


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


async def password_notices(chosen: Chosen, account: NamedAccount, ledger: Ledger) -> list[Notice]:
    """A warning for each credential whose password variable, where this run has it, is
    not the value last set while its password_version is unchanged: apply would not send
    it (live.password_check). Plans in CI have no passwords, so this speaks in apply and
    wherever someone plans with them."""
    pending: list[tuple[str, str, str, str]] = []  # trunk, username, variable, check
    for spec in chosen.desired(account):
        entry = ledger.trunks.get(spec.name) or ledger.trunks.get(spec.renamed_from or "")
        if entry is None:
            continue
        for credential in spec.credentials:
            check = entry.checks.get(credential.username)
            same = entry.credentials.get(credential.username) == credential.password_version
            found = SECRET_REFERENCE.fullmatch(credential.password)
            if check and same and found and chosen.environ.get(found[1]):
                pending.append((spec.name, credential.username, found[1], check))

    def differing() -> list[tuple[str, str, str]]:
        return [
            (trunk, user, variable)
            for trunk, user, variable, check in pending
            if password_check.matches(chosen.environ[variable], check) is False
        ]

    versions = {
        s.name: {c.username: c.password_version for c in s.credentials}
        for s in chosen.desired(account)
    }
    return [
        Notice(
            NoticeKind.PASSWORD,
            account.name,
            f"{variable} is not the password last set on credential {user} of trunk {trunk}, "
            f"and its password_version is still {versions[trunk][user]}: apply does not send "
            "it; bump password_version to rotate the password, or set the variable back",
            f"{account.name}/{trunk}/credential/{user}",
        )
        for trunk, user, variable in (await asyncio.to_thread(differing) if pending else [])
    ]


async def plan_one(
    chosen: Chosen,
    account: NamedAccount,
    client: ExotelClient,
    ledger: Ledger,
    options: Options,
) -> AccountPlan:
    scope = options.trunks or options.scopes.get(account.name)
    refresh = "all" if options.trunks else options.refresh  # --trunk: exactly those
    state = await live.read(
        client,
        ledger=ledger,
        desired=chosen.desired(account),
        profile=account.spec.api,
        refresh=refresh,
        only=scope,
        listing=True if scope is not None else None,
        tolerant=options.tolerant,
    )
    planned = plan_account(
        account_input(chosen, account), ledger, state, max_delete=options.max_delete
    )
    planned = replace(
        planned, notices=(*planned.notices, *await password_notices(chosen, account, ledger))
    )
    if options.trunks:
        held = frozenset(spec.name for spec in chosen.desired(account)) | set(ledger.trunks)
        planned = targeted(planned, options.trunks, held)
    numbers = new_numbers(planned) if options.lookups else []
    if account.spec.api == "full" and numbers:
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
    chosen = choose(manifests, accounts, environ, passwords=False)  # plans send only GETs
    ledgers = {account.name: chosen.ledger(account) for account in chosen.accounts}

    async def one(account: NamedAccount) -> AccountPlan:
        client = chosen.client(account, options)
        async with client.http:
            return await plan_one(chosen, account, client, ledgers[account.name], options)

    planned = await asyncio.gather(*(one(account) for account in chosen.accounts))
    return Plan(tuple(planned))
