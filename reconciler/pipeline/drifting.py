"""Drift within a budget: check the trunks least recently checked, remember when.

Called by the CLI (``drift``). A whole account costs five reads per trunk (four in
profile ``minimal``) plus the trunk list's pages; at 1,000 trunks that is 5,010 of the
account's 200 requests a minute, several times a day, shared with the platform's own
calls. With ``--budget CALLS`` a run checks as many trunks as the budget pays for, the
least recently checked first, and records when it checked each one beside the ledger
(``<ledger>.checked.json``, kept on the state branch), so successive runs sweep the whole
account. Without a budget every trunk is checked, as before.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from reconciler import render
from reconciler.errors import ConfigError, LedgerError
from reconciler.exotel.client import reads_per_trunk
from reconciler.live.files import write_atomically
from reconciler.live.pairing import pair
from reconciler.live.state import Ledger
from reconciler.manifests.load import Manifests
from reconciler.pipeline.accounts import Account, Options, choose, client_for, ledger_of
from reconciler.pipeline.planning import plan_one
from reconciler.plan.actions import AccountPlan, NoticeKind, Plan

CHECKED = ".checked.json"
PAGE_SIZE = 100  # the trunk list's page (the client asks for the API's maximum)
# Collections read per trunk: settings only where the profile can read them.
READS = {"full": reads_per_trunk(settings=True), "minimal": reads_per_trunk(settings=False)}


@dataclass(frozen=True)
class Coverage:
    account: str
    checked: int  # trunks checked this run
    total: int  # trunks the ledger tracks
    runs_for_all: int  # runs at this budget that check every trunk
    never: int  # trunks never checked yet
    oldest: datetime | None  # the least recent check, once every trunk has one
    # Drift an earlier run found on trunks this run did not check: still to be dealt with.
    earlier: tuple[str, ...] = ()

    def line(self, now: datetime) -> str:
        said = f"{self.checked:,} of {self.total:,} trunk(s) checked this run"
        if self.total:
            said += f"; every trunk within the last {self.runs_for_all} run(s)"
        if self.never:
            said += f"; {self.never:,} never checked yet"
        elif self.oldest is not None:
            said += f"; oldest check {_age(now - self.oldest)} ago"
        return f"{self.account}: {said}"


def _age(delta: object) -> str:
    seconds = int(getattr(delta, "total_seconds", lambda: 0)())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


ACCOUNTS_AT_ONCE = 16  # accounts drifted together by one run (each up to 50 connections)


def checked_path(ledger_file: Path) -> Path:
    return ledger_file.with_name(ledger_file.name + CHECKED)


@dataclass(frozen=True)
class Record:
    """Beside the ledger: when drift last checked each trunk, and what it found then."""

    checked: dict[str, str]  # ledger name -> ISO time of the last check
    drifted: dict[str, list[str]]  # ledger name -> drift found at that check (still open)


def read_checked(path: Path) -> Record:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Record({}, {})
    except (OSError, ValueError) as error:
        raise LedgerError(f"{path} is not a readable drift record ({error})") from None
    checked = document.get("checked") if isinstance(document, dict) else None
    drifted = document.get("drifted", {}) if isinstance(document, dict) else None
    if not isinstance(checked, dict) or not isinstance(drifted, dict):
        raise LedgerError(f"{path} must hold 'checked' and 'drifted' maps of trunk names")
    return Record(
        {str(k): str(v) for k, v in checked.items()},
        {str(k): [str(line) for line in v] for k, v in drifted.items() if isinstance(v, list)},
    )


def _write_checked(path: Path, record: Record) -> None:
    document = {
        "checked": dict(sorted(record.checked.items())),
        "drifted": dict(sorted(record.drifted.items())),
    }
    text = json.dumps(document, indent=2) + "\n"
    write_atomically(path, text, what="drift's record of checked trunks")


def affordable(budget: int, *, trunks: int, profile: str) -> int:
    """How many trunks ``budget`` calls check: the trunk list's pages first (profile
    full), then five (or four) reads a trunk."""
    pages = math.ceil(max(trunks, 1) / PAGE_SIZE) if profile == "full" else 0
    return max(0, (budget - pages) // READS[profile])


def _scope(
    account: Account, ledger: Ledger, checked: Mapping[str, str], budget: int
) -> frozenset[str] | None:
    """The trunks to check this run (declared names, or ledger names of undeclared ones),
    or None for all of them."""
    names = sorted(ledger.trunks, key=lambda name: (checked.get(name, ""), name))
    room = affordable(budget, trunks=len(names), profile=account.spec.api)
    if room >= len(names):
        return None
    declared = {old: new for new, old in _ledger_names(account, ledger).items()}
    return frozenset(declared.get(name, name) for name in names[:room])


async def drift(
    manifests: Manifests,
    *,
    accounts: Sequence[str],
    environ: Mapping[str, str],
    options: Options,
    budget: int | None,
    now: datetime | None = None,
) -> tuple[Plan, list[Coverage]]:
    """Plan every chosen account as drift sees it, within ``budget`` calls each."""
    now = now or datetime.now(UTC)
    chosen = choose(manifests, accounts, environ, passwords=False, shard=options.shard)
    ledgers = {account.name: ledger_of(account) for account in chosen}
    if budget is not None:  # before any call: a budget that pays for nothing is a mistake
        for account in chosen:
            trunks = len(ledgers[account.name].trunks)
            if trunks and affordable(budget, trunks=trunks, profile=account.spec.api) == 0:
                least = budget_for_one(trunks=trunks, profile=account.spec.api)
                raise ConfigError(
                    f"--budget {budget} pays for no trunk of account {account.name}: the trunk "
                    f"list and one trunk take {least} calls; give at least that"
                )
    # Each account has its own rate limit and its own budget, so accounts are drifted at
    # once, a bounded number at a time (each holds up to 50 connections): a run of many
    # accounts takes about one account's time per wave, not the sum of them all.
    at_once = asyncio.Semaphore(ACCOUNTS_AT_ONCE)

    async def one(account: Account) -> tuple[AccountPlan, Coverage]:
        async with at_once:
            return await _drift_one(account, ledgers[account.name], options, budget, now)

    found = await asyncio.gather(*(one(account) for account in chosen))
    return Plan(tuple(plan for plan, _ in found)), [covered for _, covered in found]


async def _drift_one(
    account: Account, ledger: Ledger, options: Options, budget: int | None, now: datetime
) -> tuple[AccountPlan, Coverage]:
    """One account: choose the trunks the budget pays for, plan them, then record what
    was checked and what was found beside the ledger."""
    path = checked_path(account.ledger_path)
    record = read_checked(path)
    scope = _scope(account, ledger, record.checked, budget) if budget else None
    scopes = {account.name: scope} if scope is not None else {}
    client = client_for(account, options)
    async with client.http:
        account_plan = await plan_one(
            account, client, ledger, replace(options, scopes=scopes, lookups=False)
        )
    looked = _looked_at(account, ledger, account_plan)
    stamp = now.isoformat(timespec="seconds")
    checked = {n: t for n, t in record.checked.items() if n in ledger.trunks}
    checked.update(dict.fromkeys(looked, stamp))
    found = _drift_by_trunk(account, ledger, account_plan)
    drifted = {
        name: lines
        for name, lines in record.drifted.items()
        if name in ledger.trunks and name not in looked
    }
    drifted.update({name: lines for name, lines in found.items() if lines})
    _write_checked(path, Record(checked, drifted))
    return account_plan, _coverage(account, ledger, looked, checked, drifted)


def _coverage(
    account: Account,
    ledger: Ledger,
    looked: set[str],
    checked: Mapping[str, str],
    drifted: Mapping[str, list[str]],
) -> Coverage:
    total = len(ledger.trunks)
    per_run = len(looked) or 1
    times = [datetime.fromisoformat(checked[n]) for n in ledger.trunks if n in checked]
    earlier = tuple(
        f"{line} (found {checked.get(name, '?')}, not checked again this run)"
        for name, lines in sorted(drifted.items())
        if name not in looked
        for line in lines
    )
    return Coverage(
        account=account.name,
        checked=len(looked),
        total=total,
        runs_for_all=math.ceil(total / per_run) if total else 0,
        never=total - len(times),
        oldest=min(times) if times else None,
        earlier=earlier,
    )


def budget_for_one(*, trunks: int, profile: str) -> int:
    pages = math.ceil(max(trunks, 1) / PAGE_SIZE) if profile == "full" else 0
    return pages + READS[profile]


def _ledger_names(account: Account, ledger: Ledger) -> dict[str, str]:
    """Declared name -> the ledger's name for it (they differ while a rename is pending)."""
    return {
        found.spec.name: found.ledger_name
        for found in pair(account.declared.desired, ledger)
        if found.ledger_name is not None
    }


def _drift_by_trunk(account: Account, ledger: Ledger, plan: AccountPlan) -> dict[str, list[str]]:
    """Ledger name -> the drift found on it this run, as drift reports it."""
    by_declared = _ledger_names(account, ledger)
    found: dict[str, list[str]] = {}
    for action in render.drift_parts(Plan((plan,)))[0]:
        name = by_declared.get(action.trunk, action.trunk)
        found.setdefault(name, []).append(render.drift_line(action))
    return found


def _looked_at(account: Account, ledger: Ledger, plan: AccountPlan) -> set[str]:
    """The ledger names this plan read (not the ones it could not)."""
    unreadable = {
        n.address.rsplit("/", 1)[-1] for n in plan.notices if n.kind is NoticeKind.UNREADABLE
    }
    if plan.scope is None:
        names = set(ledger.trunks)
    else:
        by_declared = _ledger_names(account, ledger)
        names = {by_declared.get(name, name) for name in plan.scope} & set(ledger.trunks)
    return names - unreadable
