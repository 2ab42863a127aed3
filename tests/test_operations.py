"""The typed vocabulary is complete: every operation has a rank, a handler in apply (or
is for people only), a how-to wherever it can become a manual step, and a value that is
the string JSON plans have always carried."""

from __future__ import annotations

from reconciler.apply.handlers import BATCHED, HANDLERS
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import Operation, Status
from reconciler.plan.kinds import KINDS, Op
from reconciler.plan.operations import (
    MANUAL_HOW,
    MANUAL_ONLY,
    MINIMAL_SUBSTITUTES,
    NOT_IN_MINIMAL,
    OPERATIONS,
    RANK,
)


def test_every_operation_has_a_rank() -> None:
    assert set(RANK) == set(Operation)


def test_every_operation_apply_performs_has_exactly_one_handler() -> None:
    performed = set(Operation) - MANUAL_ONLY
    assert set(HANDLERS) | BATCHED == performed
    assert not set(HANDLERS) & BATCHED
    assert not set(HANDLERS) & MANUAL_ONLY


def test_every_operation_that_can_be_manual_says_how() -> None:
    by_hand = (NOT_IN_MINIMAL - set(MINIMAL_SUBSTITUTES)) | MANUAL_ONLY
    assert by_hand <= set(MANUAL_HOW)


def test_every_child_change_maps_to_an_operation_or_is_impossible() -> None:
    """Every (child kind, change) pair has an operation, or the kind says why the diff
    can never produce it (a whitelisted IP is its address and mask: a change is a remove
    and an add); a new kind without its operations fails here."""
    for kind in KINDS:
        for change in Op:
            mapped, impossible = change in kind.operations, change in kind.impossible
            assert mapped != impossible, (kind.resource, change)
    assert set(OPERATIONS) == {(k.resource, c) for k in KINDS for c in k.operations}


def test_each_kind_owns_its_operations() -> None:
    """A kind's rank, how-to, minimal gaps and substitutes name only its own operations,
    and no two kinds share one."""
    seen: set[Operation] = set()
    for kind in KINDS:
        own = set(kind.operations.values()) | set(kind.substitutes.values())
        assert set(kind.rank) == own, kind.resource
        assert kind.not_in_minimal <= own
        assert set(kind.by_hand) <= kind.not_in_minimal
        assert set(kind.substitutes) <= kind.not_in_minimal
        assert not own & seen, kind.resource
        seen |= own


def test_a_kind_cannot_produce_an_impossible_change() -> None:
    """The whitelisted IP's modify really cannot happen: its only field is its key."""
    trunk = TrunkSpec.model_validate(
        {
            "name": "t",
            "account": "a",
            "domain_name": "s.pstn.exotel.com",
            "whitelisted_ips": ["44.0.0.1"],
        }
    )
    for kind in KINDS:
        if Op.MODIFY in kind.impossible:
            for key, fields in kind.desired(trunk).items():
                assert set(fields.values()) == {key}


def test_values_are_the_strings_saved_plans_and_journals_carry() -> None:
    assert [str(o) for o in Operation] == [o.name.lower() for o in Operation]
    assert {str(s) for s in Status} == {"done", "failed", "skipped", "manual"}
