"""SIP credential endpoints: passwords are write-only and word characters only."""

from __future__ import annotations

import hashlib

import pytest

from tests.sandboxes import Api, Sandbox, TrunkApi, error, ok


@pytest.fixture
def trunk(api: Api) -> TrunkApi:
    return api.trunk(api.create_trunk())


def test_add_never_returns_the_password(trunk: TrunkApi, sandbox: Sandbox) -> None:
    body = {"user_name": "voice_ai_user", "password": "Str0ng_pass", "friendly_name": "eleven_prod"}
    data = ok(trunk.post("credentials", body))
    assert list(data) == [
        "id",
        "trunk_sid",
        "user_name",
        "friendly_name",
        "date_created",
        "date_updated",
    ]
    assert (data["user_name"], data["friendly_name"]) == ("voice_ai_user", "eleven_prod")
    assert trunk.items("credentials") == [data]
    assert "Str0ng_pass" not in str(sandbox.state())
    stored = sandbox.state()["accounts"]["demo"]["trunks"][0]["credentials"][0]
    assert stored["password_sha256"] == hashlib.sha256(b"Str0ng_pass").hexdigest()


def test_friendly_name_is_optional(trunk: TrunkApi) -> None:
    assert (
        ok(trunk.post("credentials", {"user_name": "u", "password": "p"}))["friendly_name"] is None
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"password": "p"}, 1001),
        ({"user_name": "u"}, 1001),
        ({"user_name": "u", "password": ""}, 1001),
        # The docs' own example friendly name would fail (measured live).
        ({"user_name": "u", "password": "p", "friendly_name": "elevenlabs-prod"}, 1002),
        ({"user_name": "u", "password": "p@ss"}, 1002),
        ({"user_name": "u", "password": "p" * 65}, 1002),
        ({"user_name": "u-1", "password": "p"}, 1002),
        ({"user_name": "u" * 33, "password": "p"}, 1002),
        ({"user_name": "u", "password": "p", "friendly_name": "f" * 33}, 1002),
        ({"user_name": 1, "password": "p"}, 1007),
    ],
)
def test_add_rejects_bad_fields(trunk: TrunkApi, body: dict[str, object], code: int) -> None:
    assert error(trunk.post("credentials", body))[2] == code
    assert trunk.items("credentials") == []


def test_user_names_are_unique_per_trunk(api: Api, trunk: TrunkApi) -> None:
    ok(trunk.post("credentials", {"user_name": "bot", "password": "p1"}))
    assert error(trunk.post("credentials", {"user_name": "bot", "password": "p2"}))[:3] == (
        200,
        409,
        1008,
    )
    other = api.trunk(api.create_trunk("other"))
    assert ok(other.post("credentials", {"user_name": "bot", "password": "p2"}))


def test_put_is_partial_and_rotates_the_password(trunk: TrunkApi, sandbox: Sandbox) -> None:
    created = ok(trunk.post("credentials", {"user_name": "bot", "password": "first"}))
    path = f"credentials/{created['id']}"
    data = ok(trunk.put(path, {"password": "second"}))
    assert data["user_name"] == "bot"
    stored = sandbox.state()["accounts"]["demo"]["trunks"][0]["credentials"][0]
    assert stored["password_sha256"] == hashlib.sha256(b"second").hexdigest()
    data = ok(trunk.put(path, {"friendly_name": "label"}))
    assert (data["user_name"], data["friendly_name"]) == ("bot", "label")
    assert ok(trunk.put(path, {"user_name": "renamed"}))["user_name"] == "renamed"


def test_put_errors(trunk: TrunkApi) -> None:
    first = ok(trunk.post("credentials", {"user_name": "first", "password": "p"}))
    ok(trunk.post("credentials", {"user_name": "second", "password": "p"}))
    path = f"credentials/{first['id']}"
    assert error(trunk.put(path, {}))[2] == 1001
    assert error(trunk.put(path, {"password": "bad pass"}))[2] == 1002
    assert error(trunk.put(path, {"user_name": "second"}))[2] == 1008
    # Field rules win over the duplicate check.
    assert error(trunk.put(path, {"user_name": "second", "password": "bad pass"}))[2] == 1002
    assert error(trunk.put("credentials/777", {"password": "x"}))[2] == 1000
    assert [c["user_name"] for c in trunk.items("credentials")] == ["second", "first"]


def test_delete(trunk: TrunkApi) -> None:
    created = ok(trunk.post("credentials", {"user_name": "bot", "password": "p"}))
    assert ok(trunk.delete("credentials", params={"id": created["id"]})) == created
    assert trunk.items("credentials") == []
