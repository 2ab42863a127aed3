"""The plan pipeline: manifests -> secrets -> clients -> live state -> a plan.

Called by the CLI (``plan``, and ``apply``, which re-plans before it acts). It holds the
sequencing only; each step is a module of its own (DESIGN.md section 2). Accounts are
planned concurrently: each has its own client, ledger and rate limit.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler import importer, live
from reconciler import ledger as ledgers
from reconciler.actions import (
    AccountPlan,
    ApplyResult,
    NoticeKind,
    Outcome,
    Plan,
    checksum,
    saved_canonical,
)
from reconciler.apply import Executor
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
from reconciler.errors import ConfigError, ManifestError, Refused
from reconciler.importer import Imported
from reconciler.journal import Journal
from reconciler.ledger import Ledger
from reconciler.load import Manifests, Secrets, require_secrets
from reconciler.models import TrunkSpec
from reconciler.plan import AccountInput, did_notices, new_numbers, plan_account
from reconciler.route_models import RouteSpec


@dataclass(frozen=True)
class Options:
    refresh: str = "all"  # all | changed
    max_delete: int | None = None
    per_minute: int = DEFAULT_PER_MINUTE
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 30.0  # seconds to wait for an answer
    tolerant: bool = False  # report trunks that cannot be read instead of failing (drift)
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
        timeout=options.timeout,
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
        client,
        ledger=ledger,
        desired=desired,
        profile=account.spec.api,
        refresh=options.refresh,
        tolerant=options.tolerant,
    )
    routes = tuple(r.spec for r in manifests.routes if r.spec.account == account.name)
    account_input = AccountInput(
        account.name, account.spec.sid, account.spec.api, account.spec.prune, desired, routes
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


@dataclass(frozen=True)
class ApplyOptions:
    force: bool = False  # override the safety rails
    saved_plan: Mapping[str, Any] | None = None  # a reviewed `plan --out` document
    break_lock: bool = False  # remove a stale lock left by a process that died here


def _refusal_for_saved(saved: Mapping[str, Any], plan: Plan) -> Refused | None:
    """None when the saved plan is what applying would do now, for the accounts applied
    (a plan of several accounts may be applied one account at a time)."""
    accounts = {account.account for account in plan.accounts}
    actions = [a for a in saved.get("actions", []) if isinstance(a, dict)]
    chosen = [a for a in actions if a.get("account") in accounts]
    reviewed_checksum = (
        saved.get("checksum")
        if len(chosen) == len(actions)
        else checksum([saved_canonical(a) for a in chosen])
    )
    if reviewed_checksum == plan.checksum:
        return None
    reviewed = {str(a.get("address")): a for a in chosen}
    now = {action.address: action for action in plan.actions}
    lines = [
        f"  + {address} (new since the plan was made)" for address in now.keys() - reviewed.keys()
    ]
    lines += [f"  - {address} (no longer needed)" for address in reviewed.keys() - now.keys()]
    for address in now.keys() & reviewed.keys():
        before = saved_canonical(reviewed[address])
        if json.dumps(before, sort_keys=True) != json.dumps(
            now[address].canonical(), sort_keys=True
        ):
            lines.append(
                f"  ~ {address} (changed: now {now[address].kind} {now[address].operation})"
            )
    detail = (
        "\n".join(sorted(lines)) or "  (the same actions, in another order or with other targets)"
    )
    return Refused(
        f"the saved plan is stale: re-planning now gives checksum {plan.checksum}, the plan "
        f"you reviewed had {reviewed_checksum}. What differs:\n{detail}\n"
        "Nothing was applied: review a new plan."
    )


async def apply(
    manifests: Manifests,
    *,
    accounts: Sequence[str],
    environ: Mapping[str, str],
    options: Options,
    apply_options: ApplyOptions,
    confirm: Callable[[Plan], bool],
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    on_plan: Callable[[Plan], None] = lambda plan: None,
) -> ApplyResult:
    """Lock, re-plan, check, show (``on_plan``), confirm, execute, verify. Raises Refused
    (exit 3) before any write when the plan is stale, a rail holds or nobody approved it."""
    if manifests.errors:
        raise ManifestError(manifests.errors)
    chosen = select(manifests, accounts)
    secrets, problems = require_secrets(manifests, environ, accounts=[a.name for a in chosen])
    if problems:
        raise ManifestError(problems)
    paths = {account.name: ledger_path(manifests, account) for account in chosen}
    locks: list[ledgers.Lock] = []
    try:
        for account in sorted(chosen, key=lambda a: str(paths[a.name])):
            lock = ledgers.Lock.beside(paths[account.name])
            lock.acquire(break_stale=apply_options.break_lock)
            locks.append(lock)
        clients = {
            account.name: open_client(account, secrets, environ, options) for account in chosen
        }
        try:
            return await _apply_locked(
                manifests, chosen, paths=paths, clients=clients, secrets=secrets,
                options=options, apply_options=apply_options, confirm=confirm,
                on_outcome=on_outcome, on_plan=on_plan,
            )  # fmt: skip
        finally:
            for client in clients.values():
                await client.http.aclose()
    finally:
        for lock in locks:
            lock.release()


async def _apply_locked(
    manifests: Manifests,
    chosen: Sequence[NamedAccount],
    *,
    paths: Mapping[str, Path],
    clients: Mapping[str, ExotelClient],
    secrets: Secrets,
    options: Options,
    apply_options: ApplyOptions,
    confirm: Callable[[Plan], bool],
    on_outcome: Callable[[Outcome], None],
    on_plan: Callable[[Plan], None],
) -> ApplyResult:
    read = {
        a.name: ledgers.read(paths[a.name], account=a.name, account_sid=a.spec.sid) for a in chosen
    }
    planned = await asyncio.gather(
        *(plan_one(manifests, a, clients[a.name], read[a.name], options) for a in chosen)
    )
    plan = Plan(tuple(planned))
    if apply_options.saved_plan is not None:
        refusal = _refusal_for_saved(apply_options.saved_plan, plan)
        if refusal is not None:
            raise refusal
    on_plan(plan)
    if plan.rails and not apply_options.force:
        listed = "\n".join(f"  ! {notice.message}" for notice in plan.rails)
        raise Refused(f"safety rails hold:\n{listed}\nNothing was applied (--force overrides).")
    if not plan.has_changes:
        return ApplyResult(plan, (), plan)
    if apply_options.saved_plan is None and not confirm(plan):
        raise Refused("not confirmed: nothing was applied")

    async def one(
        account: NamedAccount, account_plan: AccountPlan
    ) -> tuple[list[Outcome], AccountPlan]:
        recorder = ledgers.Recorder(paths[account.name], read[account.name])
        journal = Journal(journal_path(paths[account.name]), run=uuid.uuid4().hex[:12])
        desired = {t.spec.name: t.spec for t in manifests.trunks if t.spec.account == account.name}
        try:
            journal.note("apply.started", account=account.name, checksum=plan.checksum)
            executor = Executor(
                plan=account_plan, client=clients[account.name], recorder=recorder,
                journal=journal, desired=desired, secrets=secrets, on_outcome=on_outcome,
            )  # fmt: skip
            outcomes = await executor.run()
            await recorder.save()
            routes = tuple(r.spec for r in manifests.routes if r.spec.account == account.name)
            remaining = await _verify(
                account, account_plan, clients[account.name], recorder,
                desired=desired, routes=routes,
            )  # fmt: skip
            journal.note("apply.finished", account=account.name, remaining=len(remaining.actions))
        finally:
            journal.close()
        return outcomes, remaining

    results = await asyncio.gather(*(one(a, p) for a, p in zip(chosen, plan.accounts, strict=True)))
    outcomes = tuple(outcome for account_outcomes, _ in results for outcome in account_outcomes)
    return ApplyResult(plan, outcomes, Plan(tuple(remaining for _, remaining in results)))


async def _verify(
    account: NamedAccount,
    executed: AccountPlan,
    client: ExotelClient,
    recorder: ledgers.Recorder,
    *,
    desired: Mapping[str, TrunkSpec],
    routes: tuple[RouteSpec, ...],
) -> AccountPlan:
    """Re-read the trunks that were touched and plan again: what is left to do."""
    touched = frozenset(action.trunk for action in executed.actions)
    specs = tuple(desired.values())
    state = await live.read(
        client, ledger=recorder.ledger, desired=specs, profile=account.spec.api, only=touched
    )
    account_input = AccountInput(
        account.name, account.spec.sid, account.spec.api, account.spec.prune, specs, routes
    )
    remaining = plan_account(account_input, recorder.ledger, state)
    return replace(
        remaining, notices=tuple(n for n in remaining.notices if n.kind is NoticeKind.RAIL)
    )


def journal_path(ledger_file: Path) -> Path:
    return ledger_file.with_name(ledger_file.stem + ".journal.jsonl")


async def import_trunks(
    manifests: Manifests,
    *,
    account: str,
    targets: Sequence[str],
    everything: bool,
    folder: Path,
    environ: Mapping[str, str],
    options: Options,
    force: bool,
) -> list[Imported]:
    """Import under the ledger's lock: an apply must not run while the ledger grows."""
    if manifests.errors:
        raise ManifestError(manifests.errors)
    [named] = select(manifests, [account])
    secrets, problems = require_secrets(manifests, environ, accounts=[account], passwords=False)
    if problems:
        raise ManifestError(problems)
    path = ledger_path(manifests, named)
    lock = ledgers.Lock.beside(path)
    lock.acquire()
    try:
        client = open_client(named, secrets, environ, options)
        async with client.http:
            return await importer.import_trunks(
                manifests, client, account=account, targets=targets, everything=everything,
                folder=folder, ledger_file=path, force=force,
            )  # fmt: skip
    finally:
        lock.release()
