"""Trunk endpoints: create, list, update, delete."""

from __future__ import annotations

import re

import pytest

from tests.sandboxes import Api, error, ok

DOMAIN = "demo.pstn.exotel.com"


def body(**overrides: object) -> dict[str, object]:
    return {"trunk_name": "blr_bot", "nso_code": "ANY-ANY", "domain_name": DOMAIN, **overrides}


def test_create_answers_the_documented_trunk(api: Api) -> None:
    response = api.post("/trunks", body())
    document = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", document["request_id"])
    assert document["method"] == "POST"
    assert document["http_code"] == 200
    data = ok(response)
    assert re.fullmatch(r"trmum1[a-z0-9]{22}", data["trunk_sid"])
    sid = data["trunk_sid"]
    assert data == {
        "trunk_name": "blr_bot",
        "date_created": data["date_created"],
        "date_updated": data["date_created"],
        "trunk_sid": sid,
        "status": "active",
        "domain_name": DOMAIN,
        "auth_type": "IP-WHITELIST",
        "registration_enabled": "disabled",
        "edge_preference": "auto",
        "nso_code": "ANY-ANY",
        "secure_trunking": "disabled",
        "destination_uris": f"/v2/accounts/demo/trunks/{sid}/destination-uris",
        "whitelisted_ips": f"/v2/accounts/demo/trunks/{sid}/whitelisted-ips",
        "credentials": f"/v2/accounts/demo/trunks/{sid}/credentials",
        "phone_numbers": f"/v2/accounts/demo/trunks/{sid}/phone-numbers",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["date_created"])


@pytest.mark.parametrize(
    ("overrides", "code", "description"),
    [
        ({"trunk_name": None}, 1001, "TrunkName is mandatory"),
        ({"trunk_name": ""}, 1001, "TrunkName is mandatory"),
        ({"nso_code": None}, 1001, "NsoCode is mandatory"),
        ({"domain_name": None}, 1001, "DomainName is mandatory"),
        ({"trunk_name": "has-hyphen"}, 1002, "trunk_name must be alphanumeric"),
        ({"trunk_name": "a" * 17}, 1002, "max 16 characters"),
        ({"trunk_name": "spa ce"}, 1002, "trunk_name must be alphanumeric"),
        ({"nso_code": "any any"}, 1002, "Nso code is invalid"),
        ({"nso_code": "any-any"}, 1002, "Nso code is invalid"),
        ({"domain_name": "demo.example.com"}, 1002, ".pstn.exotel.com"),
        ({"domain_name": ".pstn.exotel.com"}, 1002, ".pstn.exotel.com"),
    ],
)
def test_create_rejects_bad_fields(
    api: Api, overrides: dict[str, object], code: int, description: str
) -> None:
    status, envelope, got, text = error(api.post("/trunks", body(**overrides)))
    assert (status, envelope, got) == (400, 400, code)
    assert description in text
    assert api.get("/trunks").json()["response"] == []


def test_names_of_sixteen_word_characters_are_fine(api: Api) -> None:
    assert ok(api.post("/trunks", body(trunk_name="A_b9" * 4)))["trunk_name"] == "A_b9" * 4


def test_any_pstn_exotel_domain_is_accepted(api: Api) -> None:
    assert ok(api.post("/trunks", body(domain_name="other.pstn.exotel.com")))


@pytest.mark.parametrize(
    "payload",
    [
        {"trunk_name": 12, "nso_code": "ANY-ANY", "domain_name": DOMAIN},
        {"trunk_name": "x", "nso_code": ["ANY-ANY"], "domain_name": DOMAIN},
        ["blr_bot"],
        "blr_bot",
        42,
    ],
)
def test_wrong_json_types_are_a_bad_body(api: Api, payload: object) -> None:
    assert error(api.post("/trunks", payload))[:3] == (400, 400, 1007)


