"""One account's apply, from inputs the pipeline resolved once.

Called by ``pipeline.applying`` for each account of an approved plan, all at once. What
an account needs (its share of the plan, its client, its ledger's recorder, its journal,
its passwords, what it declares) arrives as one immutable :class:`Inputs`; nothing here
calls back up into the pipeline. It runs the executor, saves the ledger whatever
happens, journals how it ended, and, when every action could be sent, reads back only
the trunks where something did not succeed and plans them anew: what is left to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.apply.executor import Executor, Halt
from reconciler.apply.handlers import Passwords
from reconciler.apply.journal import Journal
from reconciler.exotel.client import ExotelClient
from reconciler.live import read as live
from reconciler.live.files import StateWriteError
from reconciler.live.ledger import Recorder
from reconciler.livekit.client import LiveKitClient
from reconciler.plan.actions import AccountPlan, NoticeKind, Outcome, Status
from reconciler.plan.build import AccountInput, plan_account


@dataclass(frozen=True)
class Inputs:
    """Everything one account's apply needs, resolved before it starts."""

    account: AccountInput  # name, sid, profile, prune, what it declares
    plan: AccountPlan  # this account's share of the approved plan
    checksum: str  # the whole plan's, for the journal
    client: ExotelClient
    recorder: Recorder
    journal: Journal
    passwords: Passwords = field(repr=False)
    livekit: Mapping[str, LiveKitClient] = field(default_factory=dict)  # by partner


@dataclass(frozen=True)
class Ran:
    outcomes: list[Outcome]
    remaining: AccountPlan  # what is left to do (the plan itself when not verified)


async def run(
    inputs: Inputs,
    *,
    on_outcome: Callable[[Outcome], None],
    stopping: asyncio.Event | None,
    halt: Halt,
) -> Ran:
    """Apply one account's plan; the journal is closed however it ends."""
    name, journal, recorder = inputs.account.name, inputs.journal, inputs.recorder
    try:
        journal.note("apply.started", account=name, checksum=inputs.checksum)
        executor = Executor(
            plan=inputs.plan,
            client=inputs.client,
            recorder=recorder,
            journal=journal,
            desired={spec.name: spec for spec in inputs.account.desired},
            passwords=inputs.passwords,
            ends={end.trunk: end for end in inputs.account.ends},
            livekit=inputs.livekit,
            on_outcome=on_outcome,
            stopping=stopping,
            halt=halt,
        )
        try:
            outcomes = await executor.run()
        except asyncio.CancelledError:
            journal.note(
                "apply.interrupted",
                account=name,
                finished=len(executor.outcomes),
                actions=len(inputs.plan.actions),
            )
            await save(recorder, halt)
            raise
        await save(recorder, halt)
        if halt:  # no verification: it would send requests
            return Ran(outcomes, inputs.plan)
        if stopping is not None and stopping.is_set():
            journal.note(
                "apply.interrupted",
                account=name,
                finished=sum(o.status is not Status.SKIPPED for o in outcomes),
                actions=len(inputs.plan.actions),
            )
            return Ran(outcomes, inputs.plan)
        remaining = await verify(inputs, outcomes)
        journal.note("apply.finished", account=name, remaining=len(remaining.actions))
        return Ran(outcomes, remaining)
    finally:
        journal.close()


async def save(recorder: Recorder, halt: Halt) -> None:
    """Save what is not on disk yet; a failure halts (once halted, this is one more try)."""
    try:
        await recorder.save()
    except StateWriteError as error:
        halt.fail(error)


async def verify(inputs: Inputs, outcomes: Sequence[Outcome]) -> AccountPlan:
    """What is left to do. Every write's answer was compared with what was asked (the
    handlers refuse a mismatch), so a trunk whose actions all succeeded is known to be as
    planned: only trunks where something failed, was skipped or is manual are read again
    and planned anew (as kopf patches and checks the answer rather than re-reading)."""
    unsettled = frozenset(o.action.trunk for o in outcomes if o.status is not Status.DONE)
    ledger = inputs.recorder.ledger
    state = await live.read(
        inputs.client,
        ledger=ledger,
        desired=inputs.account.desired,
        profile=inputs.account.profile,
        only=unsettled,
    )
    partners = {o.action.target.get("partner") for o in outcomes if o.status is not Status.DONE}
    projects = {
        name: (await client.read()).objects
        for name, client in inputs.livekit.items()
        if name in partners
    }
    remaining = plan_account(inputs.account, ledger, state, projects=projects or None)
    return replace(
        remaining,
        notices=tuple(n for n in remaining.notices if n.kind is NoticeKind.RAIL),
        scope=None,
    )
