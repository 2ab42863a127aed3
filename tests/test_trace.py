"""``reconciler trace``: where a call goes, from the manifests, the ledger, the routes (as
``serve`` decides) and live state in the sandbox; with ``--probe``, Kamailio answering.
The CLI runs as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry
from tests.estate import apply, environ
from tests.sandboxes import Api, Sandbox
from tests.sipservers import Certificates, kamailio, need
from tests.test_plan_cli import reconciler

BOT, CC = "+918040264208", "+912247788100"
SID_BOT, SID_CC = "trmum1bot" + "0" * 19, "trmum1cc" + "0" * 20
THURSDAY_NOON, THURSDAY_NIGHT = "2026-11-26T12:00", "2026-11-26T22:00"
ACCOUNTS = """\
accounts:
  demo:
    sid: demo
    api_key: ${EXOTEL_API_KEY}
    api_token: ${EXOTEL_API_TOKEN}
"""
TRUNKS = f"""\
trunks:
  - name: bot
    account: demo
    phone_numbers:
      - number: "{BOT}"
        mode: flow
    destination_uris:
      - uri: bot.example.test:5061;transport=tls
  - name: cc
    account: demo
    phone_numbers: ["{CC}"]
    destination_uris:
      - uri: sbc1.example.test:5061;transport=tls
        weight: 3
      - uri: sbc2.example.test:5061;transport=tls
      - uri: dr.example.test:5060;transport=tcp
        priority: 1
routes:
  - did: "{BOT}"
    account: demo
    rules:
      - when:
          caller_prefixes: ["+9198"]
          hours: "09:00-18:00"
          weekdays: [mon, tue, wed, thu, fri]
        trunk: cc
        custom_params: {{X-Tenant: acme}}
        record: true
    default:
      trunk: bot
    handoff:
      hours: "09:00-18:00"
      weekdays: [mon, tue, wed, thu, fri]
      agents: {{available: true}}
      otherwise: 302
  - did: "{CC}"
    account: demo
    default: {{trunk: bot}}
