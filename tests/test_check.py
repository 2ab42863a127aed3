"""``reconciler check`` against real SIP software on loopback: Kamailio (OPTIONS over TCP
and TLS, with good and bad certificates), SIPp (INVITE outcomes), a closed port, a TCP
server that speaks HTTP, and a name that does not resolve. The CLI runs as a subprocess;
``--resolve`` points the manifests' host names at loopback, as curl's option does.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.estate import write
from tests.sipservers import Certificates, closed_port, kamailio, need, not_sip_server, sipp_uas
from tests.test_plan_cli import reconciler

HOST = Certificates.HOSTNAME  # sbc.example.test: what the valid certificate names
DID = "+918040264208"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Any]:
    """One Kamailio with the valid certificate, shared by the module's tests."""
    need("kamailio", "kamailio")
    files = certificates.valid
    with kamailio(tmp_path_factory.mktemp("kamailio"), files.cert, files.key) as server:
        yield server


def trunk(*uris: str, name: str = "voicebot", numbers: bool = True) -> str:
    lines = [f"- name: {name}", "  account: demo"]
    if numbers:
        lines += ["  phone_numbers:", f'    - number: "{DID}"', "      mode: pstn"]
    lines += ["  destination_uris:", *(f"    - {uri}" for uri in uris)]
    return "\n".join(lines) + "\n"


def check(tmp_path: Path, *args: str, trunks: str, ca: Path | None = None) -> tuple[int, Any]:
    write(tmp_path / "manifests", trunks)
    extra = ["--ca", str(ca)] if ca else []
    result = reconciler("check", "--format", "json", *extra, *args, env={}, cwd=tmp_path)
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def only(document: dict[str, Any]) -> dict[str, Any]:
    [found] = [d for t in document["trunks"] for d in t["destinations"]]
    return found


def messages(found: dict[str, Any]) -> str:
    return " | ".join(f["message"] for f in found["findings"])


