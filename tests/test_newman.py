"""Exotel's own Postman collection, run by newman against the sandbox over HTTPS.

The collection (``tests/vendor``, unchanged from Exotel's sample repository) is a real
client written by someone else: if it works against the sandbox, the sandbox speaks
the API as Exotel's own users call it. The run uses a prepared copy:

* ``subdomain``, ``account_sid``, ``api_key`` and ``api_token`` come from an environment
  pointed at the sandbox;
* ``trunk_sid`` is taken from the first trunk created and ``phone_number_id`` from the
  first number mapped, with ``pm.environment.set`` (``--env-var`` values would override
  what scripts set, so they cannot be used);
* the StreamKit folder's ``YOUR_SERVER_IP`` is a different public IP from the PSTN folder's;
* every request gets a test script asserting its envelope, because the collection has no
  assertions of its own and newman exits 0 on a run of 404s.

Expected: every request succeeds except the StreamKit folder's mapping of the number
the PSTN folder already mapped, which gets Exotel's duplicate answer (HTTP 200,
envelope 409, error 1008).
"""

from __future__ import annotations

import copy
import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.sandboxes import Sandbox, running

ROOT = Path(__file__).parents[1]
COLLECTION = ROOT / "tests" / "vendor" / "exotel-sip-trunking.postman_collection.json"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"
FOLDER_IPS = {
    "1. GETTING STARTED (PSTN)": "44.248.146.11",
    "2. STREAMKIT (Voice AI)": "13.126.40.7",
}
DUPLICATE = ("2. STREAMKIT (Voice AI)", "Step 2: Map Phone Number (Flow Mode)")

ASSERT_ENVELOPE = """
const expected = %s;
const body = pm.response.json();
pm.test(`${pm.info.requestName}: ${expected} envelope`, function () {
  pm.expect(body.request_id).to.match(/^[0-9a-f]{32}$/);
  pm.expect(body.method).to.eql(pm.request.method);
  pm.expect(body.http_code).to.eql(pm.response.code);
  pm.expect(pm.response.code).to.eql(200);
  if (expected === "success") {
    const items = Array.isArray(body.response) ? body.response : [body.response];
    items.forEach(function (item) {
      pm.expect(item.status).to.eql("success");
      pm.expect(item.code).to.eql(200);
      pm.expect(item.error_data).to.eql(null);
    });
  } else {
    pm.expect(body.response.status).to.eql("failure");
    pm.expect(body.response.code).to.eql(409);
    pm.expect(body.response.error_data.code).to.eql(1008);
  }
});
"""
REMEMBER_FIRST = """
{
  const data = pm.response.json().response.data;
  if (data && !pm.environment.get("%(variable)s")) {
    pm.environment.set("%(variable)s", data.%(field)s);
  }
}
"""


def prepare(collection: dict[str, Any]) -> dict[str, Any]:
    prepared = copy.deepcopy(collection)
    for folder in prepared["item"]:
        for request in folder["item"]:
            spec = request["request"]
            if "body" in spec and folder["name"] in FOLDER_IPS:
                spec["body"]["raw"] = spec["body"]["raw"].replace(
                    "YOUR_SERVER_IP", FOLDER_IPS[folder["name"]]
                )
            expected = "duplicate" if (folder["name"], request["name"]) == DUPLICATE else "success"
            script = ASSERT_ENVELOPE % json.dumps(expected)
            if request["name"].endswith("Create Trunk"):
                script += REMEMBER_FIRST % {"variable": "trunk_sid", "field": "trunk_sid"}
            if "Map Phone Number" in request["name"]:
                script += REMEMBER_FIRST % {"variable": "phone_number_id", "field": "id"}
            request["event"] = [
                {
                    "listen": "test",
                    "script": {"type": "text/javascript", "exec": script.splitlines()},
                }
            ]
    return prepared


def environment(sandbox: Sandbox) -> dict[str, Any]:
    values = {
        "subdomain": sandbox.url.removeprefix("https://"),
        "account_sid": "demo",
        "api_key": "demo_key",
        "api_token": "demo_token",
    }
    return {
        "name": "sandbox",
        "values": [{"key": k, "value": v, "enabled": True} for k, v in values.items()],
    }


@pytest.mark.newman
def test_exotel_postman_collection_runs_against_the_sandbox(tmp_path: Path) -> None:
    assert NEWMAN.exists(), "newman is not installed: run `npm ci` (make test does)"
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(certfile)
    certificate.private_key_pem.write_to_path(keyfile)
    authority.cert_pem.write_to_path(ca)
    collection_path, environment_path = tmp_path / "collection.json", tmp_path / "env.json"
    report = tmp_path / "report.json"
    collection_path.write_text(json.dumps(prepare(json.loads(COLLECTION.read_text()))))
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with running(
        "--certfile",
        str(certfile),
        "--keyfile",
        str(keyfile),
        log_path=tmp_path / "sandbox.log",
        verify=context,
    ) as sandbox:
        environment_path.write_text(json.dumps(environment(sandbox)))
        result = subprocess.run(
            [
                str(NEWMAN),
                "run",
                str(collection_path),
                "--environment",
                str(environment_path),
                "--ssl-extra-ca-certs",
                str(ca),
                "--reporters",
                "cli,json",
                "--reporter-json-export",
                str(report),
                "--color",
                "off",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        state = sandbox.state()
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    run = json.loads(report.read_text())["run"]
    assert run["stats"]["requests"] == {"total": 13, "pending": 0, "failed": 0}
    assert run["stats"]["assertions"]["failed"] == 0
    assert run["stats"]["assertions"]["total"] == 13
    answers = {
        execution["item"]["name"]: json.loads(bytes(execution["response"]["stream"]["data"]))
        for execution in run["executions"]
        if execution["item"]["name"] != DUPLICATE[1]
    }
    assert all(answer["http_code"] == 200 for answer in answers.values())
    # What the collection built: its first trunk was deleted last, the StreamKit one stays.
    [remaining] = state["accounts"]["demo"]["trunks"]
    assert remaining["trunk_name"] == "streamkit_trunk"
    assert remaining["phone_numbers"] == []
    deleted = answers["Delete Trunk"]["response"]["data"]
    assert deleted["trunk_name"] == "my_trunk"
    ips = [item["data"]["ip"] for item in answers["Get ACLs (Whitelisted IPs)"]["response"]]
    assert ips == ["13.126.40.7", "44.248.146.11"]  # newest first, one per folder
    assert answers["Update Phone Number Mode"]["response"]["data"]["mode"] == "flow"
