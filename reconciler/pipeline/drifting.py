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

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import LedgerError
from reconciler.live.pairing import pair
from reconciler.live.state import Ledger
from reconciler.manifests.checks import NamedAccount
from reconciler.manifests.load import Manifests
from reconciler.pipeline.accounts import Chosen, Options, choose
from reconciler.pipeline.planning import plan_one
from reconciler.plan.actions import AccountPlan, NoticeKind, Plan

CHECKED = ".checked.json"
PAGE_SIZE = 100  # the trunk list's page (the client asks for the API's maximum)
READS = {"full": 5, "minimal": 4}  # collections read per trunk


@dataclass(frozen=True)
class Coverage:
    account: str
    checked: int  # trunks checked this run
    total: int  # trunks the ledger tracks
    runs_for_all: int  # runs at this budget that check every trunk
    never: int  # trunks never checked yet
    oldest: datetime | None  # the least recent check, once every trunk has one

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


def checked_path(ledger_file: Path) -> Path:
    return ledger_file.with_name(ledger_file.name + CHECKED)


def read_checked(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise LedgerError(f"{path} is not a readable drift record ({error})") from None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise LedgerError(f"{path} must map trunk names to check times")
    return dict(document)


def _write_checked(path: Path, checked: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(dict(sorted(checked.items())), handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def affordable(budget: int, *, trunks: int, profile: str) -> int:
    """How many trunks ``budget`` calls check: the trunk list's pages first (profile
    full), then five (or four) reads a trunk."""
    pages = math.ceil(max(trunks, 1) / PAGE_SIZE) if profile == "full" else 0
    return max(0, (budget - pages) // READS[profile])


def _scope(
    chosen: Chosen, account: NamedAccount, ledger: Ledger, checked: Mapping[str, str], budget: int
) -> frozenset[str] | None:
    """The trunks to check this run (declared names, or ledger names of undeclared ones),
    or None for all of them."""
    names = sorted(ledger.trunks, key=lambda name: (checked.get(name, ""), name))
    room = affordable(budget, trunks=len(names), profile=account.spec.api)
    if room >= len(names):
        return None
    chosen_names = set(names[:room])
    declared = {
        found.ledger_name: found.spec.name
        for found in pair(chosen.desired(account), ledger)
        if found.ledger_name is not None
    }
    return frozenset(declared.get(name, name) for name in chosen_names)


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
    chosen = choose(manifests, accounts, environ, passwords=False)
    planned: list[AccountPlan] = []
    coverage: list[Coverage] = []
    for account in chosen.accounts:
        ledger = chosen.ledger(account)
        path = checked_path(chosen.ledger_path(account))
        checked = read_checked(path)
        scope = _scope(chosen, account, ledger, checked, budget) if budget else None
        scopes = {account.name: scope} if scope is not None else {}
        client = chosen.client(account, options)
        async with client.http:
            account_plan = await plan_one(
                chosen, account, client, ledger, replace(options, scopes=scopes, lookups=False)
            )
        planned.append(account_plan)
        looked = _looked_at(chosen, account, ledger, account_plan)
        stamp = now.isoformat(timespec="seconds")
        checked = {name: checked[name] for name in checked if name in ledger.trunks}
        checked.update(dict.fromkeys(looked, stamp))
        _write_checked(path, checked)
        total = len(ledger.trunks)
        per_run = len(looked) or 1
        times = [datetime.fromisoformat(checked[n]) for n in ledger.trunks if n in checked]
        coverage.append(
            Coverage(
                account=account.name,
                checked=len(looked),
                total=total,
                runs_for_all=math.ceil(total / per_run) if total else 0,
                never=total - len(times),
                oldest=min(times) if times else None,
            )
        )
    return Plan(tuple(planned)), coverage


def _looked_at(
    chosen: Chosen, account: NamedAccount, ledger: Ledger, plan: AccountPlan
) -> set[str]:
    """The ledger names this plan read (not the ones it could not)."""
    unreadable = {
        n.address.rsplit("/", 1)[-1] for n in plan.notices if n.kind is NoticeKind.UNREADABLE
    }
    if plan.scope is None:
        names = set(ledger.trunks)
    else:
        by_declared = {
            found.spec.name: found.ledger_name
            for found in pair(chosen.desired(account), ledger)
            if found.ledger_name is not None
        }
        names = {by_declared.get(name, name) for name in plan.scope} & set(ledger.trunks)
    return names - unreadable