def test_a_healthy_tls_and_tcp_destination(tmp_path: Path, good: Any, certificates: Any) -> None:
    uris = (f"{HOST}:{good.tls_port};transport=tls", f"{HOST}:{good.tcp_port};transport=tcp")
    resolve = [f"--resolve={HOST}:{port}:127.0.0.1" for port in (good.tls_port, good.tcp_port)]
    code, document = check(tmp_path, *resolve, trunks=trunk(*uris), ca=certificates.ca_pem)
    assert code == 0, document
    assert document["healthy"] is True
    [report] = document["trunks"]
    assert report["summary"] == "inbound: 2 of 2 destinations answer; priority 0: 2 of 2 up"
    by_transport = {d["uri"].rpartition("=")[2]: d for d in report["destinations"]}
    tls, tcp = by_transport["tls"], by_transport["tcp"]
    assert tls["state"] == tcp["state"] == "up"
    assert tls["tls"]["verified"] is True
    assert tls["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert 360 <= tls["tls"]["days_left"] <= 366
    for found in (tls, tcp):
        assert found["sip"]["code"] == 200
        assert found["sip"]["software"] == "kamailio-test"
        assert found["sip"]["rtt_ms"] > 0
        assert found["resolved_by"] == "--resolve"
        assert found["findings"] == []


def test_the_text_report_reads_in_exotels_order(
    tmp_path: Path, good: Any, certificates: Any
) -> None:
    """Priority first, then weight; each with its share; the exit code says healthy."""
    write(
        tmp_path / "manifests",
        textwrap.dedent(f"""\
            - name: contact
              account: demo
              destination_uris:
                - uri: {HOST}:{good.tls_port};transport=tls
                  priority: 1
                - uri: {HOST}:{good.tcp_port};transport=tcp
                  weight: 1
                - uri: sbc2.example.test:{good.tcp_port};transport=tcp
                  weight: 3
            """),
    )
    resolve = [
        f"--resolve={name}:{port}:127.0.0.1"
        for name in (HOST, "sbc2.example.test")
        for port in (good.tls_port, good.tcp_port)
    ]
    result = reconciler("check", "--ca", str(certificates.ca_pem), *resolve, env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  up")]
    assert [line.split()[1] for line in lines] == [
        f"sbc2.example.test:{good.tcp_port};transport=tcp",
        f"{HOST}:{good.tcp_port};transport=tcp",
        f"{HOST}:{good.tls_port};transport=tls",
    ]
    assert "priority 0, weight 3 (75%)" in lines[0]
    assert "priority 0, weight 1 (25%)" in lines[1]
    assert "priority 1, weight 1 (100%)" in lines[2]
    assert "OPTIONS answered 200 OK" in result.stdout
    assert "3 destinations: 3 up, 0 warnings, 0 down" in result.stdout


def served_with(tmp_path: Path, certificates: Certificates, kind: str) -> tuple[int, Any]:
    """check of one TLS destination: a Kamailio of its own with the ``kind`` certificate."""
    need("kamailio", "kamailio")
    files = getattr(certificates, kind)
    with kamailio(tmp_path / "kamailio", files.cert, files.key) as server:
        code, document = check(
            tmp_path,
            f"--resolve={HOST}:{server.tls_port}:127.0.0.1",
            trunks=trunk(f"{HOST}:{server.tls_port};transport=tls"),
            ca=certificates.ca_pem,
        )
    return code, only(document)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("expired", "certificate has expired"),
        ("wrong_host", "Hostname mismatch"),
        ("untrusted", "unable to get local issuer certificate"),
    ],
)
def test_a_certificate_exotel_would_refuse_is_an_error(
    tmp_path: Path, certificates: Certificates, kind: str, expected: str
) -> None:
    code, found = served_with(tmp_path, certificates, kind)
    assert code == 2
    assert found["state"] == "down"
    assert found["answers"] is False
    assert found["tls"]["verified"] is False
    assert expected in messages(found)
    # The SIP steps ran over an unverified connection, so the report tells the rest.
    assert found["sip"]["code"] == 200


def test_a_certificate_close_to_expiry_is_a_warning(
    tmp_path: Path, certificates: Certificates
) -> None:
    code, found = served_with(tmp_path, certificates, "expiring")
    assert (code, found["state"], found["answers"]) == (2, "warning", True)
    assert found["tls"]["days_left"] < 21
    assert "renew it" in messages(found)


def test_the_system_cas_do_not_trust_a_private_ca(tmp_path: Path, good: Any) -> None:
    """Without --ca, verification is against the system's CAs, as Exotel's would be."""
    code, document = check(
        tmp_path,
        f"--resolve={HOST}:{good.tls_port}:127.0.0.1",
        trunks=trunk(f"{HOST}:{good.tls_port};transport=tls"),
    )
    assert code == 2
    assert "not accepted" in messages(only(document))


def test_what_is_not_a_sip_server(tmp_path: Path) -> None:
    """A closed port, a server that answers HTTP, a name that does not resolve: each
    says which step failed, and the run is over in well under the timeout."""
    port = closed_port()
    with not_sip_server() as http:
        code, document = check(
            tmp_path,
            f"--resolve=closed.example.test:{port}:127.0.0.1",
            f"--resolve=http.example.test:{http.port}:127.0.0.1",
            "--timeout=3",
            trunks=trunk(
                f"closed.example.test:{port};transport=tcp",
                f"http.example.test:{http.port};transport=tcp",
                "nowhere.invalid:5060;transport=tcp",
            ),
        )
    assert code == 2
    found = {d["uri"].split(":")[0]: d for d in document["trunks"][0]["destinations"]}
    assert all(d["state"] == "down" for d in found.values())
    assert "connection refused" in messages(found["closed.example.test"])
    assert "not a SIP server" in messages(found["http.example.test"])
    assert "'HTTP/1.1 400 Bad Request'" in messages(found["http.example.test"])
    assert "does not resolve" in messages(found["nowhere.invalid"])
    assert document["trunks"][0]["summary"].startswith("inbound: 0 of 3 destinations answer")


