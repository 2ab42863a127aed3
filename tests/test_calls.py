"""Exotel in a box: calls through what was applied, against real SIP software.

The sandbox runs as a user starts it (``reconciler sandbox --sip-port 0``), its API sets
up a trunk as apply would, and SIPp plays the partner's SBC on loopback: a call placed
with ``POST /_sandbox/calls`` must reach it as Exotel's INVITE would, fail over as
documented, carry media both ways, and leave a record that says what happened.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests import mermaid
from tests.sandboxes import Api, Sandbox, running
from tests.sipservers import Called, Certificates, closed_port, kamailio, sipp_uac, sipp_uas

DID = "+918040264208"
CALLER = "+919876543210"


@contextmanager
def gateway(tmp_path: Path, *resolve: tuple[str, int]) -> Iterator[Sandbox]:
    """A sandbox with its SIP side on, the given destination names pointed at loopback."""
    args = ["--sip-port", "0", "--answer-timeout", "1.5", "--ring-timeout", "3"]
    for host, port in resolve:
        args += ["--resolve", f"{host}:{port}:127.0.0.1"]
    with running(*args, log_path=tmp_path / "sandbox.log") as sandbox:
        yield sandbox


def trunk(sandbox: Sandbox, *destinations: tuple[str, int, int], mode: str | None = None) -> str:
    """A trunk with DID mapped and these (uri, priority, weight) destinations."""
    api = Api(sandbox.http)
    sid = api.create_trunk("blr_bot")
    on = api.trunk(sid)
    on.map(DID, mode)
    items = [{"destination": uri, "priority": p, "weight": w} for uri, p, w in destinations]
    if items:
        added = on.post("destination-uris", {"destinations": items})
        assert added.status_code == 200, added.text
    return sid


def call(sandbox: Sandbox, **body: Any) -> dict[str, Any]:
    """Place a call and wait for its record to say it ended."""
    started = sandbox.http.post("/_sandbox/calls", json={"to": DID, "from": CALLER, **body})
    assert started.status_code == 201, started.text
    sid = started.json()["call_sid"]
    record = sandbox.http.get(f"/_sandbox/calls/{sid}", params={"wait": 30}, timeout=40)
    document: dict[str, Any] = record.json()
    assert document["status"] != "in-progress", document
    return document


def test_an_inbound_call_reaches_the_partner_as_exotel_sends_it(tmp_path: Path) -> None:
    with sipp_uas(tmp_path, "answer_pcma", echo=True) as sbc:
        host = "sbc1.example.com"
        with gateway(tmp_path, (host, sbc.port)) as sandbox:
            sid = trunk(sandbox, (f"{host}:{sbc.port};transport=tcp", 0, 1))
            record = call(sandbox, hangup_after_s=1)
        sent = sbc.messages.read_text(errors="replace")
    assert record["status"] == "completed", record
    [leg] = record["legs"]
    assert leg["outcome"] == "answered"
    assert leg["ended_by"] == "sandbox"
    assert [r["code"] for r in leg["responses"]] == [100, 180, 200]
    # What SIPp received is Exotel's INVITE: DID in the Request-URI, the caller at the
    # account's domain, the trunk's SID, and an offer of PCMA and PCMU.
    assert f"INVITE sip:{DID}@{host}:{sbc.port};transport=tcp SIP/2.0" in sent
    assert f"X-Exotel-TrunkSid: {sid}" in sent
    assert f"X-Exotel-CallSid: {record['call_sid']}" in sent
    assert f"P-Asserted-Identity: <sip:{CALLER}@demo.pstn.exotel.com>" in sent
    assert "m=audio" in sent
    assert "RTP/AVP 8 0 101" in sent
    # Media went both ways: the tone came back from SIPp's echo.
    media = leg["media"]
    assert media["codec"] == "PCMA"
    assert media["packets_sent"] >= 45
    assert media["own_tone_back"] >= 0.9 * media["packets_sent"]
    assert "BYE" in [event["what"] for event in record["events"]]


def test_a_refused_connection_and_a_503_fail_over_to_the_next_destination(
    tmp_path: Path,
) -> None:
    closed = closed_port()
    with (
        sipp_uas(tmp_path, "unavailable_503") as down,
        sipp_uas(tmp_path, "answer_pcma", echo=True) as up,
    ):
        resolve = (
            ("a.example.com", closed),
            ("b.example.com", down.port),
            ("c.example.com", up.port),
        )
        with gateway(tmp_path, *resolve) as sandbox:
            trunk(
                sandbox,
                (f"a.example.com:{closed};transport=tcp", 0, 1),
                (f"b.example.com:{down.port};transport=tcp", 1, 1),
                (f"c.example.com:{up.port};transport=tcp", 2, 1),
            )
            record = call(sandbox, hangup_after_s=0.5)
    outcomes = [(leg["destination"][4:5], leg["outcome"]) for leg in record["legs"]]
    assert outcomes == [("a", "refused"), ("b", "server-error"), ("c", "answered")]
    assert record["status"] == "completed"


def test_busy_ends_the_call_without_failing_over(tmp_path: Path) -> None:
    with sipp_uas(tmp_path, "busy_486") as busy, sipp_uas(tmp_path, "answer_pcma") as spare:
        resolve = (("a.example.com", busy.port), ("b.example.com", spare.port))
        with gateway(tmp_path, *resolve) as sandbox:
            trunk(
                sandbox,
                (f"a.example.com:{busy.port};transport=tcp", 0, 1),
                (f"b.example.com:{spare.port};transport=tcp", 1, 1),
            )
            record = call(sandbox)
    assert record["status"] == "busy"
    assert [leg["outcome"] for leg in record["legs"]] == ["busy"]


def test_ringing_past_the_ring_timeout_is_cancelled_as_no_answer(tmp_path: Path) -> None:
    with sipp_uas(tmp_path, "ring_forever") as ringing:
        with gateway(tmp_path, ("a.example.com", ringing.port)) as sandbox:
            trunk(sandbox, (f"a.example.com:{ringing.port};transport=tcp", 0, 1))
            record = call(sandbox)
        sent = ringing.messages.read_text(errors="replace")
    assert record["status"] == "no-answer", record
    [leg] = record["legs"]
    assert [r["code"] for r in leg["responses"]][-1] == 487
    assert "CANCEL sip:" in sent


def test_a_silent_destination_times_out_and_the_next_answers(tmp_path: Path) -> None:
    with sipp_uas(tmp_path, "silent") as silent, sipp_uas(tmp_path, "answer_pcma") as up:
        resolve = (("a.example.com", silent.port), ("b.example.com", up.port))
        with gateway(tmp_path, *resolve) as sandbox:
            trunk(
                sandbox,
                (f"a.example.com:{silent.port};transport=tcp", 0, 1),
                (f"b.example.com:{up.port};transport=tcp", 1, 1),
            )
            record = call(sandbox, hangup_after_s=0.3)
    assert [leg["outcome"] for leg in record["legs"]] == ["timeout", "answered"]


def test_what_cannot_be_called_says_why(tmp_path: Path) -> None:
    with gateway(tmp_path) as sandbox:
        unmapped = call(sandbox)
        assert unmapped["status"] == "failed"
        assert "not mapped on any trunk" in unmapped["reason"]
        trunk(sandbox, mode="flow")
        flow = call(sandbox)
        assert "mode flow and no flow is set" in flow["reason"]
        bad = sandbox.http.post("/_sandbox/calls", json={"to": "08040264208"})
        assert bad.status_code == 400
        assert "E.164" in bad.json()["error"]
    with running(log_path=tmp_path / "plain.log") as plain:
        off = plain.http.post("/_sandbox/calls", json={"to": DID})
        assert off.status_code == 409
        assert "--sip-port" in off.json()["error"]


# Outbound: the partner's SBC calls the PSTN through the trunk.

PARTNER = "127.0.0.2"  # a loopback alias standing for the partner's public address
PUBLIC = "44.0.1.1"
CALLED = "+919812345678"


@contextmanager
def outbound_gateway(tmp_path: Path) -> Iterator[Sandbox]:
    args = ["--sip-port", "0", "--peer", f"{PARTNER}={PUBLIC}"]
    with running(*args, log_path=tmp_path / "sandbox.log") as sandbox:
        yield sandbox


def outbound_trunk(
    sandbox: Sandbox, *, ip: str | None = PUBLIC, credential: tuple[str, str] | None = None
) -> str:
    api = Api(sandbox.http)
    sid = api.create_trunk("blr_bot")
    on = api.trunk(sid)
    on.map(DID)
    if ip:
        on.whitelist(ip)
    if credential:
        body = {"user_name": credential[0], "password": credential[1]}
        added = on.post("credentials", body)
        assert added.status_code == 200, added.text
    return sid


def call_out(
    tmp_path: Path,
    sandbox: Sandbox,
    *,
    caller: str = DID,
    source: str = PARTNER,
    credential: tuple[str, str] | None = None,
    scenario: str = "call_out",
) -> tuple[Called, dict[str, Any]]:
    called = sipp_uac(
        tmp_path,
        sandbox.sip["tcp"],
        number=CALLED,
        caller=caller,
        domain="demo.pstn.exotel.com",
        source=source,
        credential=credential,
        hold_ms=1000,
        scenario=scenario,
    )
    calls = sandbox.control("GET", "calls")["calls"]
    outbound = [c for c in calls if c["direction"] == "outbound"]
    record = sandbox.control("GET", f"calls/{outbound[-1]['call_sid']}", params={"wait": 10})
    return called, record


def test_a_whitelisted_partner_calls_the_pstn_with_media_both_ways(tmp_path: Path) -> None:
    with outbound_gateway(tmp_path) as sandbox:
        sid = outbound_trunk(sandbox)
        called, record = call_out(tmp_path, sandbox)
    assert called.returncode == 0, called.log
    assert record["status"] == "completed", record
    assert record["trunk_sid"] == sid
    [leg] = record["legs"]
    assert leg["detail"] == "admitted by ip"
    assert [r["code"] for r in leg["responses"]] == [100, 180, 200]
    assert leg["ended_by"] == "partner"
    media = leg["media"]  # the PSTN phone's tone, echoed by the partner (SIPp -rtp_echo)
    assert media["packets_sent"] >= 40
    assert media["own_tone_back"] >= 0.8 * media["packets_sent"]


def test_a_partner_that_is_not_whitelisted_is_refused_with_the_reason(tmp_path: Path) -> None:
    with outbound_gateway(tmp_path) as sandbox:
        outbound_trunk(sandbox)
        called, record = call_out(tmp_path, sandbox, source="127.0.0.3")
    assert "SIP/2.0 403 Forbidden - source 127.0.0.3 is not whitelisted on any trunk" in (
        called.messages
    )
    assert "X-Exotel-ErrorCode: 4001" in called.messages
    assert record["status"] == "failed"


def test_a_caller_id_that_is_not_the_trunks_is_refused(tmp_path: Path) -> None:
    with outbound_gateway(tmp_path) as sandbox:
        outbound_trunk(sandbox)
        called, record = call_out(tmp_path, sandbox, caller="+918000000000")
    assert "403 Forbidden - caller ID +918000000000 is not the alias or a DID of trunk blr_bot" in (
        called.messages
    )
    assert record["status"] == "failed"


def test_digest_credentials_are_challenged_then_checked(tmp_path: Path) -> None:
    secret = ("voice_bot", "s3cret_pw")
    with outbound_gateway(tmp_path) as sandbox:
        outbound_trunk(sandbox, ip=None, credential=secret)
        good, record = call_out(tmp_path, sandbox, source="127.0.0.3", credential=secret)
        wrong = ("voice_bot", "not_it")
        bad, refused = call_out(tmp_path, sandbox, source="127.0.0.3", credential=wrong)
        state = sandbox.state()
    assert "SIP/2.0 407 Proxy Authentication Required" in good.messages
    assert 'Proxy-Authenticate: Digest realm="demo.pstn.exotel.com"' in good.messages
    assert good.returncode == 0, good.log
    assert record["status"] == "completed"
    assert record["legs"][0]["detail"] == "admitted by digest as voice_bot"
    assert "403 Forbidden - wrong password for voice_bot" in bad.messages
    assert refused["status"] == "failed"
    assert "s3cret_pw" not in str(record) + str(refused) + str(state)
    assert "ha1" not in str(state)


def test_a_busy_pstn_number_answers_486(tmp_path: Path) -> None:
    with outbound_gateway(tmp_path) as sandbox:
        outbound_trunk(sandbox)
        sandbox.control("PUT", f"pstn/{CALLED}", json={"behaviour": "busy"})
        called, record = call_out(tmp_path, sandbox)
    assert "SIP/2.0 486 Busy Here" in called.messages
    assert record["status"] == "busy"


# Flows: the Dynamic URL and the handoff, answered by reconciler serve after an apply.

FLOW_MANIFESTS = """\
accounts:
  demo:
    sid: demo
    api_key: ${{EXOTEL_API_KEY}}
    api_token: ${{EXOTEL_API_TOKEN}}
