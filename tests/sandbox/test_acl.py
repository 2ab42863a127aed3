"""Whitelisted-IP endpoints: the trunk's ACL."""

from __future__ import annotations

import pytest

from tests.sandboxes import Api, error, ok

IP = "44.248.146.11"


def test_whitelist_defaults_to_a_host_mask(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    data = trunk.whitelist(IP)
    assert list(data) == [
        "id",
        "mask",
        "trunk_sid",
        "ip",
        "friendly_name",
        "date_created",
        "date_updated",
    ]
    assert (data["ip"], data["mask"], data["friendly_name"]) == (IP, 32, None)
    assert trunk.items("whitelisted-ips") == [data]


@pytest.mark.parametrize("mask", [16, 24, 31, 32])
def test_masks_from_16_to_32(api: Api, mask: int) -> None:
    assert api.trunk(api.create_trunk()).whitelist("13.126.40.0", mask)["mask"] == mask


def test_host_bits_are_stored_as_sent(api: Api) -> None:
    assert api.trunk(api.create_trunk()).whitelist("13.126.40.7", 24)["ip"] == "13.126.40.7"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, 1001),
        ({"mask": 32}, 1001),
        ({"ip": "13.126.40.0/24"}, 1002),
        ({"ip": "300.1.1.1"}, 1002),
        ({"ip": "044.248.146.11"}, 1002),
        ({"ip": "example.com"}, 1002),
        ({"ip": "2001:db8::1"}, 1002),
        ({"ip": IP, "mask": 15}, 1002),
        ({"ip": IP, "mask": 33}, 1002),
        ({"ip": IP, "mask": "32"}, 1002),  # a string mask is 1002, not 1007
        ({"ip": IP, "mask": 24.0}, 1002),
        ({"ip": IP, "mask": True}, 1002),
        ({"ip": 5}, 1007),
    ],
)
def test_whitelist_rejects_bad_fields(api: Api, payload: dict[str, object], code: int) -> None:
    trunk = api.trunk(api.create_trunk())
    assert error(trunk.post("whitelisted-ips", payload))[2] == code
    assert trunk.items("whitelisted-ips") == []


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",  # private
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",  # loopback
        "169.254.1.1",  # link-local
        "224.0.0.5",  # multicast
        "240.0.0.1",  # reserved
        "0.0.0.0",  # unspecified
        "100.64.0.1",  # shared address space
        "192.0.2.10",  # documentation ranges
        "198.51.100.7",
        "203.0.113.9",
        "255.255.255.255",
    ],
)
def test_only_public_addresses(api: Api, ip: str) -> None:
    trunk = api.trunk(api.create_trunk())
    assert error(trunk.post("whitelisted-ips", {"ip": ip}))[:3] == (400, 400, 1002)


def test_duplicates_are_keyed_on_ip_and_mask(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    trunk.whitelist(IP)
    status, envelope, code, description = error(trunk.post("whitelisted-ips", {"ip": IP}))
    assert (status, envelope, code) == (200, 409, 1008)
    assert description == f"Unable to Whitelist-ip with ip {IP}"
    assert error(trunk.post("whitelisted-ips", {"ip": IP, "mask": 32}))[2] == 1008
    assert trunk.whitelist(IP, 31)["mask"] == 31
    # The same IP on another trunk is fine.
    assert api.trunk(api.create_trunk("other")).whitelist(IP)


def test_put_changes_ip_and_mask(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    entry = trunk.whitelist(IP)
    data = ok(trunk.put(f"whitelisted-ips/{entry['id']}", {"mask": 24}))
    assert (data["ip"], data["mask"]) == (IP, 24)
    data = ok(trunk.put(f"whitelisted-ips/{entry['id']}", {"ip": "13.126.40.0", "mask": 16}))
    assert (data["ip"], data["mask"], data["id"]) == ("13.126.40.0", 16, entry["id"])


def test_put_errors(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    entry = trunk.whitelist(IP)
    other = trunk.whitelist("13.126.40.0", 24)
    path = f"whitelisted-ips/{entry['id']}"
    assert error(trunk.put(path, {}))[2] == 1001
    assert error(trunk.put(path, {"mask": 8}))[2] == 1002
    assert error(trunk.put(path, {"ip": "10.1.1.1"}))[2] == 1002
    assert error(trunk.put(path, {"ip": "13.126.40.0", "mask": 24}))[:3] == (200, 409, 1008)
    assert error(trunk.put("whitelisted-ips/999", {"mask": 24}))[:3] == (404, 404, 1000)
    assert {e["id"]: e["mask"] for e in trunk.items("whitelisted-ips")} == {
        entry["id"]: 32,
        other["id"]: 24,
    }


def test_delete_even_when_a_destination_uses_it(api: Api) -> None:
    trunk = api.trunk(api.create_trunk())
    entry = trunk.whitelist(IP)
    destination = {"destination": f"{IP}:5061;transport=tls"}
    assert trunk.post("destination-uris", {"destinations": [destination]}).status_code == 200
    assert ok(trunk.delete("whitelisted-ips", params={"id": entry["id"]})) == entry
    assert trunk.items("whitelisted-ips") == []
    assert len(trunk.items("destination-uris")) == 1
    assert error(trunk.delete("whitelisted-ips", params={"id": entry["id"]}))[2] == 1000
    assert error(trunk.delete("whitelisted-ips"))[2] == 1001
