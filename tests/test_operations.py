"""The typed vocabulary is complete: every operation has a rank, a handler in apply (or
is for people only), a how-to wherever it can become a manual step, and a value that is
the string JSON plans have always carried."""

from __future__ import annotations

from reconciler.apply.handlers import BATCHED, HANDLERS
from reconciler.plan.actions import Operation, Status
from reconciler.plan.diff import CHILDREN, Op, Resource
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


# (child kind, change) pairs that deliberately have no operation: a whitelisted IP is its
# address and mask, so changing one is a remove and an add, never a modify.
NO_OPERATION = frozenset({(Resource.WHITELISTED_IP, Op.MODIFY)})


def test_every_child_change_maps_to_an_operation() -> None:
    """Every (child kind, change) the diff can produce has an operation, or is listed as
    deliberately absent; a new kind without its operations fails here."""
    for resource in CHILDREN:
        for change in Op:
            pair = (resource, change)
            assert (pair in OPERATIONS) != (pair in NO_OPERATION), pair
    assert set(OPERATIONS) <= {(r, c) for r in CHILDREN for c in Op}


def test_values_are_the_strings_saved_plans_and_journals_carry() -> None:
    assert [str(o) for o in Operation] == [o.name.lower() for o in Operation]
    assert {str(s) for s in Status} == {"done", "failed", "skipped", "manual"}