def test_json_null_body_is_a_bad_body(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    response = api.client.post(api.root + "/trunks", content=b"null", headers=headers)
    assert error(response)[:3] == (400, 400, 1007)


def test_wrong_types_win_over_missing_fields(api: Api) -> None:
    # Types are checked before field rules (docs/exotel-api.md section 6a).
    assert error(api.post("/trunks", {"nso_code": 5}))[2] == 1007


def test_duplicate_name_is_http_200_with_envelope_409(api: Api) -> None:
    api.create_trunk("blr_bot")
    response = api.post("/trunks", body())
    assert error(response) == (200, 409, 1008, "Trunk with name 'blr_bot' already exists")
    assert response.json()["http_code"] == 200
    assert len(api.get("/trunks").json()["response"]) == 1


def test_list_is_newest_first_and_filters_by_sid(api: Api) -> None:
    sids = [api.create_trunk(f"t{i}") for i in range(3)]
    listed = [item["data"]["trunk_sid"] for item in api.get("/trunks").json()["response"]]
    assert listed == sids[::-1]
    filtered = api.get("/trunks", params={"trunk_sid": sids[1]}).json()
    assert [item["data"]["trunk_name"] for item in filtered["response"]] == ["t1"]
    assert filtered["metadata"]["first_page_uri"] == (
        f"/v2/accounts/demo/trunks?trunk_sid={sids[1]}&offset=0&page_size=50"
    )


def test_filter_matching_nothing_is_an_empty_list(api: Api) -> None:
    api.create_trunk()
    document = api.get("/trunks", params={"trunk_sid": "trmum1unknown"}).json()
    assert document["response"] == []
    assert "metadata" not in document


def test_update_renames_and_is_partial(api: Api) -> None:
    sid = api.create_trunk("old_name")
    data = ok(api.put(f"/trunks/{sid}", {"trunk_name": "new_name"}))
    assert (data["trunk_name"], data["nso_code"], data["auth_type"]) == (
        "new_name",
        "ANY-ANY",
        "IP-WHITELIST",
    )
    assert ok(api.put(f"/trunks/{sid}", {"auth_type": "IP-WHITELIST"}))["trunk_name"] == "new_name"
    # The old name is free again.
    assert api.create_trunk("old_name")


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({}, 1001),
        ({"trunk_name": "bad-name"}, 1002),
        ({"nso_code": "any any"}, 1002),
        ({"auth_type": "DIGEST"}, 1002),
        ({"trunk_name": 5}, 1007),
    ],
)
def test_update_rejects_bad_fields(api: Api, update: dict[str, object], code: int) -> None:
    sid = api.create_trunk()
    assert error(api.put(f"/trunks/{sid}", update))[2] == code
    unchanged = api.get("/trunks").json()["response"][0]["data"]
    assert (unchanged["trunk_name"], unchanged["nso_code"]) == ("blr_bot", "ANY-ANY")


def test_rename_onto_a_used_name_is_a_duplicate(api: Api) -> None:
    api.create_trunk("taken")
    sid = api.create_trunk("mine")
    assert error(api.put(f"/trunks/{sid}", {"trunk_name": "taken"}))[:3] == (200, 409, 1008)


def test_update_of_unknown_trunk_is_404(api: Api) -> None:
    sid = "trmum1" + "x" * 22
    assert error(api.put(f"/trunks/{sid}", {"trunk_name": "x"}))[:3] == (404, 404, 1000)


def test_delete_takes_everything_with_it(api: Api) -> None:
    sid = api.create_trunk()
    trunk = api.trunk(sid)
    trunk.map("+918040264208")
    trunk.whitelist("44.248.146.11")
    trunk.post(
        "destination-uris",
        {"destinations": [{"destination": "sip.company.com:5061;transport=tls"}]},
    )
    ok(trunk.post("credentials", {"user_name": "bot", "password": "s3cret_pw"}))
    trunk.post(
        "settings", {"settings": [{"name": "trunk_external_alias", "value": "+918040264208"}]}
    )
    deleted = ok(api.delete("/trunks", params={"trunk_sid": sid}))
    assert deleted["trunk_sid"] == sid
    assert api.get("/trunks").json()["response"] == []
    for child in (
        "phone-numbers",
        "whitelisted-ips",
        "destination-uris",
        "credentials",
        "settings",
    ):
        assert error(trunk.get(child))[:3] == (404, 404, 1000)
    # The DID is free for another trunk, and the name for a new trunk.
    assert api.trunk(api.create_trunk()).map("+918040264208")


def test_delete_needs_the_sid_in_the_query(api: Api) -> None:
    sid = api.create_trunk()
    assert error(api.delete("/trunks"))[:3] == (400, 400, 1001)
    assert error(api.delete(f"/trunks/{sid}"))[:3] == (404, 404, 1000)
    assert error(api.delete("/trunks", params={"trunk_sid": "nope"}))[:3] == (404, 404, 1000)
    assert len(api.get("/trunks").json()["response"]) == 1
