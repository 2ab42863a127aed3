"""``plan`` against the sandbox over loopback HTTP: every action kind, both profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import render
from reconciler.plan.actions import Kind, NoticeKind
from tests.estate import apply, by_address, live_trunks, plan, seed, write
from tests.sandboxes import Api, Sandbox

BASE = """\
- name: bot
  account: demo
  phone_numbers:
    - number: "+918040264208"
      mode: flow
    - "+918040264209"
  whitelisted_ips: [44.248.146.11, 13.126.40.0/24]
  destination_uris:
    - 44.248.146.11:5061;transport=tls
    - uri: sbc.example.com:5061;transport=tls
      priority: 1
      weight: 2
  alias: "+918040264208"
  credentials:
    - username: bot_user
      password: ${SIP_PASSWORD}
      friendly_name: bot_label
"""
DID_LINE = '    - "+918040264209"\n'
CHANGED = """\
- name: bot2
  renamed_from: bot
  account: demo
  phone_numbers:
    - "+918040264208"
    - "+918040264210"
  whitelisted_ips: [44.248.146.11, 52.66.1.1]
  destination_uris:
    - uri: sbc.example.com:5061;transport=tls
      priority: 0
      weight: 2
    - 52.66.1.1:5061;transport=tls
  alias: "+918040264210"
  credentials:
    - username: bot_user
      password: ${SIP_PASSWORD}
      password_version: 2
      friendly_name: bot_label
    - username: second
      password: ${SIP_PASSWORD}
