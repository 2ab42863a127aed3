"""DID endpoints: map, list, change mode, unmap; and the trunk-maps lookup."""

from __future__ import annotations

import pytest

from tests.sandboxes import Api, error, ok

DID = "+918040264208"


def test_map_without_mode_reads_back_null(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    data = trunk.map(DID)
    assert data["mode"] is None
    assert data["id"].isdigit()
    assert list(data) == ["id", "phone_number", "trunk_sid", "date_created", "date_updated", "mode"]
    assert trunk.items("phone-numbers") == [data]


def test_map_in_flow_mode(api: Api) -> None:
    assert api.trunk(api.create_trunk()).map(DID, "flow")["mode"] == "flow"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, 1001),
        ({"phone_number": ""}, 1001),
        ({"phone_number": "918040264208"}, 1002),
        ({"phone_number": "+0123456789"}, 1002),
        ({"phone_number": "+91 80402 64208"}, 1002),
        ({"phone_number": "+9180402642081234"}, 1002),
        ({"phone_number": DID, "mode": "sip"}, 1002),
        ({"phone_number": 918040264208}, 1007),
        ({"phone_number": DID, "mode": 1}, 1007),
    ],
)
def test_map_rejects_bad_fields(api: Api, payload: dict[str, object], code: int) -> None:
    trunk = api.trunk(api.create_trunk())
    assert error(trunk.post("phone-numbers", payload))[2] == code
    assert trunk.items("phone-numbers") == []


def test_a_did_sits_on_one_trunk_of_the_account(api: Api) -> None:
    first = api.trunk(api.create_trunk("first"))
    second = api.trunk(api.create_trunk("second"))
    first.map(DID)
    for trunk in (first, second):
        status, envelope, code, description = error(
            trunk.post("phone-numbers", {"phone_number": DID})
        )
        assert (status, envelope, code) == (200, 409, 1008)
        assert description == f"Unable to create DidTrunkMapping with TrunkSid {trunk.sid}"
    assert second.items("phone-numbers") == []


def test_unknown_trunk_is_404_before_field_rules(api: Api) -> None:
    unknown = api.trunk("trmum1" + "0" * 22)
    assert error(unknown.post("phone-numbers", {"phone_number": "bad"})) == (
        404,
        404,
        1000,
        "Not Found",
    )
    # ...but a malformed body is reported before the unknown trunk.
    assert error(unknown.post("phone-numbers", {"phone_number": 5}))[2] == 1007


def test_put_changes_the_mode(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    mapped = trunk.map(DID)
    data = ok(trunk.put(f"phone-numbers/{mapped['id']}", {"phone_number": DID, "mode": "flow"}))
    assert (data["id"], data["mode"]) == (mapped["id"], "flow")
    # An explicit pstn reads back as "pstn"; only an omitted mode is null.
    data = ok(trunk.put(f"phone-numbers/{mapped['id']}", {"phone_number": DID, "mode": "pstn"}))
    assert data["mode"] == "pstn"
    assert trunk.items("phone-numbers")[0]["mode"] == "pstn"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"mode": "flow"}, 1001),
        ({"phone_number": DID}, 1001),
        ({"phone_number": DID, "mode": None}, 1001),
        ({"phone_number": "+918040264209", "mode": "flow"}, 1002),
        ({"phone_number": DID, "mode": "FLOW"}, 1002),
    ],
)
def test_put_needs_the_matching_number_and_a_mode(
    api: Api, payload: dict[str, object], code: int
) -> None:
    trunk = api.trunk(api.create_trunk())
    mapped = trunk.map(DID)
    assert error(trunk.put(f"phone-numbers/{mapped['id']}", payload))[2] == code
    assert trunk.items("phone-numbers")[0]["mode"] is None


def test_put_with_another_trunks_id_or_an_odd_id_is_404(api: Api) -> None:
    first = api.trunk(api.create_trunk("first"))
    second = api.trunk(api.create_trunk("second"))
    mapped = first.map(DID)
    body = {"phone_number": DID, "mode": "flow"}
    assert error(second.put(f"phone-numbers/{mapped['id']}", body))[:3] == (404, 404, 1000)
    for odd in ("abc", "0", "99999", "-1", "1.0"):
        assert error(first.put(f"phone-numbers/{odd}", body))[:3] == (404, 404, 1000)


def test_unmap_frees_the_did(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    mapped = trunk.map(DID)
    assert ok(trunk.delete("phone-numbers", params={"id": mapped["id"]})) == mapped
    assert trunk.items("phone-numbers") == []
    assert error(api.get("/trunk-maps", params={"exophone": DID}))[:3] == (404, 404, 1000)
    assert trunk.map(DID)["id"] != mapped["id"]  # ids are never reused


def test_unmap_errors(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    assert error(trunk.delete("phone-numbers"))[:3] == (400, 400, 1001)
    assert error(trunk.delete("phone-numbers", params={"id": "12"}))[:3] == (404, 404, 1000)


def test_trunk_maps_finds_the_trunk_of_a_did(api: Api) -> None:
    sid = api.create_trunk()
    mapped = api.trunk(sid).map(DID, "flow")
    assert ok(api.get("/trunk-maps", params={"exophone": DID})) == {
        "exophone": DID,
        "trunk_sid": sid,
        "phone_number_id": mapped["id"],
        "mode": "flow",
    }
    assert ok(api.get("/trunk-maps", params={"exophone": DID, "trunk_sid": sid}))
    other = api.create_trunk("other")
    found = api.get("/trunk-maps", params={"exophone": DID, "trunk_sid": other})
    assert error(found)[:3] == (404, 404, 1000)


def test_trunk_maps_errors(api: Api) -> None:
    assert error(api.get("/trunk-maps"))[:3] == (400, 400, 1001)
    assert error(api.get("/trunk-maps", params={"exophone": "12345"}))[2] == 1002
    assert error(api.get("/trunk-maps", params={"exophone": DID}))[:3] == (404, 404, 1000)
    # A "+" left unencoded reads as a space: the answer says how to fix it.
    raw = api.client.get(api.root + "/trunk-maps?exophone=+918040264208")
    assert "%2B" in error(raw)[3]