trunks:
  - name: bot
    account: demo
    phone_numbers: [{{number: "{did}", mode: flow}}]
    destination_uris: ["bot.example.com:{bot};transport=tcp"]
  - name: agents
    account: demo
    phone_numbers: ["+912247788100"]
    destination_uris: ["agents.example.com:{agents};transport=tcp"]
routes:
  - did: "{did}"
    account: demo
    default:
      trunk: bot
      custom_params: {{X-Tenant: acme}}
      record: true
    handoff:
      agents: {{available: true}}
      otherwise: 302
"""


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, timeout=120,
        check=False,
    )  # fmt: skip


@contextmanager
def serving(folder: Path, log: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving routes on "), log.read_text()
        yield line.split()[3]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_apply_then_a_call_runs_the_flow_the_route_and_the_handoff(tmp_path: Path) -> None:
    """The whole path as a team runs it: apply the manifests to the sandbox, serve their
    routes, point the DID's flow at serve, and call: the Dynamic URL sends the call to the
    bot's trunk with the route's header; the bot hangs up; the Passthru handoff says 200;
    the agents' trunk answers."""
    with (
        sipp_uas(tmp_path, "bot_hangs_up") as bot,
        sipp_uas(tmp_path, "answer_pcma", echo=True) as agents,
    ):
        resolve = (("bot.example.com", bot.port), ("agents.example.com", agents.port))
        with gateway(tmp_path, *resolve) as sandbox:
            folder = tmp_path / "manifests"
            folder.mkdir()
            (folder / "all.yaml").write_text(
                FLOW_MANIFESTS.format(did=DID, bot=bot.port, agents=agents.port)
            )
            env = {
                "EXOTEL_BASE_URL": sandbox.url,
                "RECONCILER_ALLOWED_HOSTS": urlsplit(sandbox.url).netloc,
                "EXOTEL_API_KEY": "demo_key",
                "EXOTEL_API_TOKEN": "demo_token",
            }
            applied = cli("apply", "manifests", "--auto-approve", cwd=tmp_path, env=env)
            assert applied.returncode == 0, applied.stderr
            listed = cli("state", "list", "manifests", "--format", "json", cwd=tmp_path, env=env)
            sids = {row["trunk"]: row["sid"] for row in json.loads(listed.stdout)}
            with serving(folder, tmp_path / "serve.log") as routes:
                flow = {
                    "connect": {"url": f"{routes}/connect"},
                    "passthru": {"url": f"{routes}/handoff", "then": {"trunk": sids["agents"]}},
                }
                sandbox.control("PUT", f"flows/{DID}", json=flow)
                record = call(sandbox, hangup_after_s=1)
        to_bot = bot.messages.read_text(errors="replace")
    assert record["status"] == "completed", record
    kinds = [(x["kind"], x["status"]) for x in record["exchanges"]]
    assert kinds == [("dynamic_url", 200), ("passthru", 200)]
    dynamic = record["exchanges"][0]
    assert dynamic["query"]["CallTo"] == "08040264208"  # as Exotel writes numbers
    assert dynamic["answer"]["destination"] == {"trunk": sids["bot"]}
    bot_leg, agent_leg = record["legs"]
    assert bot_leg["ended_by"] == "partner"
    assert bot_leg["headers"]["X-Tenant"] == "acme"
    assert "X-Tenant: acme" in to_bot
    assert f"X-Exotel-TrunkSid: {sids['bot']}" in to_bot
    assert agent_leg["outcome"] == "answered"
    assert agent_leg["ended_by"] == "sandbox"
    assert record["trunk_name"] == "agents"
    assert record["recording"] == "single"


