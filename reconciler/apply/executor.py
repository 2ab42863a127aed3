"""Executes one account's plan: in dependency order, concurrent across trunks, idempotent.

Called by the pipeline after the plan was re-made, compared and approved. Each trunk's
actions run in plan order, trunks in parallel (the client's gate keeps the account
within Exotel's limits); an action waits for dependencies on other trunks (a DID
unmapped there before it is mapped here) and is skipped when one failed, while
independent actions go on. All new destination URIs of a trunk go in one request.
What each operation does is ``handlers``'; every step is journaled as it happens (one
JSON line per start, success, failure or skip), and the trunk's fingerprint is recorded
last, once all its actions succeeded.

Once the ledger or the journal cannot be written (``Halt``), no action starts, in any
account: a change Exotel makes that the ledger cannot record must not be followed by
more. The actions already sent are answered; the rest are skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import structlog

from reconciler.apply.handlers import BATCHED, HANDLERS, Handlers, Passwords
from reconciler.apply.journal import Journal
from reconciler.apply.partners import PartnerHandlers
from reconciler.errors import ApiError, Duplicate, ServerError, TransportError
from reconciler.exotel.client import ExotelClient, NewDestination, answered_destination
from reconciler.live.ledger import Recorder, StateWriteError
from reconciler.live.state import fingerprint
from reconciler.livekit.client import LiveKitClient
from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.seam import End
from reconciler.plan.actions import AccountPlan, Action, Kind, Operation, Outcome, Status
from reconciler.plan.diff import parts

log = structlog.get_logger("reconciler.apply")
NOT_RECORDED = "sent, but not recorded"  # an action Exotel carried out, the ledger missed


class Halt:
    """The state files that could not be written during an apply, first failure first.

    Shared by every account's executor and journal: once one is here, no action starts
    anywhere (the accounts' state files are usually on one disk)."""

    def __init__(self) -> None:
        self.failures: list[StateWriteError] = []

    def __bool__(self) -> bool:
        return bool(self.failures)

    def fail(self, error: StateWriteError) -> None:
        if all(seen.path != error.path for seen in self.failures):
            log.error("apply.halted", file=str(error.path), reason=error.reason)
            self.failures.append(error)


class Executor:
    """Runs one account's plan: each trunk's actions in order, trunks at once, a step
    skipped when what it needs did not succeed or the apply stopped. It holds the
    handlers (one per operation, ``apply.handlers``) rather than being them."""

    def __init__(
        self,
        *,
        plan: AccountPlan,
        client: ExotelClient,
        recorder: Recorder,
        journal: Journal,
        desired: Mapping[str, TrunkSpec],
        passwords: Passwords,
        ends: Mapping[str, End] | None = None,
        livekit: Mapping[str, LiveKitClient] | None = None,
        on_outcome: Callable[[Outcome], None] = lambda outcome: None,
        stopping: asyncio.Event | None = None,
        halt: Halt | None = None,
    ) -> None:
        self.handlers = Handlers(
            plan=plan,
            client=client,
            recorder=recorder,
            desired=desired,
            passwords=passwords,
            partner=PartnerHandlers(
                recorder=recorder, ends=ends or {}, clients=livekit or {}, passwords=passwords
            ),
        )
        self.plan = plan
        self.client = client
        self.journal = journal
        self.on_outcome = on_outcome
        self.stopping = stopping  # once set, no action starts (the apply was interrupted)
        self.halt = halt if halt is not None else Halt()  # once failed, no action starts
        self._noted = False
        self.outcomes: dict[str, Outcome] = {}
        self.finished = {action.address: asyncio.Event() for action in plan.actions}

    async def run(self) -> list[Outcome]:
        groups: dict[str, list[Action]] = {}
        for action in self.plan.actions:
            groups.setdefault(action.trunk, []).append(action)
        await asyncio.gather(*(self._trunk(trunk, actions) for trunk, actions in groups.items()))
        return [self.outcomes[action.address] for action in self.plan.actions]

    async def _trunk(self, trunk: str, actions: Sequence[Action]) -> None:
        try:
            await self._actions(trunk, actions)
        except StateWriteError as error:  # recording the fingerprint, after every action
            self._halted(error)

    async def _actions(self, trunk: str, actions: Sequence[Action]) -> None:
        batched: set[str] = set()
        for action in actions:
            if action.address in batched:
                continue
            blocked = await self._blocked_by(action)
            if blocked:
                self._finish(action, Status.SKIPPED, f"skipped: {blocked} did not succeed")
                continue
            if self._stopped():
                self._finish(action, Status.SKIPPED, self._why_not())
                continue
            if action.kind is not Kind.MANUAL and action.operation in BATCHED:
                group = [a for a in actions if a.operation is action.operation]
                group = [a for a in group if a is action or not await self._blocked_by(a)]
                batched.update(a.address for a in group)
                await self._destinations(group)
                continue
            await self._one(action)
        await self._settle_fingerprint(trunk, actions)

    def _stopped(self) -> bool:
        return bool(self.halt) or (self.stopping is not None and self.stopping.is_set())

    def _why_not(self) -> str:
        if self.halt:
            failed = self.halt.failures[0]
            return f"skipped: the {failed.what} {failed.path} could not be written"
        return "skipped: the apply was interrupted"

    def _halted(self, error: StateWriteError) -> None:
        self.halt.fail(error)
        if not self._noted:  # the journal says once why nothing more was sent
            self._noted = True
            self.journal.note(
                "apply.halted",
                account=self.plan.account,
                file=str(error.path),
                reason=error.reason,
            )

    async def _blocked_by(self, action: Action) -> str:
        for needed in action.depends_on:
            if needed in self.finished:
                await self.finished[needed].wait()
                if self.outcomes[needed].status is not Status.DONE:
                    return needed
        return ""

    def _finish(self, action: Action, status: Status, detail: str = "") -> None:
        outcome = Outcome(action, status, detail)
        self.outcomes[action.address] = outcome
        self.journal.record(action, status, detail)
        self.finished[action.address].set()
        self.on_outcome(outcome)

    async def _one(self, action: Action) -> None:
        if action.kind is Kind.MANUAL:
            self._finish(action, Status.MANUAL, action.reason)
            return
        self.journal.started(action)
        if self._stopped():  # the journal could not say so: the request is not sent
            self._finish(action, Status.SKIPPED, self._why_not())
            return
        try:
            await HANDLERS[action.operation](self.handlers, action)
        except ApiError as error:
            log.warning("apply.failed", address=action.address, error=str(error))
            self._finish(action, Status.FAILED, str(error))
        except StateWriteError as error:
            self._halted(error)
            self._finish(action, Status.FAILED, f"{NOT_RECORDED}: {error}")
        else:
            self._finish(action, Status.DONE)

    async def _settle_fingerprint(self, trunk: str, actions: Sequence[Action]) -> None:
        spec = self.handlers.desired.get(trunk)
        entry = self.handlers.recorder.ledger.trunks.get(trunk)
        if spec is None or entry is None:
            return
        if all(self.outcomes[a.address].status is Status.DONE for a in actions):
            await self.handlers.record(
                trunk,
                replace(
                    entry, fingerprint=fingerprint(spec), parts=parts(spec), protect=spec.protect
                ),
            )

    # -- destinations: one request per trunk ---------------------------------------------

    async def _destinations(self, actions: Sequence[Action]) -> None:
        """Every new destination of a trunk in one request; per-item answers settle each."""
        for action in actions:
            self.journal.started(action)
        if self._stopped():
            for action in actions:
                self._finish(action, Status.SKIPPED, self._why_not())
            return
        sid = self.handlers.sid(actions[0])
        try:
            results = await self.client.add_destinations(sid, [_new(a) for a in actions])
        except (TransportError, ServerError) as error:
            if isinstance(error, TransportError) and not error.maybe_committed:
                for action in actions:
                    self._finish(action, Status.FAILED, str(error))
                return
            # The answer was lost, or a 5xx may or may not have landed: settle each
            # against what is there.
            for action in actions:
                if self._stopped():
                    self._finish(action, Status.SKIPPED, self._why_not())
                else:
                    await self._one_destination(action)
            return
        except ApiError as error:
            for action in actions:
                self._finish(action, Status.FAILED, str(error))
            return
        for action, result in zip(actions, results, strict=True):
            if result.ok:
                asked = _new(action)
                answered = answered_destination(result.data)
                got = (answered[0], answered[1].priority, answered[1].weight) if answered else None
                if got == (asked.uri, asked.priority, asked.weight):
                    self._finish(action, Status.DONE)
                else:
                    said = f"Exotel answered {got!r} where {asked!r} was asked"
                    self._finish(action, Status.FAILED, said)
            elif isinstance(result.error, Duplicate):
                self._finish(action, Status.DONE)
            else:
                self._finish(action, Status.FAILED, str(result.error))

    async def _one_destination(self, action: Action) -> None:
        sid = self.handlers.sid(action)
        try:
            if action.key not in await self.client.destinations(sid):
                [result] = await self.client.add_destinations(sid, [_new(action)])
                if not (result.ok or isinstance(result.error, Duplicate)):
                    raise result.error or ApiError("destination refused")
        except ApiError as error:
            self._finish(action, Status.FAILED, str(error))
        else:
            self._finish(action, Status.DONE)


def _new(action: Action) -> NewDestination:
    after = action.after or {}
    return NewDestination(
        action.key, priority=int(after.get("priority", 0)), weight=int(after.get("weight", 1))
    )


__all__ = ["HANDLERS", "NOT_RECORDED", "Executor", "Halt", "Operation"]
