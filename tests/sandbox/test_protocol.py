"""Auth, content types, bodies, routes, error precedence and ids: the API's outer layer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.sandboxes import Api, Sandbox, error, ok, running

TRUNK_BODY = {"trunk_name": "blr_bot", "nso_code": "ANY-ANY", "domain_name": "demo.pstn.exotel.com"}


@pytest.mark.parametrize(
    "auth",
    [None, ("demo_key", "wrong"), ("wrong", "demo_token"), ("demo_key", "")],
)
def test_bad_credentials_are_401_1010(sandbox: Sandbox, api: Api, auth: object) -> None:
    with httpx.Client(base_url=sandbox.url, auth=auth) as client:  # type: ignore[arg-type]
        response = client.get("/v2/accounts/demo/trunks")
    assert error(response) == (401, 401, 1010, "Authorization failed")
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_malformed_authorization_headers_are_401(sandbox: Sandbox, api: Api) -> None:
    for header in ("Basic !!!", "Bearer abc", "Basic", "Basic " + "ZGVtbw=="):
        response = sandbox.http.get(
            "/v2/accounts/demo/trunks", headers={"Authorization": header}, auth=None
        )
        assert error(response)[:3] == (401, 401, 1010)


def test_path_sid_must_match_the_credentials(sandbox: Sandbox, api: Api) -> None:
    response = sandbox.http.get("/v2/accounts/someone_else/trunks")
    assert error(response)[:3] == (401, 401, 1010)


def test_accounts_are_isolated(log_path: Path) -> None:
    with running(
        "--account", "acme:k1:t1", "--account", "beta:k2:t:with:colons", log_path=log_path
    ) as sandbox:
        with httpx.Client(base_url=sandbox.url, auth=("k1", "t1")) as acme:
            ok(acme.post("/v2/accounts/acme/trunks", json=TRUNK_BODY))
            # The default demo account is not there when --account is given.
            assert acme.get("/v2/accounts/demo/trunks").status_code == 401
        with httpx.Client(base_url=sandbox.url, auth=("k2", "t:with:colons")) as beta:
            assert beta.get("/v2/accounts/beta/trunks").json()["response"] == []
            # The same trunk name is free in another account.
            ok(beta.post("/v2/accounts/beta/trunks", json=TRUNK_BODY))
            assert beta.get("/v2/accounts/acme/trunks").status_code == 401


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_post_and_put_need_json(api: Api, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = api.client.post(
        api.root + "/trunks", content=json.dumps(TRUNK_BODY), headers=headers
    )
    status, envelope, code, _ = error(response)
    assert (status, envelope, code) == (415, 415, 1011)
    sid = api.create_trunk()
    response = api.client.put(api.root + f"/trunks/{sid}", content=b"{}", headers=headers)
    assert error(response)[2] == 1011


def test_json_with_a_charset_is_fine(api: Api) -> None:
    response = api.client.post(
        api.root + "/trunks",
        content=json.dumps(TRUNK_BODY),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok(response)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"{'a': 1}", b"\xff\xfe", b"[" * 100_000, b'{"trunk_name": "x",}']
)
def test_unparseable_json_is_1007(api: Api, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    response = api.client.post(api.root + "/trunks", content=raw, headers=headers)
    assert error(response)[:3] == (400, 400, 1007)


def test_bodies_over_one_mebibyte_are_413(api: Api) -> None:
    big = json.dumps({"trunk_name": "x" * (1024 * 1024)}).encode()
    headers = {"Content-Type": "application/json"}
    response = api.client.post(api.root + "/trunks", content=big, headers=headers)
    assert error(response)[:3] == (413, 413, 1007)

    def chunks() -> object:  # no Content-Length: the limit holds while streaming too
        yield big

    response = api.client.post(api.root + "/trunks", content=chunks(), headers=headers)  # type: ignore[arg-type]
    assert error(response)[:3] == (413, 413, 1007)
    # Exactly 1 MiB is still read (and then fails the field rules, not the size).
    body = b'{"trunk_name": "' + b"y" * (1024 * 1024 - 18) + b'"}'
    assert len(body) == 1024 * 1024
    assert error(api.client.post(api.root + "/trunks", content=body, headers=headers))[2] == 1002


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/accounts/demo/nothing"),
        ("GET", "/v2/accounts/demo/trunks/"),
        ("GET", "/v2/accounts/demo/trunks/trmum1x/whitelisted_ips"),  # underscores: not a route
        ("PATCH", "/v2/accounts/demo/trunks/trmum1x"),
        ("GET", "/v2/accounts/demo/trunks/trmum1x"),
        ("POST", "/v2/accounts/demo/trunk-maps"),
        ("GET", "/"),
    ],
)
def test_unknown_routes_are_404_envelopes(
    sandbox: Sandbox, api: Api, method: str, path: str
) -> None:
    response = sandbox.http.request(method, path)
    assert error(response)[:3] == (404, 404, 1000)
    assert response.json()["method"] == method


def test_odd_ids_and_sids_are_404(api: Api) -> None:
    for path in (
        "/trunks/..%2F..%2Fetc/phone-numbers",
        "/trunks/%00/phone-numbers",
        "/trunks/" + "x" * 500 + "/whitelisted-ips",
        "/trunks/trmum1%20space/credentials",
    ):
        assert error(api.get(path))[:3] == (404, 404, 1000)


def test_error_precedence(sandbox: Sandbox, api: Api) -> None:
    """auth -> rate limit -> fault -> route -> content type -> body -> trunk -> fields -> dup."""
    unknown = "trmum1" + "z" * 22
    # Route before content type: an unknown route with a bad content type is 404.
    response = api.client.post(
        api.root + "/nothing", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert error(response)[2] == 1000
    # Content type before body parse.
    response = api.client.post(
        api.root + "/trunks", content=b"{", headers={"Content-Type": "text/plain"}
    )
    assert error(response)[2] == 1011
    # Body parse before the trunk lookup.
    response = api.client.post(
        api.root + f"/trunks/{unknown}/phone-numbers",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert error(response)[2] == 1007
    # Trunk lookup before field rules.
    assert error(api.post(f"/trunks/{unknown}/whitelisted-ips", {"ip": "10.0.0.1"}))[2] == 1000
    # Field rules before duplicates.
    sid = api.create_trunk()
    assert error(api.post("/trunks", {**TRUNK_BODY, "nso_code": "bad"}))[2] == 1002
    assert error(api.post("/trunks", TRUNK_BODY))[2] == 1008
    assert sid
    # Auth before everything: an unknown route without credentials is 401.
    assert error(sandbox.http.get("/nothing", auth=("x", "y")))[2] == 1010
    # A fault fires before the route is looked up.
    sandbox.faults({"path": "/v2/accounts/demo/nothing", "fault": "error_500", "count": 1})
    assert error(api.get("/nothing"))[:3] == (500, 500, 500)


def test_ids_have_the_documented_shapes(api: Api) -> None:
    sids = {api.create_trunk(f"t{i}") for i in range(20)}
    assert all(re.fullmatch(r"trmum1[a-z0-9]{22}", sid) for sid in sids)
    trunk = api.trunk(sorted(sids)[0])
    ids = [int(trunk.map("+91804026420" + str(i))["id"]) for i in range(3)] + [
        int(trunk.whitelist("44.248.146.11")["id"])
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_request_ids_are_32_hex_and_unique(api: Api) -> None:
    seen = {api.get("/trunks").json()["request_id"] for _ in range(20)}
    assert len(seen) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in seen)


def test_seed_makes_sids_and_request_ids_reproducible(tmp_path: Path) -> None:
    def run() -> tuple[list[str], list[str]]:
        with running("--seed", "42", log_path=tmp_path / "seeded.log") as sandbox:
            api = Api(sandbox.http)
            sids = [api.create_trunk(f"t{i}") for i in range(3)]
            request_ids = [api.get("/trunks").json()["request_id"] for _ in range(3)]
            return sids, request_ids

    first, second = run(), run()
    assert first == second
    with running("--seed", "43", log_path=tmp_path / "other.log") as sandbox:
        assert Api(sandbox.http).create_trunk("t0") != first[0][0]


def test_one_log_line_per_request(log_path: Path) -> None:
    with running(log_path=log_path) as sandbox:
        api = Api(sandbox.http)
        api.create_trunk()
        api.get("/trunks", auth=("demo_key", "nope"))
        sandbox.stats()  # control calls are not logged as API requests
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert [(r["method"], r["path"], r["status"], r["account"]) for r in requests] == [
        ("POST", "/v2/accounts/demo/trunks", 200, "demo"),
        ("GET", "/v2/accounts/demo/trunks", 401, None),
    ]
    assert all(isinstance(r["duration_ms"], float) for r in requests)
    assert "demo_token" not in log_path.read_text()


@pytest.mark.parametrize("header", [b"Basic \xc3\xa9", b"Basic \xff\xfe", "Basic é".encode()])
def test_non_ascii_authorization_is_401(sandbox: Sandbox, api: Api, header: bytes) -> None:
    response = sandbox.http.get(
        "/v2/accounts/demo/trunks", headers={"Authorization": header}, auth=None
    )
    assert error(response)[:3] == (401, 401, 1010)


@pytest.mark.parametrize("encoding", ["deflate", "gzip"])
def test_a_body_that_fails_to_decompress_is_1007(api: Api, encoding: str) -> None:
    # The sandbox stops reading a body it cannot decompress, so the connection ends with a
    # reset: not one to hand back to the pool for the next test.
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": encoding,
        "Connection": "close",
    }
    response = api.client.post(
        api.root + "/trunks", content=json.dumps(TRUNK_BODY), headers=headers
    )
    assert error(response)[:3] == (400, 400, 1007)