"""


def folder(tmp_path: Path, trunks: str = TRUNKS, *, ledger: bool = True) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / "accounts.yaml").write_text(ACCOUNTS)
    (manifests / "trunks.yaml").write_text(trunks)
    if ledger:
        entries = {"bot": TrunkEntry(SID_BOT), "cc": TrunkEntry(SID_CC)}
        ledgers.write(manifests / "state" / "demo.json", Ledger("demo", "demo", entries))
    return manifests


def trace(tmp_path: Path, *args: str, env: dict[str, str] | None = None, code: int = 0) -> Any:
    result = reconciler("trace", *args, "--format", "json", env=env or {}, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def test_a_matching_rule_sends_the_call_to_its_trunk(tmp_path: Path) -> None:
    folder(tmp_path)
    found = trace(tmp_path, BOT, "--from", "09812345678", "--at", THURSDAY_NOON, "--offline")
    assert found["declared"] == {"account": "demo", "trunk": "bot", "sid": SID_BOT, "mode": "flow"}
    assert (found["caller"], found["weekday"]) == ("+919812345678", "thu")
    connect = found["connect"]
    assert connect["tried"] == [{"rule": "rules[0]", "trunk": "cc", "matched": True, "why": []}]
    assert (connect["chosen"], connect["trunk"], connect["status"]) == ("rules[0]", "cc", 200)
    assert connect["answer"]["destination"] == {"trunk": SID_CC}
    assert connect["answer"]["custom_params"] == "X-Tenant=acme"
    assert found["handoff"]["answer"] == {"result": "agent"}
    # The call reaches cc's destinations, in Exotel's order, with their shares.
    assert found["trunk"] == "cc"
    assert [(d["uri"].split(":")[0], d["share"]) for d in found["destinations"]] == [
        ("sbc1.example.test", 0.75),
        ("sbc2.example.test", 0.25),
        ("dr.example.test", 1.0),
    ]
    assert found["live"] is None


def test_why_a_rule_did_not_match(tmp_path: Path) -> None:
    folder(tmp_path)
    night = trace(tmp_path, BOT, "--from", "+919812345678", "--at", THURSDAY_NIGHT, "--offline")
    [tried] = night["connect"]["tried"]
    assert tried["why"] == ["outside 09:00-18:00 on mon,tue,wed,thu,fri"]
    assert (night["connect"]["chosen"], night["trunk"]) == ("default", "bot")
    assert night["handoff"]["status"] == 302
    other = trace(tmp_path, BOT, "--from", "+914412345678", "--at", THURSDAY_NOON, "--offline")
    assert other["connect"]["tried"][0]["why"] == ["+914412345678 does not start with +9198"]
    result = reconciler("trace", BOT, "--at", THURSDAY_NIGHT, "--offline", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "rules[0] -> cc: no: an unknown caller does not start with +9198; outside" in text
    assert "default -> bot" in text
    assert "flow: the call runs through an Exotel flow" in text
    assert "1. bot.example.test:5061;transport=tls  priority 0, weight 1 (100%)" in text


def test_a_pstn_did_goes_straight_to_its_trunk(tmp_path: Path) -> None:
    folder(tmp_path)
    found = trace(tmp_path, CC, "--at", THURSDAY_NOON, "--offline")
    assert found["mode"] == "pstn"
    assert found["trunk"] == "cc"  # not bot, which the route would pick
    assert any("pstn mode: calls go straight to its trunk" in note for note in found["notes"])


def test_what_cannot_be_traced_is_a_clear_error(tmp_path: Path) -> None:
    folder(tmp_path)
    for args, message in (
        (["+919999999999"], "not declared on any trunk and no route answers for it"),
        (["hello"], "is not a phone number"),
        ([BOT, "--at", "noon"], "--at 'noon' is not a time"),
    ):
        result = reconciler("trace", *args, "--offline", env={}, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_live_state_from_the_sandbox(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    manifests = folder(tmp_path, ledger=False)
    env = environ(sandbox)
    assert apply(manifests, sandbox, env=env).converged
    sid = ledgers.read(manifests / "state" / "demo.json", account="demo", account_sid="demo")
    sid = sid.trunks["bot"].sid
    before = sandbox.stats()["requests"]
    found = trace(tmp_path, BOT, "--at", THURSDAY_NOON, env=env)
    assert sandbox.stats()["requests"] - before == 2  # trunk-maps, then the trunk's numbers
    assert found["live"] == {"read": True, "holder": sid, "mode": "flow", "trunk": "bot"}
    assert found["notes"] == []
    # A hand change at Exotel shows: the DID's mode set to pstn behind the manifests' back.
    [number] = api.get(f"/trunks/{sid}/phone-numbers").json()["response"]
    number_id = number["data"]["id"]
    assert api.put(
        f"/trunks/{sid}/phone-numbers/{number_id}", {"phone_number": BOT, "mode": "pstn"}
    ).is_success
    found = trace(tmp_path, BOT, "--at", THURSDAY_NOON, env=env, code=2)
    assert "live: mode pstn, where the manifests say flow (drift)" in found["notes"]
    # The call follows Exotel, not the manifests: pstn goes straight to the trunk.
    assert (found["drift"], found["mode"], found["trunk"]) == (True, "pstn", "bot")
    # Moved by hand to the contact centre's trunk: the call goes there, and trace says so.
    cc = ledgers.read(manifests / "state" / "demo.json", account="demo", account_sid="demo")
    cc_sid = cc.trunks["cc"].sid
    assert api.delete(f"/trunks/{sid}/phone-numbers", params={"id": number_id}).is_success
    assert api.post(f"/trunks/{cc_sid}/phone-numbers", {"phone_number": BOT}).is_success
    found = trace(tmp_path, BOT, "--at", THURSDAY_NOON, env=env, code=2)
    assert found["live"]["trunk"] == "cc"
    assert found["trunk"] == "cc"
    assert f"live: the DID is on cc ({cc_sid}), not on bot: calls go there" in found["notes"]
    # Without credentials, trace still explains, and says what it could not read.
    text = reconciler("trace", BOT, env={"EXOTEL_API_KEY": ""}, cwd=tmp_path).stdout
    assert "live      not read:" in text


def test_probe_checks_the_destinations_the_call_reaches(tmp_path: Path) -> None:
    need("kamailio", "kamailio")
    certificates = Certificates(tmp_path / "certificates")
    files = certificates.valid
    with kamailio(tmp_path / "kamailio", files.cert, files.key) as server:
        uri = f"{Certificates.HOSTNAME}:{server.tls_port};transport=tls"
        folder(tmp_path, TRUNKS.replace("bot.example.test:5061;transport=tls", uri))
        args = [
            BOT, "--probe", "--offline", "--at", THURSDAY_NIGHT,
            f"--resolve={Certificates.HOSTNAME}:{server.tls_port}:127.0.0.1",
        ]  # fmt: skip
        found = trace(tmp_path, *args, "--ca", str(certificates.ca_pem))
        text = reconciler("trace", *args, "--ca", str(certificates.ca_pem), env={}, cwd=tmp_path)
        untrusted = reconciler("trace", *args, env={}, cwd=tmp_path)
    [destination] = found["destinations"]
    assert destination["probe"]["state"] == "up"
    assert destination["probe"]["sip"]["code"] == 200
    assert text.returncode == 0
    assert f"1. {uri}  priority 0, weight 1 (100%)\n     up: OPTIONS 200 OK in " in text.stdout
    # Verified against the system's CAs, the private CA's certificate is refused: exit 2.
    assert untrusted.returncode == 2
    assert "down: OPTIONS 200 OK" in untrusted.stdout