"""
CHANGES_FULL = {
    "demo/bot2": ("~", "rename_trunk", "manifest"),
    "demo/bot2/phone_number/+918040264208": ("~", "set_mode", "manifest"),
    "demo/bot2/phone_number/+918040264209": ("-", "unmap_number", "manifest"),
    "demo/bot2/phone_number/+918040264210": ("+", "map_number", "manifest"),
    "demo/bot2/whitelisted_ip/13.126.40.0/24": ("-", "delete_ip", "manifest"),
    "demo/bot2/whitelisted_ip/52.66.1.1/32": ("+", "add_ip", "manifest"),
    "demo/bot2/destination_uri/44.248.146.11:5061;transport=tls": (
        "-",
        "delete_destination",
        "manifest",
    ),
    "demo/bot2/destination_uri/52.66.1.1:5061;transport=tls": ("+", "add_destination", "manifest"),
    "demo/bot2/destination_uri/sbc.example.com:5061;transport=tls": (
        "~",
        "update_destination",
        "manifest",
    ),
    "demo/bot2/alias": ("~", "set_alias", "manifest"),
    "demo/bot2/credential/bot_user": ("~", "update_credential", "manifest"),
    "demo/bot2/credential/second": ("+", "add_credential", "manifest"),
}


def test_a_new_account_plans_every_create_in_order(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    result = plan(write(tmp_path, BASE), sandbox)
    operations = [a.operation for a in result.actions]
    assert operations == [
        "create_trunk",
        "add_ip",
        "add_ip",
        "add_destination",
        "add_destination",
        "map_number",
        "map_number",
        "set_alias",
        "add_credential",
    ]
    actions = {a.address: a for a in result.actions}
    ip_destination = actions["demo/bot/destination_uri/44.248.146.11:5061;transport=tls"]
    assert ip_destination.depends_on == ("demo/bot", "demo/bot/whitelisted_ip/44.248.146.11/32")
    assert actions["demo/bot/alias"].depends_on == (
        "demo/bot",
        "demo/bot/phone_number/+918040264208",
    )
    credential = actions["demo/bot/credential/bot_user"]
    assert credential.after == {
        "username": "bot_user",
        "friendly_name": "bot_label",
        "password": "(sensitive)",
        "password_version": 1,
    }
    assert result.counts()[Kind.CREATE] == 9


def test_state_made_by_hand_from_the_same_intent_plans_empty(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    many = "\n".join(
        [
            "- name: big",
            "  account: demo",
            "  phone_numbers:",
            *[f'    - "+9180402{i:05d}"' for i in range(55)],
            "  whitelisted_ips:",
            *[f"    - 44.249.{i // 200}.{i % 200 + 1}" for i in range(120)],
        ]
    )
    folder = write(tmp_path, BASE + many + "\n")
    seed(api, folder)
    result = plan(folder, sandbox)
    assert result.actions == ()
    assert result.notices == ()
    # The minimum: the trunk list, one GET per collection of each trunk, extra pages
    # (120 IPs at 100 a page need 2 pages).
    [account] = result.accounts
    assert account.calls == 1 + 2 * 5 + 1


def test_every_change_in_profile_full(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    seed(api, folder)
    write(folder, CHANGED)
    result = plan(folder, sandbox)
    assert by_address(result) == CHANGES_FULL
    actions = {a.address: a for a in result.actions}
    moved = actions["demo/bot2/destination_uri/52.66.1.1:5061;transport=tls"]
    assert "demo/bot2/whitelisted_ip/52.66.1.1/32" in moved.depends_on
    assert (
        "demo/bot2/destination_uri/44.248.146.11:5061;transport=tls"
        in actions["demo/bot2/whitelisted_ip/13.126.40.0/24"].depends_on
    )
    assert actions["demo/bot2/alias"].depends_on[-1] == "demo/bot2/phone_number/+918040264210"
    assert actions["demo/bot2/credential/bot_user"].reason == "password_version 1 -> 2: rotate"
    order = [a.address for a in result.actions]
    assert order.index("demo/bot2") == 0
    assert order.index("demo/bot2/whitelisted_ip/13.126.40.0/24") > order.index(
        "demo/bot2/destination_uri/44.248.146.11:5061;transport=tls"
    )


def test_removing_a_credential_and_the_alias(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    seed(api, folder)
    trimmed = BASE.split("  alias:", maxsplit=1)[0]
    write(folder, trimmed)
    assert by_address(plan(folder, sandbox)) == {
        "demo/bot/alias": ("-", "delete_alias", "manifest"),
        "demo/bot/credential/bot_user": ("-", "delete_credential", "manifest"),
    }


def test_profile_minimal_turns_what_it_cannot_do_into_manual_steps(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE, profile="minimal")
    seed(api, folder)
    write(folder, CHANGED, profile="minimal")
    result = plan(folder, sandbox)
    by_hand = {
        "rename_trunk",
        "unmap_number",
        "delete_ip",
        "update_destination",
        "delete_destination",
    }
    # A manual step keeps its real operation: the symbol says a person does it.
    expected = {
        address: ("!" if operation in by_hand else symbol, operation, origin)
        for address, (symbol, operation, origin) in CHANGES_FULL.items()
    }
    expected["demo/bot2/credential/bot_user"] = ("-/+", "replace_credential", "manifest")
    assert by_address(result) == expected
    manual = next(a for a in result.actions if a.address == "demo/bot2/phone_number/+918040264209")
    assert "unmap this DID from the trunk in the Exotel dashboard" in manual.reason
    assert "profile minimal has no API for it" in manual.reason
    assert any(n.kind is NoticeKind.PROFILE for n in result.notices)
    # minimal reads no trunk list and no settings: 4 collections per trunk
    assert result.accounts[0].calls == 4


def test_allow_replace_rebuilds_what_minimal_cannot_change(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(
        tmp_path,
        BASE.replace("account: demo", "account: demo\n  allow_replace: true"),
        profile="minimal",
    )
    sids = seed(api, folder)
    replaceable = BASE.replace("account: demo", "account: demo\n  allow_replace: true")
    write(folder, replaceable.replace(DID_LINE, ""), profile="minimal")
    result = plan(folder, sandbox)
    first = result.actions[0]
    assert (first.symbol, first.operation, first.target["trunk_sid"]) == (
        "-/+",
        "replace_trunk",
        sids["bot"],
    )
    assert "profile minimal cannot unmap number +918040264209" in first.reason
    assert [a.operation for a in result.actions[1:]].count("map_number") == 1
    assert all(a.kind is Kind.CREATE for a in result.actions[1:])
    [replacement] = [n for n in result.notices if n.kind is NoticeKind.REPLACEMENT]
    assert f"sip:{sids['bot']}" in replacement.message


def test_protect_wins_over_allow_replace(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    header = "account: demo\n  allow_replace: true\n  protect: true"
    folder = write(tmp_path, BASE.replace("account: demo", header), profile="minimal")
    seed(api, folder)
    write(folder, BASE.replace("account: demo", header).replace(DID_LINE, ""), profile="minimal")
    assert by_address(plan(folder, sandbox)) == {
        "demo/bot/phone_number/+918040264209": ("!", "unmap_number", "manifest")
    }


def test_a_domain_change_is_manual_or_a_replacement(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    seed(api, folder)
    moved = BASE.replace("account: demo", "account: demo\n  domain_name: other.pstn.exotel.com")
    write(folder, moved)
    [action] = plan(folder, sandbox).actions
    assert (action.symbol, action.before, action.after) == (
        "!",
        {"domain_name": "demo.pstn.exotel.com"},
        {"domain_name": "other.pstn.exotel.com"},
    )
    write(folder, moved.replace("account: demo", "account: demo\n  allow_replace: true"))
    assert plan(folder, sandbox).actions[0].operation == "replace_trunk"


@pytest.mark.parametrize(("prune", "protect"), [(True, False), (False, False), (True, True)])
def test_a_trunk_removed_from_the_manifests(
    tmp_path: Path, sandbox: Sandbox, api: Api, prune: bool, protect: bool
) -> None:
    other = "- name: keep\n  account: demo\n"
    header = "account: demo\n  protect: true" if protect else "account: demo"
    folder = write(tmp_path, BASE.replace("account: demo", header) + other, prune=prune)
    sids = seed(api, folder)
    write(folder, other, prune=prune)
    result = plan(folder, sandbox)
    if prune and not protect:
        [action] = result.actions
        assert (action.symbol, action.operation, action.target) == (
            "-",
            "delete_trunk",
            {"trunk_sid": sids["bot"]},
        )
    else:
        assert result.actions == ()
        [notice] = result.notices
        assert notice.kind is NoticeKind.NOT_DECLARED
        assert ("protected" in notice.message) is protect


def test_an_empty_checkout_is_a_rail(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE, prune=True)
    seed(api, folder)
    (folder / "trunks.yaml").write_text("trunks: []\n")
    result = plan(folder, sandbox)
    assert [a.operation for a in result.actions] == ["delete_trunk"]
    assert [n.kind for n in result.rails] == [NoticeKind.RAIL]
    assert "declares no trunks" in result.rails[0].message


def test_more_deletions_than_the_limit_is_a_rail(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    keep = "- name: keep\n  account: demo\n  whitelisted_ips: [44.250.9.9]\n"
    folder = write(tmp_path, BASE + keep)
    seed(api, folder)
    write(folder, "- name: bot\n  account: demo\n" + keep)
    result = plan(folder, sandbox)
    assert len([a for a in result.actions if a.kind is Kind.DELETE]) == 8
    assert "8 deletions (a trunk counts with everything on it) exceed the limit of 3 (11 " in (
        result.rails[0].message
    )
    assert plan(folder, sandbox, max_delete=8).rails == ()


def test_changes_made_by_hand_are_drift(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path, BASE)
    sids = seed(api, folder)
    trunk = api.trunk(sids["bot"])
    numbers = {n["phone_number"]: n["id"] for n in trunk.items("phone-numbers")}
    trunk.put(
        f"phone-numbers/{numbers['+918040264208']}",
        {"phone_number": "+918040264208", "mode": "pstn"},
    )
    ip_id = next(i["id"] for i in trunk.items("whitelisted-ips") if i["mask"] == 24)
    trunk.delete("whitelisted-ips", params={"id": ip_id})
    trunk.post(
        "destination-uris",
        {"destinations": [{"destination": "rogue.example.com:5061;transport=tls"}]},
    )
    trunk.post(
        "settings", {"settings": [{"name": "trunk_external_alias", "value": "+919999999999"}]}
    )
    api.put(f"/trunks/{sids['bot']}", {"trunk_name": "renamed_by_hand"})
    assert by_address(plan(folder, sandbox)) == {
        "demo/bot": ("~", "rename_trunk", "drift"),
        "demo/bot/phone_number/+918040264208": ("~", "set_mode", "drift"),
        "demo/bot/whitelisted_ip/13.126.40.0/24": ("+", "add_ip", "drift"),
        "demo/bot/destination_uri/rogue.example.com:5061;transport=tls": (
            "-",
            "delete_destination",
            "drift",
        ),
        "demo/bot/alias": ("~", "set_alias", "drift"),
    }


@pytest.mark.parametrize("profile", ["full", "minimal"])
def test_a_trunk_deleted_by_hand_is_recreated(
    tmp_path: Path, sandbox: Sandbox, api: Api, profile: str
) -> None:
    folder = write(tmp_path, BASE, profile=profile)
    sids = seed(api, folder)
    api.delete("/trunks", params={"trunk_sid": sids["bot"]})
    result = plan(folder, sandbox)
    first = result.actions[0]
    assert (first.operation, first.origin) == ("create_trunk", "drift")
    assert sids["bot"] in first.reason
    assert len(result.actions) == 9
    # The same loud warning a replacement gets: applets dialling the old SID must change.
    [warning] = [n for n in result.notices if n.kind is NoticeKind.REPLACEMENT]
    assert f"sip:{sids['bot']} must be updated" in warning.message


def test_a_live_trunk_missing_from_the_ledger_is_adopted(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    sids = seed(api, folder, record=False)
    result = plan(folder, sandbox)
    assert by_address(result) == {
        "demo/bot": ("~", "adopt_trunk", "manifest"),
        # The ledger cannot know which password the live credential has: set it.
        "demo/bot/credential/bot_user": ("~", "update_credential", "manifest"),
    }
    assert result.actions[0].target == {"trunk_sid": sids["bot"]}


def test_a_stale_ledger_sid_beside_a_live_trunk_of_the_name_plans_the_adoption(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """The ledger's SID is gone and a trunk of the same name exists (recreated by hand):
    the plan says what apply does, adopt it in place, not "create" plus an unmanaged note
    about a trunk that is declared."""
    folder = write(tmp_path, BASE)
    sids = seed(api, folder)
    api.delete("/trunks", params={"trunk_sid": sids["bot"]})
    again = seed(api, folder, record=False)["bot"]
    result = plan(folder, sandbox)
    first = result.actions[0]
    assert (first.operation, first.target) == ("adopt_trunk", {"trunk_sid": again})
    assert f"the ledger's trunk {sids['bot']} is gone from Exotel" in first.reason
    assert "create_trunk" not in {a.operation for a in result.actions}
    assert not [n for n in result.notices if n.kind is NoticeKind.UNMANAGED]
    apply(folder, sandbox)
    assert plan(folder, sandbox).actions == ()
    assert [t["trunk_sid"] for t in live_trunks(sandbox)] == [again]  # no duplicate


def test_unmanaged_trunks_and_dids_held_elsewhere(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    stranger = api.create_trunk("stranger")
    api.trunk(stranger).map("+918040264209")
    result = plan(write(tmp_path, BASE), sandbox)
    kinds = {n.kind: n.message for n in result.notices}
    assert f"live trunk stranger ({stranger})" in kinds[NoticeKind.UNMANAGED]
    assert kinds[NoticeKind.DID_ELSEWHERE] == (
        f"DID +918040264209 is mapped on unmanaged trunk {stranger}: mapping it here fails until "
        "it is unmapped there"
    )


def test_refresh_changed_reads_only_what_changed(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    trunks = "".join(
        f"- name: t{i}\n  account: demo\n  whitelisted_ips: [44.250.0.{i + 1}]\n" for i in range(5)
    )
    folder = write(tmp_path, trunks)
    seed(api, folder)
    write(folder, trunks.replace("44.250.0.1]", "44.250.0.1, 44.250.1.1]"))
    result = plan(folder, sandbox, refresh="changed")
    assert by_address(result) == {
        "demo/t0/whitelisted_ip/44.250.1.1/32": ("+", "add_ip", "manifest")
    }
    [account] = result.accounts
    # One trunk's five collections, and the trunk list (adoption, names taken): 6 calls.
    assert (account.refreshed, account.not_refreshed, account.calls) == (1, 4, 6)
    assert account.scope == ("t0",)  # what apply of this saved plan re-reads, exactly
    assert any(n.kind is NoticeKind.NOT_REFRESHED for n in result.notices)


def test_an_empty_scoped_plan_claims_only_what_it_read(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path, BASE)
    seed(api, folder)
    result = plan(folder, sandbox, refresh="changed")
    assert result.actions == ()
    said = render.text(result)
    assert "Live state matches the manifests" not in said
    assert "No changes in the 0 trunk(s) read. 1 trunk(s) were not read" in said
    assert "Live state matches the manifests" in render.text(plan(folder, sandbox))


def test_a_trunk_delete_counts_everything_it_takes_with_it(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """Six trunks, prune on, three trunk files removed: 3 deletes that take 18 objects."""
    six = "".join(
        f"- name: t{i}\n  account: demo\n  whitelisted_ips: [44.250.{i}.1, 44.250.{i}.2]\n"
        f"  phone_numbers: ['+9180402642{i}0', '+9180402642{i}1', '+9180402642{i}2']\n"
        for i in range(6)
    )
    folder = write(tmp_path, six, prune=True)
    seed(api, folder)
    write(folder, six.split("- name: t3")[0], prune=True)
    result = plan(folder, sandbox)
    deletes = [a for a in result.actions if a.operation == "delete_trunk"]
    assert len(deletes) == 3
    # 3 trunks and 15 children of 36 managed objects: over the 30% rail (10).
    [rail] = result.rails
    assert "18 deletions (a trunk counts with everything on it) exceed the limit of 10" in (
        rail.message
    )
    # The plan names what each delete takes with it.
    said = render.text(result)
    assert "it takes 5 object(s) with it: phone_number +918040264230" in said


def test_a_trunks_new_dids_are_mapped_before_its_old_ones_are_unmapped(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """Make before break: an interrupt in between never leaves the trunk without numbers."""
    folder = write(tmp_path, BASE)
    seed(api, folder)
    write(folder, BASE.replace('"+918040264209"', '"+918040264210"'))
    order = [a.address for a in plan(folder, sandbox).actions]
    mapped = order.index("demo/bot/phone_number/+918040264210")
    unmapped = order.index("demo/bot/phone_number/+918040264209")
    assert mapped < unmapped