@pytest.mark.parametrize(
    ("transport", "stage"),
    [("tcp", "waiting for the answer to OPTIONS"), ("tls", "in the TLS handshake")],
)
def test_a_server_that_never_answers_times_out(tmp_path: Path, transport: str, stage: str) -> None:
    """A listener that accepts and never writes (the kernel accepts for it): the probe
    ends at the timeout, and does not wait on the far end to close either."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        code, document = check(
            tmp_path,
            f"--resolve=mute.example.test:{port}:127.0.0.1",
            "--timeout=1",
            "--invite",
            trunks=trunk(f"mute.example.test:{port};transport={transport}"),
        )
        elapsed = time.monotonic() - started
    assert code == 2
    assert f"no answer within 1 s {stage}" in messages(only(document))
    # --invite asked for a call: say that none was made, and why.
    assert f"--invite: no INVITE was sent, since the probe stopped {stage}" in messages(
        only(document)
    )
    assert elapsed < 30  # a hang would meet the subprocess timeout instead


@pytest.mark.parametrize(
    ("scenario", "state", "expected"),
    [
        ("answer_pcma", "up", None),
        ("reject_488", "down", "a codec mismatch"),
        ("ring_forever", "up", "rang (180) without an answer within 2 s; cancelled"),
        ("silent", "down", "no answer to INVITE"),
    ],
)
def test_invite_outcomes(tmp_path: Path, scenario: str, state: str, expected: str | None) -> None:
    need("sipp", "sip-tester")
    with sipp_uas(tmp_path / "sipp", scenario) as uas:
        code, document = check(
            tmp_path,
            "--invite",
            "--timeout=2",
            f"--resolve=uas.example.test:{uas.port}:127.0.0.1",
            trunks=trunk(f"uas.example.test:{uas.port};transport=tcp"),
        )
    found = only(document)
    assert found["state"] == state, found
    assert code == (0 if state == "up" else 2)
    invite = found["invite"]
    assert invite["did"] == DID
    if expected is not None:
        assert expected in messages(found)
    if scenario == "answer_pcma":
        assert (invite["code"], invite["codec"], invite["ended"]) == (200, "PCMA", "hung up")
    if scenario == "reject_488":
        assert (invite["code"], invite["ended"]) == (488, "acknowledged")
    if scenario == "ring_forever":
        assert (invite["provisional"], invite["ended"]) == (180, "cancelled")


def test_invite_offers_pcma_and_pcmu_and_ends_the_call(tmp_path: Path) -> None:
    """What SIPp received: an INVITE with SDP offering PCMA, PCMU and telephone-event, the
    route's headers and the tool's User-Agent; then ACK and BYE."""
    need("sipp", "sip-tester")
    with sipp_uas(tmp_path / "sipp", "answer_pcma") as uas:
        write(
            tmp_path / "manifests",
            trunk(f"uas.example.test:{uas.port};transport=tcp"),
        )
        (tmp_path / "manifests" / "routes.yaml").write_text(
            textwrap.dedent(f"""\
                routes:
                  - did: "{DID}"
                    account: demo
                    default:
                      trunk: voicebot
                      custom_params:
                        X-Campaign: diwali
                """)
        )
        result = reconciler(
            "check",
            "--invite",
            f"--resolve=uas.example.test:{uas.port}:127.0.0.1",
            env={},
            cwd=tmp_path,
        )
    seen = uas.messages.read_text(errors="replace")
    assert result.returncode == 0, result.stdout + result.stderr
    invite = seen[seen.index("INVITE sip:") :]
    assert f"INVITE sip:{DID}@uas.example.test:{uas.port};transport=tcp SIP/2.0" in invite
    assert "m=audio 40000 RTP/AVP 8 0 101" in invite
    assert "a=rtpmap:0 PCMU/8000" in invite
    assert "a=rtpmap:101 telephone-event/8000" in invite
    assert "User-Agent: exotel-reconciler/" in invite
    assert "X-Campaign: diwali" in invite
    assert ";branch=z9hG4bK" in invite
    assert "ACK sip:" in seen
    assert "BYE sip:" in seen
    assert "codec PCMA; hung up" in result.stdout


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    write(tmp_path / "manifests", trunk("sbc.example.test:5061;transport=tls"))
    for args, message in (
        (["--resolve", "sbc.example.test:5061"], "write HOST:PORT:ADDRESS"),
        (["--ca", "missing.pem"], "no such file"),
        (["--trunk", "nope"], "no trunk named nope"),
        (["--timeout", "0"], "greater than zero"),
        (["--timeout", "nan"], "greater than zero"),
        (["--resolve", "sbc.example.test:5061:not-an-ip"], "is not an IP address"),
    ):
        result = reconciler("check", *args, env={}, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_the_scheduled_health_job_reports_what_is_down(
    tmp_path: Path, good: Any, certificates: Certificates
) -> None:
    """drift.yml's health step, run as the runner would: healthy exits 0; a closed port
    exits 0 too (the step succeeds) with status 2 and a report for the health issue."""
    from tests.test_workflows import run_step  # noqa: PLC0415 (its helpers need its fixtures' module)

    # The step runs `reconciler check manifests`; a shim ahead on PATH adds what the
    # loopback needs (host names to 127.0.0.1, the test CA), as a real runner needs none.
    shim = tmp_path / "bin"
    shim.mkdir()
    closed = closed_port()
    extra = " ".join(
        (
            f"--resolve={HOST}:{good.tls_port}:127.0.0.1",
            f"--resolve={HOST}:{closed}:127.0.0.1",
            f"--ca={certificates.ca_pem}",
        )
    )
    (shim / "reconciler").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@" {extra}\n'
    )
    (shim / "reconciler").chmod(0o755)
    path = f"{shim}:{os.environ['PATH']}"
    for uris, status in (
        ([f"{HOST}:{good.tls_port};transport=tls"], "0"),
        ([f"{HOST}:{closed};transport=tcp"], "2"),
    ):
        write(tmp_path / "manifests", trunk(*uris))
        result = run_step(
            "drift.yml", "health", "Check every destination", cwd=tmp_path, env={"PATH": path}
        )
        assert result.returncode == 0, result.stderr
        assert f"status={status}" in (tmp_path / "github_output").read_text().splitlines()[-1]
        report = (tmp_path / "health.md").read_text()
        assert report.startswith("<!-- reconciler-check -->\n### reconciler check: ")
    assert "connection refused" in report
    assert "| DOWN |" in report


EXAMPLE = Path(__file__).parents[1] / "examples" / "check-locally"


def test_the_check_locally_example_is_the_tested_callee_and_works(tmp_path: Path) -> None:
    """examples/check-locally: its SIPp scenario is the one these tests run (apart from
    its comment), and its manifests, pointed at SIPp with --resolve, check up with a call."""
    uncommented = [
        (path.read_text().split("-->", 1)[1])
        for path in (EXAMPLE / "callee.xml", Path(__file__).parent / "sip" / "answer_pcma.xml")
    ]
    assert uncommented[0] == uncommented[1]
    need("sipp", "sip-tester")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    with sipp_uas(tmp_path / "sipp", "answer_pcma") as uas:
        text = (EXAMPLE / "manifests" / "trunk.yaml").read_text()
        (manifests / "trunk.yaml").write_text(text.replace(":5070;", f":{uas.port};"))
        result = reconciler(
            "check", "--resolve", f"sbc.example.test:{uas.port}:127.0.0.1", "--invite",
            env={}, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INVITE to +918040264208: 200 OK, codec PCMA; hung up" in result.stdout
