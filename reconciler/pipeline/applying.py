"""The apply pipeline: lock, re-plan, compare with the reviewed plan, confirm, execute,
verify.

Called by the CLI (``apply``). Sequencing only: planning is ``planning``'s, executing
``apply.executor``'s. Apply exits 0 (``ApplyResult.converged``) only when every action
succeeded and a re-plan of what it touched finds nothing left to do. When a ledger or a
journal cannot be written (a full disk), no new request is sent, and it raises a
LedgerError that says which file, why, what Exotel may now hold that the ledger does not,
and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from reconciler.apply import account as one_account
from reconciler.apply.executor import NOT_RECORDED, Halt
from reconciler.apply.journal import Journal
from reconciler.errors import Interrupted, LedgerError, Refused
from reconciler.exotel.client import ExotelClient
from reconciler.live import ledger as ledgers
from reconciler.manifests.load import Manifests
from reconciler.pipeline.accounts import Account, Options, choose, client_for, ledger_of
from reconciler.pipeline.planning import plan_one
from reconciler.plan import reviewed
from reconciler.plan.actions import (
    ApplyResult,
    Outcome,
    Plan,
    Status,
)

log = structlog.get_logger("reconciler.apply")


@dataclass(frozen=True)
class ApplyOptions:
    force: bool = False  # override the safety rails
    # Reviewed `plan --out` documents: one pull request's, or several merged together.
    saved_plans: tuple[Mapping[str, Any], ...] = ()
    break_lock: bool = False  # remove a stale lock left by a process that died here
    lock_timeout: float = 0.0  # seconds to wait for another apply's lock
    # Set by the caller (on a first SIGINT or SIGTERM): start no new action, record the
    # answers in flight, skip the verification, and raise Interrupted.
    stopping: asyncio.Event | None = field(default=None, compare=False)


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
    chosen = choose(manifests, accounts, environ, shard=options.shard)
    seen: list[Outcome] = []
    planned: list[Plan] = []
    halt = Halt()
    recorders: dict[str, ledgers.Recorder] = {}

    def counted(outcome: Outcome) -> None:
        seen.append(outcome)
        on_outcome(outcome)

    def shown(plan: Plan) -> None:
        planned.append(plan)
        on_plan(plan)

    with contextlib.ExitStack() as held:  # every account's lock, released however it ends
        for account in sorted(chosen, key=lambda a: str(a.ledger_path)):
            try:
                ledgers.make_folder(account.ledger_path, account.named)
            except LedgerError as error:
                raise LedgerError(f"{error}; nothing was sent to Exotel") from None
            lock = ledgers.Lock.beside(account.ledger_path)
            held.enter_context(
                lock.held(break_stale=apply_options.break_lock, wait=apply_options.lock_timeout)
            )
        clients = {account.name: client_for(account, options) for account in chosen}
        try:
            return await _apply_locked(
                chosen,
                clients=clients,
                options=options,
                apply_options=apply_options,
                confirm=confirm,
                on_outcome=counted,
                on_plan=shown,
                halt=halt,
                recorders=recorders,
            )
        except asyncio.CancelledError:
            if halt:
                raise LedgerError(halted(halt, chosen, recorders, seen)) from None
            total = len(planned[0].actions) if planned else 0
            raise Interrupted(
                f"interrupted after {len(seen)} of {total} action(s): no new request was "
                "sent, the ledger holds what landed and the lock is released; run apply "
                "again to finish"
            ) from None
        finally:
            for client in clients.values():
                await client.http.aclose()


async def _apply_locked(
    chosen: Sequence[Account],
    *,
    clients: Mapping[str, ExotelClient],
    options: Options,
    apply_options: ApplyOptions,
    confirm: Callable[[Plan], bool],
    on_outcome: Callable[[Outcome], None],
    on_plan: Callable[[Plan], None],
    halt: Halt,
    recorders: dict[str, ledgers.Recorder],
) -> ApplyResult:
    read = {a.name: ledger_of(a) for a in chosen}
    # Scoped reviews: re-read their scopes and whatever else changed in the manifests since
    # the last apply (an unreviewed change must show, and be refused), nothing more. Who
    # holds a DID is asked only when mapping one fails.
    scopes = reviewed.scopes(apply_options.saved_plans)
    refresh = "changed" if scopes else options.refresh
    options = replace(options, scopes=scopes, lookups=False, refresh=refresh)
    planned = await asyncio.gather(
        *(plan_one(a, clients[a.name], read[a.name], options) for a in chosen)
    )
    plan = Plan(tuple(planned))
    if apply_options.saved_plans:
        verdict = reviewed.compare(apply_options.saved_plans, plan)
        if not verdict.accepted:
            raise Refused(verdict.message)
        log.info("apply.reviewed", verdict=verdict.message)
    on_plan(plan)
    if plan.rails and not apply_options.force:
        listed = "\n".join(f"  ! {notice.message}" for notice in plan.rails)
        raise Refused(f"safety rails hold:\n{listed}\nNothing was applied (--force overrides).")
    if not plan.has_changes:
        return ApplyResult(plan, (), plan)
    if not apply_options.saved_plans and not confirm(plan):
        raise Refused("not confirmed: nothing was applied")
    stopping = apply_options.stopping
    if stopping is not None and stopping.is_set():
        raise Interrupted("interrupted before any change was sent: nothing was applied")

    return await _execute(
        chosen,
        plan,
        options=options,
        read=read,
        clients=clients,
        on_outcome=on_outcome,
        stopping=stopping,
        halt=halt,
        recorders=recorders,
    )


async def _execute(
    chosen: Sequence[Account],
    plan: Plan,
    *,
    options: Options,
    read: Mapping[str, ledgers.Ledger],
    clients: Mapping[str, ExotelClient],
    on_outcome: Callable[[Outcome], None],
    stopping: asyncio.Event | None,
    halt: Halt,
    recorders: dict[str, ledgers.Recorder],
) -> ApplyResult:
    """Every account's plan at once: each account's inputs resolved here, once, then run
    by ``apply.account``."""
    journals = _open_journals(chosen, halt)
    inputs = []
    async with contextlib.AsyncExitStack() as partners:  # LiveKit's clients, while it runs
        for account, account_plan in zip(chosen, plan.accounts, strict=True):
            recorders[account.name] = ledgers.Recorder(account.ledger_path, read[account.name])
            livekit = {
                name: await partners.enter_async_context(access.client(options))
                for name, access in account.livekit.items()
            }
            inputs.append(
                one_account.Inputs(
                    account=account.declared,
                    plan=account_plan,
                    checksum=plan.checksum,
                    client=clients[account.name],
                    recorder=recorders[account.name],
                    journal=journals[account.name],
                    passwords=account.passwords,
                    livekit=livekit,
                )
            )
        runs = await asyncio.gather(
            *(
                one_account.run(i, on_outcome=on_outcome, stopping=stopping, halt=halt)
                for i in inputs
            )
        )
    outcomes = tuple(outcome for ran in runs for outcome in ran.outcomes)
    if halt:
        raise LedgerError(halted(halt, chosen, recorders, outcomes))
    if stopping is not None and stopping.is_set():
        answered = sum(o.status in (Status.DONE, Status.FAILED) for o in outcomes)
        raise Interrupted(
            f"interrupted after {answered} of {len(outcomes)} action(s): no new request was "
            "sent after the signal, the answers in flight are in the ledger and the lock is "
            "released; run apply again to finish"
        )
    return ApplyResult(plan, outcomes, Plan(tuple(ran.remaining for ran in runs)))


def _open_journals(chosen: Sequence[Account], halt: Halt) -> dict[str, Journal]:
    """Every account's journal, before any request: one that cannot be opened stops the
    apply with nothing sent."""
    journals: dict[str, Journal] = {}
    try:
        for account in chosen:
            path = journal_path(account.ledger_path)
            run = uuid.uuid4().hex[:12]
            journals[account.name] = Journal(path, run=run, on_failure=halt.fail)
    except ledgers.StateWriteError as error:
        for journal in journals.values():
            journal.close()
        raise LedgerError(
            f"{error}; nothing was sent to Exotel: free space there (or fix the cause) and "
            "run apply again"
        ) from None
    return journals


SHOWN = 10  # trunks named in a message when apply can adopt them by itself


def halted(
    halt: Halt,
    chosen: Sequence[Account],
    recorders: Mapping[str, ledgers.Recorder],
    outcomes: Sequence[Outcome],
) -> str:
    """What a user must know after a state file could not be written: which file and
    why, that nothing more was sent, what Exotel holds that the ledger does not, and what
    to do about it."""
    first = halt.failures[0]
    unsaved = sum(o.detail.startswith(NOT_RECORDED) for o in outcomes)
    failed = sum(o.status is Status.FAILED for o in outcomes) - unsaved
    lines = [
        f"{first}.",
        *(f"Also: {other}." for other in halt.failures[1:]),
        "Apply stopped there: no new request was sent to Exotel after it "
        f"({sum(o.status is Status.DONE for o in outcomes)} action(s) done, {unsaved} done "
        f"but not recorded, {failed} failed, "
        f"{sum(o.status is Status.SKIPPED for o in outcomes)} not started).",
    ]
    imports: list[str] = []
    unrecorded = False
    for account in chosen:
        recorder = recorders.get(account.name)
        if recorder is None:
            continue
        created, pending = unrecorded_trunks(recorder)
        unrecorded = unrecorded or bool(created or pending)
        if created:
            named = ", ".join(f"{name} ({sid})" for name, sid in created[:SHOWN])
            more = f" and {len(created) - SHOWN} more" if len(created) > SHOWN else ""
            lines.append(
                f"Exotel now holds trunks the ledger does not: account {account.name}: "
                f"{len(created)} created but not in {recorder.path}: {named}{more}."
            )
        if pending:
            lines.append(
                f"Account {account.name}: the create of trunk(s) {', '.join(pending)} got no "
                "answer and could not be recorded as pending: each may exist on Exotel."
            )
        if account.spec.api != "full" and (created or pending):
            imports += [
                f"  reconciler import --account {account.name} --trunk-sid {sid}={name}"
                for name, sid in created
            ] + [
                f"  reconciler import --account {account.name} --trunk-sid SID={name}"
                "   (SID: find it in the Exotel dashboard, Trunks)"
                for name in pending
            ]
    if any(failure.what == "ledger" for failure in halt.failures):
        if not unrecorded:
            lines.append(
                "Exotel may now hold changes the ledger does not record (no trunk is missing "
                "from it: the next plan reads back or redoes the rest)."
            )
        lines.append("The ledger on disk is the last one written whole (no half-written file).")
    else:
        lines.append("The ledger holds every change that landed; the journal lacks the last.")
    where = first.path.parent
    if first.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"Free space on the disk of {where}"
    else:
        fix = f"Fix what makes writing to {where} fail"
    if imports:
        lines += [
            f"{fix}; then, as profile minimal cannot list trunks to find these by name (an "
            "apply now would fail on each name, error 1008, and create none twice), record "
            "each in the ledger:",
            *imports,
            "and run apply again (docs/apply.md, 'Recovering from a failed or interrupted apply').",
        ]
    elif unrecorded:
        lines.append(
            f"{fix}, then run apply again: profile full finds the trunks created but not "
            "recorded by name and adopts them, so none is created twice."
        )
    else:
        lines.append(f"{fix}, then run apply again to finish.")
    return "\n".join(lines)


def unrecorded_trunks(
    recorder: ledgers.Recorder,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Trunks Exotel has that the ledger on disk does not: (name, SID) of each created
    (or replaced) trunk whose SID is not in the file, and the creates recorded as pending
    in memory only."""
    on_disk, now = recorder.durable, recorder.ledger
    known = on_disk.by_sid()
    created = [
        (name, entry.sid) for name, entry in sorted(now.trunks.items()) if entry.sid not in known
    ]
    pending = sorted(set(now.pending) - set(on_disk.pending))
    return created, pending


def journal_path(ledger_file: Path) -> Path:
    return ledger_file.with_name(ledger_file.stem + ".journal.jsonl")
