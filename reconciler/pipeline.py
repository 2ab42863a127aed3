"""The plan pipeline: manifests -> secrets -> clients -> live state -> a plan.

Called by the CLI (``plan``, and ``apply``, which re-plans before it acts). It holds the
sequencing only; each step is a module of its own (DESIGN.md section 2). Accounts are
planned concurrently: each has its own client, ledger and rate limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler import ledger as ledgers
from reconciler import live
from reconciler.actions import AccountPlan, Plan
from reconciler.checks import NamedAccount
from reconciler.client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PER_MINUTE,
    ExotelClient,
    Gate,
    Transport,
    http_client,
)
from reconciler.client import base_url as account_url
from reconciler.errors import ConfigError, ManifestError
from reconciler.ledger import Ledger
from reconciler.load import Manifests, Secrets, require_secrets
from reconciler.plan import AccountInput, did_notices, new_numbers, plan_account


@dataclass(frozen=True)
class Options:
    refresh: str = "all"  # all | changed
    max_delete: int | None = None
    per_minute: int = DEFAULT_PER_MINUTE
    concurrency: int = DEFAULT_CONCURRENCY
    transport: Transport | None = None  # tests inject faults here


def select(manifests: Manifests, names: Sequence[str]) -> list[NamedAccount]:
    """The accounts to work on: all, or those named with --account (each must exist)."""
    if not names:
        return list(manifests.accounts.values())
    unknown = [name for name in names if name not in manifests.accounts]
    if unknown:
        declared = ", ".join(sorted(manifests.accounts)) or "none"
        raise ConfigError(f"no account named {', '.join(unknown)} (declared: {declared})")
    return [manifests.accounts[name] for name in dict.fromkeys(names)]


def ledger_path(manifests: Manifests, account: NamedAccount) -> Path:
    root = Path(manifests.root)
    base = root if root.is_dir() else root.parent
    return base / (account.spec.ledger or f"state/{account.name}.json")


def open_client(
    account: NamedAccount, secrets: Secrets, environ: Mapping[str, str], options: Options
) -> ExotelClient:
    spec = account.spec
    url = account_url(spec.region, spec.base_url, environ)
    http = http_client(
        url,
        secrets.get(spec.api_key),
        secrets.get(spec.api_token),
        concurrency=options.concurrency,
        transport=options.transport,
    )
    gate = Gate(per_minute=options.per_minute, concurrency=options.concurrency)
    return ExotelClient(account=account.name, sid=spec.sid, http=http, gate=gate)


async def plan_one(
    manifests: Manifests,
    account: NamedAccount,
    client: ExotelClient,
    ledger: Ledger,
    options: Options,
) -> AccountPlan:
    desired = tuple(t.spec for t in manifests.trunks if t.spec.account == account.name)
    state = await live.read(
        client, ledger=ledger, desired=desired, profile=account.spec.api, refresh=options.refresh
    )
    account_input = AccountInput(
        account.name, account.spec.sid, account.spec.api, account.spec.prune, desired
    )
    planned = plan_account(account_input, ledger, state, max_delete=options.max_delete)
    numbers = new_numbers(planned)
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
    if manifests.errors:
        raise ManifestError(manifests.errors)
    chosen = select(manifests, accounts)
    secrets, problems = require_secrets(manifests, environ, accounts=[a.name for a in chosen])
    if problems:
        raise ManifestError(problems)
    ledgers_by_account = {
        account.name: ledgers.read(
            ledger_path(manifests, account), account=account.name, account_sid=account.spec.sid
        )
        for account in chosen
    }

    async def one(account: NamedAccount) -> AccountPlan:
        client = open_client(account, secrets, environ, options)
        async with client.http:
            return await plan_one(
                manifests, account, client, ledgers_by_account[account.name], options
            )

    planned = await asyncio.gather(*(one(account) for account in chosen))
    return Plan(tuple(planned))
