"""Fuzzing every POST and PUT body (and list queries): the sandbox never answers 500.

Bodies mix the fields each endpoint knows with arbitrary JSON, so the examples reach
past the type checks into the field rules, batches and duplicate checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.sandbox.endpoints import ROUTES
from tests.sandboxes import Api, Sandbox

FIELDS = [
    "trunk_name",
    "nso_code",
    "domain_name",
    "auth_type",
    "phone_number",
    "mode",
    "ip",
    "mask",
    "destinations",
    "destination",
    "priority",
    "weight",
    "user_name",
    "password",
    "friendly_name",
    "settings",
    "name",
    "value",
]
PLAUSIBLE = st.sampled_from(
    [
        "ANY-ANY",
        "IP-WHITELIST",
        "demo.pstn.exotel.com",
        "+918040264208",
        "flow",
        "pstn",
        "44.248.146.11",
        "13.126.40.0",
        32,
        24,
        16,
        "sip.company.com:5061;transport=tls",
        "44.248.146.11:5061;transport=tls",
        "trunk_external_alias",
        "blr_bot",
        "",
        "-1",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    PLAUSIBLE,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), inner, max_size=5
        ),
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    JSON_VALUES,
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6),
    st.fixed_dictionaries(
        {"destinations": st.lists(st.dictionaries(st.sampled_from(FIELDS), SCALARS), max_size=4)}
    ),
    st.fixed_dictionaries(
        {"settings": st.lists(st.dictionaries(st.sampled_from(FIELDS), SCALARS), max_size=4)}
    ),
)
WRITES = [route for route in ROUTES if route.method in {"POST", "PUT"}]
FUZZ = settings(
    max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def prepared(sandbox: Sandbox) -> tuple[Api, str, dict[str, str]]:
    """A trunk with one of each child, so PUT paths name real ids."""
    sandbox.reset()
    api = Api(sandbox.http)
    sid = api.create_trunk("fuzz_target")
    trunk = api.trunk(sid)
    ids = {
        "phone-numbers": trunk.map("+918040264299")["id"],
        "whitelisted-ips": trunk.whitelist("44.248.146.11")["id"],
    }
    answer = trunk.post(
        "destination-uris", {"destinations": [{"destination": "a.example.com:5061;transport=tls"}]}
    )
    ids["destination-uris"] = answer.json()["response"][0]["data"]["id"]
    answer = trunk.post("credentials", {"user_name": "fuzz", "password": "pw"})
    ids["credentials"] = answer.json()["response"]["data"]["id"]
    return api, sid, ids


def concrete(template: str, sid: str, ids: dict[str, str]) -> str:
    path = template.replace("{sid}", "demo").replace("{trunk_sid}", sid)
    if "{id}" in path:
        child = path.rsplit("/", 2)[-2]
        path = path.replace("{id}", ids[child])
    return path


def check(response: Any) -> None:
    assert response.status_code != 500, response.text
    document = response.json()
    assert {"request_id", "method", "http_code", "response"} <= set(document)
    assert document["http_code"] == response.status_code


@pytest.mark.parametrize("route", WRITES, ids=lambda route: route.key)
def test_no_body_makes_a_500(prepared: tuple[Api, str, dict[str, str]], route: Any) -> None:
    api, sid, ids = prepared
    path = concrete(route.template, sid, ids)

    @FUZZ
    @given(body=BODIES)
    def run(body: Any) -> None:
        check(
            api.client.request(
                route.method,
                path,
                content=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        )

    run()


@FUZZ
@given(raw=st.binary(max_size=200))
def test_no_raw_bytes_make_a_500(prepared: tuple[Api, str, dict[str, str]], raw: bytes) -> None:
    api, sid, _ = prepared
    for path in ("/v2/accounts/demo/trunks", f"/v2/accounts/demo/trunks/{sid}/destination-uris"):
        check(api.client.post(path, content=raw, headers={"Content-Type": "application/json"}))


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["offset", "page_size", "trunk_sid", "exophone", "id", "name", "x"]),
        st.text(max_size=12),
        max_size=4,
    )
)
def test_no_query_makes_a_500(
    prepared: tuple[Api, str, dict[str, str]], query: dict[str, str]
) -> None:
    api, sid, _ = prepared
    for path in (
        "/v2/accounts/demo/trunks",
        "/v2/accounts/demo/trunk-maps",
        f"/v2/accounts/demo/trunks/{sid}/whitelisted-ips",
    ):
        check(api.client.get(path, params=query))
    check(api.client.delete(f"/v2/accounts/demo/trunks/{sid}/settings", params=query))
