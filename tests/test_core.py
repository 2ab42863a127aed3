"""The pure planning core on its own: ordering and its dependencies (``plan.order``), the
safety rails (``plan.rails``) and what one trunk becomes (``plan.trunks`` through
``plan_account``), from hand-made actions, ledgers and live state. No sandbox, no I/O:
each test runs in milliseconds, so ``make check`` runs them all."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.exotel.records import LiveNumber, LiveTrunk
from reconciler.live.state import AccountState, Ledger, TrunkEntry
from reconciler.manifests.models import TrunkSpec
from reconciler.plan import order as ordering
from reconciler.plan import rails
from reconciler.plan.actions import Action, Kind, NoticeKind, Operation, Origin, Resource
from reconciler.plan.build import AccountInput, plan_account
from reconciler.plan.steps import address

SID = "trmum1bot0000000000000000000"
OTHER = "trmum1other00000000000000000"
DOMAIN = "demo.pstn.exotel.com"


def action(
    operation: Operation,
    resource: Resource,
    key: str,
    *,
    trunk: str = "bot",
    kind: Kind = Kind.CREATE,
    after: dict[str, Any] | None = None,
    target: dict[str, str] | None = None,
) -> Action:
    return Action(
        address=address("demo", trunk, resource, key),
        kind=kind,
        resource=resource,
        operation=operation,
        account="demo",
        trunk=trunk,
        key=key,
        before=None,
        after=after if after is not None else {},
        reason="",
        origin=Origin.MANIFEST,
        target=target or {},
    )


def placed(actions: list[Action]) -> list[str]:
    return [a.address for a in ordering.order(ordering.dependencies(actions))]


# -- plan.order -----------------------------------------------------------------------


def test_an_ip_destination_waits_for_the_ip_that_whitelists_it() -> None:
    destination = action(
        Operation.ADD_DESTINATION, Resource.DESTINATION_URI, "44.248.146.11:5061;transport=tls"
    )
    ip = action(Operation.ADD_IP, Resource.WHITELISTED_IP, "44.248.146.0/24")
    other = action(Operation.ADD_IP, Resource.WHITELISTED_IP, "13.126.40.0/24")
    assert ordering.dependencies([destination, ip, other])[0].depends_on == (ip.address,)
    found = placed([destination, ip, other])
    assert found.index(ip.address) < found.index(destination.address)


def test_an_ip_is_deleted_after_the_destinations_that_used_it() -> None:
    gone = action(
        Operation.DELETE_DESTINATION,
        Resource.DESTINATION_URI,
        "44.248.146.11:5061;transport=tls",
        kind=Kind.DELETE,
    )
    ip = action(Operation.DELETE_IP, Resource.WHITELISTED_IP, "44.248.146.0/24", kind=Kind.DELETE)
    found = placed([ip, gone])
    assert found == [gone.address, ip.address]


def test_the_alias_waits_for_the_did_it_names_and_a_moving_did_is_unmapped_first() -> None:
    did = "+918040264208"
    alias = action(Operation.SET_ALIAS, Resource.ALIAS, "", after={"alias": did})
    mapped = action(Operation.MAP_NUMBER, Resource.PHONE_NUMBER, did)
    unmapped = action(
        Operation.UNMAP_NUMBER, Resource.PHONE_NUMBER, did, trunk="old", kind=Kind.DELETE
    )
    found = placed([alias, mapped, unmapped])
    # UNMAP ranks after MAP by default; the move's dependency puts it first.
    assert found == [unmapped.address, mapped.address, alias.address]


def test_manual_steps_neither_wait_nor_are_waited_for_and_the_order_is_stable() -> None:
    manual = action(
        Operation.DELETE_IP, Resource.WHITELISTED_IP, "44.248.146.0/24", kind=Kind.MANUAL
    )
    destination = action(
        Operation.ADD_DESTINATION, Resource.DESTINATION_URI, "44.248.146.11:5061;transport=tls"
    )
    assert [a.depends_on for a in ordering.dependencies([manual, destination])] == [(), ()]
    shuffled = [destination, manual]
    assert placed(shuffled) == placed(list(reversed(shuffled)))
    assert placed(shuffled)[-1] == manual.address  # a person does it after the API's work


def test_a_cycle_keeps_every_action() -> None:
    first = action(Operation.ADD_IP, Resource.WHITELISTED_IP, "44.248.146.0/24")
    second = action(Operation.ADD_IP, Resource.WHITELISTED_IP, "13.126.40.0/24")
    tangled = [
        replace(first, depends_on=(second.address,)),
        replace(second, depends_on=(first.address,)),
    ]
    assert sorted(a.address for a in ordering.order(tangled)) == sorted(a.address for a in tangled)


# -- plan.rails -----------------------------------------------------------------------


@pytest.mark.parametrize(("managed", "limit"), [(0, None), (9, None), (10, 3), (101, 30)])
def test_the_default_delete_limit(managed: int, limit: int | None) -> None:
    assert rails.delete_limit(managed) == limit


def test_an_empty_checkout_is_a_rail_only_when_the_ledger_tracks_trunks() -> None:
    [notice] = rails.empty_checkout("demo", declared=0, tracked=3)
    assert notice.kind is NoticeKind.RAIL
    assert "declares no trunks but its ledger tracks 3" in notice.message
    assert rails.empty_checkout("demo", declared=1, tracked=3) == []
    assert rails.empty_checkout("demo", declared=0, tracked=0) == []


def test_a_trunk_delete_counts_with_everything_on_it() -> None:
    trunk = LiveTrunk(
        SID, "bot", "ANY-ANY", DOMAIN,
        numbers={"+918040264208": LiveNumber("1", "pstn")},
        ips={"44.248.146.11/32": "2"},
        alias="+918040264208", alias_read=True,
    )  # fmt: skip
    state = AccountState("demo", "full", trunks={SID: trunk})
    whole = action(
        Operation.DELETE_TRUNK, Resource.TRUNK, "", kind=Kind.DELETE, target={"trunk_sid": SID}
    )
    child = action(Operation.DELETE_IP, Resource.WHITELISTED_IP, "1.2.3.4/32", kind=Kind.DELETE)
    assert rails.size(trunk) == 4  # the trunk, a DID, an IP and the alias
    assert rails.deletions([whole, child], state) == 5
    assert rails.too_many_deletions("demo", [whole], state, managed_objects=4, max_delete=4) == []
    [rail] = rails.too_many_deletions(
        "demo", [whole, child], state, managed_objects=4, max_delete=4
    )
    assert "5 deletions" in rail.message
    assert "limit of 4" in rail.message


# -- plan.trunks, through plan_account --------------------------------------------------


def spec(**fields: Any) -> TrunkSpec:
    return TrunkSpec.model_validate(
        {"name": "bot", "account": "demo", "domain_name": DOMAIN, **fields}
    )


def planned(
    desired: list[TrunkSpec], ledger: Ledger, state: AccountState, *, prune: bool = True
) -> dict[str, tuple[str, str]]:
    account = AccountInput(
        name="demo", sid="demo", profile=state.profile, prune=prune, desired=tuple(desired)
    )
    found = plan_account(account, ledger, state)
    return {a.address: (str(a.operation), str(a.origin)) for a in found.actions}


def test_a_new_trunk_is_created_then_filled() -> None:
    state = AccountState("demo", "full", listed={})
    found = planned([spec(whitelisted_ips=["44.248.146.11"])], Ledger("demo", "demo", {}), state)
    assert found == {
        "demo/bot": ("create_trunk", "manifest"),
        "demo/bot/whitelisted_ip/44.248.146.11/32": ("add_ip", "manifest"),
    }


def test_a_live_trunk_of_the_name_is_adopted_and_one_the_ledger_owns_blocks_the_name() -> None:
    live = LiveTrunk(SID, "bot", "ANY-ANY", DOMAIN, alias_read=True)
    state = AccountState("demo", "full", trunks={SID: live}, listed={"bot": SID})
    assert planned([spec()], Ledger("demo", "demo", {}), state) == {
        "demo/bot": ("adopt_trunk", "manifest")
    }
    held = Ledger("demo", "demo", {"old": TrunkEntry(SID)})
    # The ledger's "old" was renamed to "bot" by hand: renamed back (drift), then bot made.
    found = planned([spec(), spec(name="old")], held, state, prune=False)
    assert found == {
        "demo/old": ("rename_trunk", "drift"),
        "demo/bot": ("create_trunk", "manifest"),
    }


def test_a_trunk_deleted_by_hand_is_recreated_as_drift() -> None:
    desired = spec()
    ledger = Ledger("demo", "demo", {"bot": TrunkEntry(SID)})
    state = AccountState("demo", "full", missing=frozenset({SID}), listed={})
    assert planned([desired], ledger, state) == {"demo/bot": ("create_trunk", "drift")}


def test_a_stale_sid_beside_a_live_trunk_of_the_name_is_adopted_in_its_place() -> None:
    ledger = Ledger("demo", "demo", {"bot": TrunkEntry(OTHER)})
    live = LiveTrunk(SID, "bot", "ANY-ANY", DOMAIN, alias_read=True)
    state = AccountState("demo", "full", trunks={SID: live}, listed={"bot": SID})
    assert planned([spec()], ledger, state) == {"demo/bot": ("adopt_trunk", "manifest")}