class _Webhook(http.server.BaseHTTPRequestHandler):
    """A customer's Dynamic URL that breaks Exotel's rules: four custom headers."""

    def do_GET(self) -> None:
        body = json.dumps(
            {"destination": {"trunk": "nowhere"}, "custom_params": "X-A=1&X-B=2&X-C=3&X-D=4"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def test_a_dynamic_url_answer_that_breaks_the_rules_fails_the_call_and_says_why(
    tmp_path: Path,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with gateway(tmp_path) as sandbox:
            trunk(sandbox, mode="flow")
            url = f"http://127.0.0.1:{server.server_address[1]}/connect"
            sandbox.control("PUT", f"flows/{DID}", json={"connect": {"url": url}})
            record = call(sandbox)
            refused = sandbox.http.put(f"/_sandbox/flows/{DID}", json={"connect": {}})
    finally:
        server.shutdown()
    assert record["status"] == "failed"
    [asked] = record["exchanges"]
    assert asked["problems"] == ["4 custom headers: at most 3"]
    assert record["legs"] == []
    assert refused.status_code == 400
    assert "exactly one of trunk" in refused.json()["error"]


PSTN_MANIFESTS = """\
accounts:
  demo:
    sid: demo
    api_key: ${{EXOTEL_API_KEY}}
    api_token: ${{EXOTEL_API_TOKEN}}
trunks:
  - name: blr_bot
    account: demo
    phone_numbers: ["{did}"]
    destination_uris: ["sbc.example.com:{port};transport=tcp"]
"""


def test_reconciler_call_after_apply_prints_the_ladder_and_draws_it(tmp_path: Path) -> None:
    with (
        sipp_uas(tmp_path, "answer_pcma", echo=True) as sbc,
        gateway(tmp_path, ("sbc.example.com", sbc.port)) as sandbox,
    ):
        folder = tmp_path / "manifests"
        folder.mkdir()
        (folder / "all.yaml").write_text(PSTN_MANIFESTS.format(did=DID, port=sbc.port))
        env = {
            "EXOTEL_BASE_URL": sandbox.url,
            "RECONCILER_ALLOWED_HOSTS": urlsplit(sandbox.url).netloc,
            "EXOTEL_API_KEY": "demo_key",
            "EXOTEL_API_TOKEN": "demo_token",
        }
        applied = cli("apply", "manifests", "--auto-approve", cwd=tmp_path, env=env)
        assert applied.returncode == 0, applied.stderr
        said = cli("call", DID, "manifests", "--hangup-after", "1", cwd=tmp_path, env=env)
        drawn = cli(
            "call", DID, "manifests", "--hangup-after", "0.5", "--format", "markdown",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert said.returncode == 0, said.stderr
    lines = said.stdout.splitlines()
    assert ": completed" in lines[0]
    assert any("Exotel -> sbc.example.com" in line and "INVITE" in line for line in lines)
    assert any("RTP PCMA both ways" in line for line in lines)
    assert "own tone back" in said.stdout
    assert drawn.returncode == 0, drawn.stderr
    block = drawn.stdout.split("```mermaid\n")[1].split("```")[0]
    [rendered] = mermaid.render([block], tmp_path / "mermaid")
    assert rendered["ok"], rendered.get("error")
    assert "sbc.example.com" in rendered["svg"]


def test_reconciler_call_refuses_exotel_itself(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(PSTN_MANIFESTS.format(did=DID, port=5061))
    env = {"EXOTEL_BASE_URL": "", "EXOTEL_API_KEY": "k", "EXOTEL_API_TOKEN": "t"}
    refused = cli("call", DID, "manifests", cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert "talks to Exotel itself (api.in.exotel.com)" in refused.stderr
    assert "reconciler trace +918040264208" in refused.stderr
    assert "Traceback" not in refused.stderr


# The Calls API: connect a customer to a flow.

CUSTOMER = "09812345678"  # as the Calls API takes numbers: 0 and ten digits


class _Callbacks(http.server.BaseHTTPRequestHandler):
    """A customer's StatusCallback URL: remembers what it was POSTed."""

    received: list[dict[str, str]] = []  # noqa: RUF012 (the test reads it)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length).decode()
        kind = self.headers.get("Content-Type", "")
        if kind.startswith("multipart/form-data"):
            fields = dict(re.findall(r'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', raw))
        else:
            fields = dict(parse_qsl(raw, keep_blank_values=True))
        type(self).received.append(fields)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_the_calls_api_connects_a_customer_to_a_flow(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Callbacks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_address[1]}/status"
    try:
        with (
            sipp_uas(tmp_path, "answer_pcma", echo=True) as sbc,
            gateway(tmp_path, ("sbc.example.com", sbc.port)) as sandbox,
        ):
            sid = trunk(sandbox, (f"sbc.example.com:{sbc.port};transport=tcp", 0, 1))
            sandbox.control("PUT", "apps/12345", json={"connect": {"trunk": sid}})
            form = {
                "From": CUSTOMER,
                "CallerId": "08040264208",
                "Url": "http://my.exotel.com/demo/exoml/start_voice/12345",
                "CallType": "trans",
                "TimeLimit": "2",
                "StatusCallback": callback,
            }
            started = sandbox.http.post("/v1/Accounts/demo/Calls/connect.json", data=form)
            assert started.status_code == 200, started.text
            first = started.json()["Call"]
            assert first["Status"] == "in-progress"
            assert first["Direction"] == "outbound-api"
            assert first["From"] == CUSTOMER
            assert first["Uri"] == f"/v1/Accounts/demo/Calls/{first['Sid']}.json"
            record = sandbox.control("GET", f"calls/{first['Sid']}", params={"wait": 30})
            details = sandbox.http.get(f"/v1/Accounts/demo/Calls/{first['Sid']}.json").json()
            xml = sandbox.http.get(f"/v1/Accounts/demo/Calls/{first['Sid']}").text
            missing = sandbox.http.post("/v1/Accounts/demo/Calls/connect.json", data={})
            other = sandbox.http.post(
                "/v1/Accounts/demo/Calls/connect.json", data={**form, "Url": "http://x/y"}
            )
            sandbox.control("PUT", "pstn/+919812345678", json={"behaviour": "busy"})
            busy = sandbox.http.post("/v1/Accounts/demo/Calls/connect.json", data=form).json()
            busy_record = sandbox.control(
                "GET", f"calls/{busy['Call']['Sid']}", params={"wait": 10}
            )
        sent = sbc.messages.read_text(errors="replace")
    finally:
        server.shutdown()
    assert record["status"] == "completed", record
    assert details["Call"]["Status"] == "completed"
    assert isinstance(details["Call"]["Duration"], int)
    assert "<TwilioResponse>" in xml
    assert "<Status>completed</Status>" in xml
    # The flow's Connect applet dialled the trunk: the customer as the caller, the
    # ExoPhone as the number called.
    assert "INVITE sip:+918040264208@sbc.example.com" in sent
    assert "P-Asserted-Identity: <sip:+919812345678@" in sent
    assert missing.status_code == 400
    assert "From, CallerId, Url" in missing.json()["RestException"]["Message"]
    assert other.status_code == 400
    assert busy_record["status"] == "busy"
    statuses = [fields.get("Status") for fields in _Callbacks.received]
    assert "completed" in statuses
    assert "busy" in statuses


def test_the_calls_api_answers_what_it_does_not_serve_as_exotels_v1_api(tmp_path: Path) -> None:
    with gateway(tmp_path) as sandbox:
        listed = sandbox.http.get("/v1/Accounts/demo/Calls")
        unknown = sandbox.http.get("/v1/Accounts/demo/Calls/nope.json")
        stranger = sandbox.http.get("/v1/Accounts/demo/Calls/nope.json", auth=("demo_key", "wrong"))
    assert listed.status_code == 404
    assert "<RestException>" in listed.text
    assert unknown.json()["RestException"]["Message"] == "no call nope in account demo"
    assert stranger.status_code == 401


def test_over_tls_through_kamailio_as_the_partners_sbc(tmp_path: Path) -> None:
    """Kamailio terminates TLS in front of SIPp, as a partner's SBC would: the sandbox
    verifies its certificate, follows its Record-Route for ACK and BYE, and the call
    completes with media both ways."""
    certificates = Certificates(tmp_path / "certs")
    host = Certificates.HOSTNAME
    with (
        sipp_uas(tmp_path, "answer_pcma", echo=True) as sbc,
        kamailio(
            tmp_path,
            certificates.valid.cert,
            certificates.valid.key,
            relay_to=(sbc.host, sbc.port),
        ) as proxy,
        running(
            "--sip-port", "0", "--sip-ca", str(certificates.ca_pem),
            "--resolve", f"{host}:{proxy.tls_port}:127.0.0.1",
            log_path=tmp_path / "sandbox.log",
        ) as sandbox,
    ):  # fmt: skip
        trunk(sandbox, (f"{host}:{proxy.tls_port};transport=tls", 0, 1))
        record = call(sandbox, hangup_after_s=1)
    seen = sbc.messages.read_text(errors="replace")  # SIPp has stopped: all written
    assert record["status"] == "completed", record
    [leg] = record["legs"]
    assert leg["transport"] == "tls"
    assert leg["ended_by"] == "sandbox"
    assert leg["media"]["own_tone_back"] > 0
    assert "ACK sip:" in seen  # the ACK and the BYE reached SIPp through Kamailio's
    assert "BYE sip:" in seen  # route set
    assert "Record-Route:" in seen


class _Handoff(http.server.BaseHTTPRequestHandler):
    """A Passthru URL that says no (302, as serve does outside hours), and a Dynamic URL
    at /connect that is down (503), to send Exotel to the fallback."""

    asked: list[str] = []  # noqa: RUF012 (the test reads it)

    def do_GET(self) -> None:
        type(self).asked.append(self.path.partition("?")[0])
        code = 503 if self.path.startswith("/connect") else 302
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def _bot_call(tmp_path: Path, flow_for: Callable[[str, str, str], dict[str, Any]]) -> Any:
    """A call to a DID in mode flow whose bot hangs up, with the flow ``flow_for(base,
    bot trunk, agents trunk)`` against a _Handoff server at ``base``."""
    _Handoff.asked.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handoff)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with (
            sipp_uas(tmp_path, "bot_hangs_up") as bot,
            gateway(tmp_path, ("bot.example.com", bot.port)) as sandbox,
        ):
            sid = trunk(sandbox, (f"bot.example.com:{bot.port};transport=tcp", 0, 1), mode="flow")
            agents = Api(sandbox.http).create_trunk("agents")
            sandbox.control("PUT", f"flows/{DID}", json=flow_for(base, sid, agents))
            return call(sandbox, hangup_after_s=3)
    finally:
        server.shutdown()


def test_a_down_dynamic_url_is_followed_by_its_fallback(tmp_path: Path) -> None:
    record = _bot_call(
        tmp_path,
        lambda base, sid, agents: {
            "connect": {"url": f"{base}/connect", "fallback_url": f"{base}/static?trunk={sid}"},
            "passthru": {"url": f"{base}/handoff", "then": {"trunk": agents}},
        },
    )
    # The fallback answered 302 too (not a Dynamic URL answer): the call fails there.
    assert [x["kind"] for x in record["exchanges"]] == ["dynamic_url", "fallback_url"]
    assert record["status"] == "failed"
    assert "gave no usable answer" in record["reason"]
    assert _Handoff.asked == ["/connect", "/static"]


def test_a_302_handoff_hangs_up_after_the_bot(tmp_path: Path) -> None:
    record = _bot_call(
        tmp_path,
        lambda base, sid, agents: {
            "connect": {"trunk": sid},
            "passthru": {"url": f"{base}/handoff", "then": {"trunk": agents}},
        },
    )
    assert record["status"] == "completed"
    assert "the handoff answered 302: hang up" in record["reason"]
    assert [x["kind"] for x in record["exchanges"]] == ["passthru"]
    assert len(record["legs"]) == 1  # no agent was called


def test_the_tls_listener_takes_sip_with_the_sandboxs_certificate(tmp_path: Path) -> None:
    certificates = Certificates(tmp_path / "certs")
    cert, key = certificates.valid.cert, certificates.valid.key
    args = ["--certfile", str(cert), "--keyfile", str(key), "--sip-tls-port", "0"]
    with running(*args, log_path=tmp_path / "sandbox.log", verify=False) as sandbox:
        host, port = sandbox.sip["tls"]
        context = certificates.client_context()
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=Certificates.HOSTNAME) as tls,
        ):
            tls.sendall(
                b"OPTIONS sip:ping@sbc SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKx\r\n"
                b"From: <sip:a@b>;tag=1\r\nTo: <sip:ping@sbc>\r\nCall-ID: ping\r\n"
                b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            answer = tls.recv(4096).decode()
    assert answer.startswith("SIP/2.0 200 OK\r\n")
    refused = subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", "--sip-tls-port", "0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "--sip-tls-port needs --certfile" in refused.stderr


def test_options_and_bodies_that_cannot_work_are_refused_and_say_why(tmp_path: Path) -> None:
    def sandbox(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", *args],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    private = sandbox("--sip-port", "0", "--peer", "127.0.0.2=10.0.0.1")
    assert private.returncode == 1
    assert "10.0.0.1 is not a public address" in private.stderr
    named = sandbox("--sip-port", "0", "--resolve", "sbc.example.com:5070:not-an-ip")
    assert "ADDRESS an IP address" in named.stderr
    absent = sandbox("--sip-port", "0", "--sip-ca", str(tmp_path / "nowhere.pem"))
    assert absent.returncode == 1
    assert "--sip-ca" in absent.stderr
    assert "no such file" in absent.stderr
    with gateway(tmp_path) as running_sandbox:
        http = running_sandbox.http
        bad_timeout = http.put(
            f"/_sandbox/flows/{DID}",
            json={
                "connect": {"trunk": "x"},
                "passthru": {"url": "http://h/", "then": {"trunk": "y"}, "timeout_s": "a"},
            },
        )
        assert "passthru.timeout_s must be" in bad_timeout.json()["error"]
        number = http.put(f"/_sandbox/flows/{DID}", json={"connect": {"trunk": 123}})
        assert "must be a trunk SID" in number.json()["error"]
        national = http.put("/_sandbox/flows/08040264208", json={"connect": {"trunk": "x"}})
        assert "+918040264208?" in national.json()["error"]
        warned = http.put(f"/_sandbox/flows/{DID}", json={"connect": {"trunk": "trnope"}})
        assert warned.status_code == 200
        assert any("trnope is not a trunk" in w for w in warned.json()["warnings"])
        assert any("not mapped" in w for w in warned.json()["warnings"])
        assert http.delete(f"/_sandbox/flows/{DID}").status_code == 200
        assert http.delete(f"/_sandbox/flows/{DID}").status_code == 404
        as_json = http.post(
            "/v1/Accounts/demo/Calls/connect.json", json={"From": CUSTOMER, "CallerId": "x"}
        )
        assert as_json.status_code == 415
        assert "send form fields" in as_json.json()["RestException"]["Message"]


def test_the_caller_plays_a_wav_file_and_hears_it_back(tmp_path: Path) -> None:
    noise = random.Random(5)
    sound = tmp_path / "hello.wav"
    with wave.open(str(sound), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(struct.pack("<4000h", *(noise.randint(-8000, 8000) for _ in range(4000))))
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(b"\0\0\0\0" * 100)
    with (
        sipp_uas(tmp_path, "answer_pcma", echo=True) as sbc,
        gateway(tmp_path, ("sbc.example.com", sbc.port)) as sandbox,
    ):
        trunk(sandbox, (f"sbc.example.com:{sbc.port};transport=tcp", 0, 1))
        record = call(sandbox, hangup_after_s=1, play=str(sound))
        refused = sandbox.http.post("/_sandbox/calls", json={"to": DID, "play": str(stereo)})
    media = record["legs"][0]["media"]
    assert media["packets_sent"] >= 45
    assert media["own_tone_back"] >= 0.9 * media["packets_sent"]
    assert refused.status_code == 400
    assert "must be 8000 Hz, mono, 16-bit PCM" in refused.json()["error"]


def test_a_tls_leg_carries_srtp_with_sdes_keys(tmp_path: Path) -> None:
    """Over TLS the sandbox offers SRTP with an SDES key, as Exotel does; when the far end
    answers RTP/SAVP with its key, the media is SRTP (libsrtp) both ways. SIPp echoes the
    sealed packets, which the sandbox opens again with its own key."""
    certificates = Certificates(tmp_path / "certs")
    host = Certificates.HOSTNAME
    with (
        sipp_uas(tmp_path, "answer_srtp", echo=True) as sbc,
        kamailio(
            tmp_path, certificates.valid.cert, certificates.valid.key, relay_to=(sbc.host, sbc.port)
        ) as proxy,
        running(
            "--sip-port", "0", "--sip-ca", str(certificates.ca_pem),
            "--resolve", f"{host}:{proxy.tls_port}:127.0.0.1",
            log_path=tmp_path / "sandbox.log",
        ) as sandbox,
    ):  # fmt: skip
        trunk(sandbox, (f"{host}:{proxy.tls_port};transport=tls", 0, 1))
        record = call(sandbox, hangup_after_s=1)
    seen = sbc.messages.read_text(errors="replace")
    assert "RTP/SAVP 8 0 101" in seen
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in seen
    media = record["legs"][0]["media"]
    assert media["srtp"] is True
    assert media["own_tone_back"] >= 0.9 * media["packets_sent"]
    assert "SRTP PCMA both ways" in [event["what"] for event in record["events"]]


def test_an_srtp_offer_from_a_partner_gets_srtp(tmp_path: Path) -> None:
    """A partner offering RTP/SAVP with an SDES key gets an SRTP answer with the
    sandbox's own key, and the PSTN phone's media is sealed (SIPp echoes it unopened)."""
    with outbound_gateway(tmp_path) as sandbox:
        outbound_trunk(sandbox)
        called, record = call_out(tmp_path, sandbox, scenario="call_out_srtp")
    assert called.returncode == 0, called.log
    answer = called.messages.split("SIP/2.0 200 OK")[1]
    assert "RTP/SAVP 8" in answer
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in answer
    media = record["legs"][0]["media"]
    assert media["srtp"] is True
    assert media["own_tone_back"] >= 0.8 * media["packets_sent"]


def test_the_gateway_survives_what_is_not_sip_and_answers_what_it_can(tmp_path: Path) -> None:
    def exchange(host: str, port: int, data: bytes) -> bytes:
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(data)
            raw.settimeout(2)
            try:
                return raw.recv(4096)
            except TimeoutError:
                return b""

    with gateway(tmp_path) as sandbox:
        host, port = sandbox.sip["tcp"]
        exchange(host, port, b"\x16\x03\x01 not sip at all\r\n\r\n")
        exchange(host, port, b"OPTIONS sip:x SIP/2.0\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")
        exchange(host, port, b"INVITE sip:x SIP/2.0\r\nContent-Length: \xc2\xb2\r\n\r\n")
        headless = exchange(host, port, b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        stray = exchange(
            host,
            port,
            b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKa\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: nobody\r\n"
            b"CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        alive = exchange(
            host,
            port,
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKb\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: ping\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        )
    assert headless.startswith(b"SIP/2.0 400 Bad Request - Call-ID, CSeq and Via are required")
    assert stray.startswith(b"SIP/2.0 481 ")
    assert alive.startswith(b"SIP/2.0 200 OK")
    assert "Traceback" not in (tmp_path / "sandbox.log").read_text()
