"""The rendered Kamailio configuration, run: a real Kamailio loads what ``reconciler
render-partner`` wrote (run as a subprocess, as CI runs it) and carries calls both ways
between the sandbox's SIP side, playing Exotel, and SIPp, playing the partner's bot.

The partner's own ``kamailio.cfg`` is ``tests/sip/kamailio_partner.cfg``; the rendered
folder is deployed beside it as ``exotel/``, as docs/partners/kamailio.md says. The
trunk is applied to the sandbox from the same manifests, so both ends come from one
source. Exotel's signalling address is the loopback the sandbox calls from (127.0.0.1);
the partner's bot calls from another loopback address (127.0.0.2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.estate import PASSWORD, environ
from tests.sandboxes import Api, Sandbox, running
from tests.sipservers import (
    HOST,
    SIP_DIR,
    Certificates,
    Sipp,
    _free_ports,
    _kamailio_modules,
    _stop,
    _tail,
    _wait_for_ports,
    missing,
    need,
    sipp_uac,
    sipp_uas,
)

DID, OTHER_DID, CALLED = "+918040264208", "+918040264209", "+919812345678"
SBC = "sbc.example.com"  # the trunk's destination: the partner's Kamailio
BOT_SIDE = "127.0.0.2"  # where the partner's own side (SIPp) calls from
USER = "bot_user"

MANIFESTS = """\
accounts:
  demo:
    sid: demo
    api_key: ${{EXOTEL_API_KEY}}
    api_token: ${{EXOTEL_API_TOKEN}}
    partner: edge
    signalling:
      host: 127.0.0.1
      tcp_port: {tcp_port}
      tls_port: {tls_port}
      addresses: [127.0.0.1]
partners:
  edge:
    platform: kamailio
trunks:
  - name: blr_bot
    account: demo
    phone_numbers: ["{did}", "{other}"]
    destination_uris: ["{sbc}:{port};transport=tcp"]
    alias: "{did}"
    credentials:
      - username: {user}
        password: ${{SIP_PASSWORD}}
    partner: {{name: edge, transport: {transport}}}
"""


def reconciler(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, timeout=120,
        check=False,
    )  # fmt: skip


def manifests(
    folder: Path, *, tcp_port: int, kamailio_port: int, tls_port: int = 443, transport: str = "tcp"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = MANIFESTS.format(
        tcp_port=tcp_port,
        tls_port=tls_port,
        did=DID,
        other=OTHER_DID,
        sbc=SBC,
        port=kamailio_port,
        user=USER,
        transport=transport,
    )
    (folder / "all.yaml").write_text(text)
    return folder


def render(work: Path) -> Path:
    """``reconciler render-partner`` as CI runs it; the folder of partner edge."""
    done = reconciler("render-partner", "manifests", "--output", "partner-config", cwd=work, env={})
    assert done.returncode == 0, done.stderr
    assert "partner-config/edge/exotel.cfg: written (new)" in done.stdout
    return work / "partner-config" / "edge"


def need_modules(*, tls: bool) -> None:
    """Skip (fail with RECONCILER_REQUIRE_TOOLS) without Kamailio or the modules used."""
    need("kamailio", "kamailio")
    modules = _kamailio_modules()
    if modules is None or not (modules / "uac.so").exists():
        missing("Kamailio's modules are not installed (Debian package kamailio)")
    if tls and not (modules / "tls.so").exists():
        missing("Kamailio's tls.so is not installed (Debian package kamailio-tls-modules)")


@contextmanager
def partner_kamailio(
    directory: Path,
    rendered: Path,
    *,
    port: int,
    bot: tuple[str, int] = ("127.0.0.1", 9),
    password: str | None = PASSWORD,
    tls: tuple[Path, int] | None = None,
) -> Iterator[Path]:
    """The partner's Kamailio on loopback ``port`` (TCP): its own kamailio.cfg, and the
    rendered folder deployed beside it as exotel/; ``password`` is SIP_PASSWORD in its
    environment (None: unset); ``tls``: a folder of TLS profiles and a TLS port (Kamailio
    sends TLS only from a TLS socket of its own). Yields its log."""
    need_modules(tls=tls is not None)
    directory.mkdir(parents=True)
    shutil.copy(SIP_DIR / "kamailio_partner.cfg", directory / "kamailio.cfg")
    shutil.copytree(rendered, directory / "exotel")
    env = {key: value for key, value in os.environ.items() if key != "SIP_PASSWORD"}
    if password is not None:
        env["SIP_PASSWORD"] = password
    log = directory / "kamailio.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                "kamailio", "-f", str(directory / "kamailio.cfg"),
                "-A", f'EXOTEL_DIR="{directory / "exotel"}/"',
                "-A", f'BOT="sip:{bot[0]}:{bot[1]};transport=tcp"',
                *(["-A", "WITH_TLS", "-A", f'TLS_CONFIG="{tls[0]}"'] if tls else []),
                "-l", f"tcp:{HOST}:{port}",
                *(["-l", f"tls:{HOST}:{tls[1]}"] if tls else []),
                "-DD", "-E", "-m", "16", "-M", "4",
                "-Y", str(directory), "-P", str(directory / "kamailio.pid"), "-w", str(directory),
            ],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        if not _wait_for_ports(process, (port,)):
            raise RuntimeError(f"kamailio did not start:\n{_tail(log)}")
        yield log
    finally:
        _stop(process)


@dataclass(frozen=True)
class Edge:
    """Both ends, from one manifest folder: the trunk applied to the sandbox, the partner's
    Kamailio running on what render-partner wrote, and the bot behind it."""

    work: Path
    sandbox: Sandbox
    bot: Sipp
    port: int  # Kamailio's
    log: Path  # Kamailio's
    rendered: Path


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    need("sipp", "sip-tester")
    need("kamailio", "kamailio")
    # Kamailio's port is the trunk's destination, which the sandbox resolves from its start.
    (port,) = _free_ports(1)
    with (
        sipp_uas(tmp_path, "answer_pcma", echo=True) as bot,
        running(
            "--sip-port", "0", "--resolve", f"{SBC}:{port}:{HOST}",
            log_path=tmp_path / "sandbox.log",
        ) as sandbox,
    ):  # fmt: skip
        work = tmp_path / "repo"
        manifests(work / "manifests", tcp_port=sandbox.sip["tcp"][1], kamailio_port=port)
        applied = reconciler("apply", "manifests", "--auto-approve", cwd=work, env=environ(sandbox))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        rendered = render(work)
        with partner_kamailio(
            tmp_path / "kamailio", rendered, port=port, bot=(bot.host, bot.port)
        ) as log:
            yield Edge(work, sandbox, bot, port, log, rendered)


def outbound(sandbox: Sandbox) -> dict[str, Any]:
    calls = [c for c in sandbox.control("GET", "calls")["calls"] if c["direction"] == "outbound"]
    record: dict[str, Any] = sandbox.control(
        "GET", f"calls/{calls[-1]['call_sid']}", params={"wait": 10}
    )
    return record


def kamailio_check(deployed: Path, rendered: Path, *, tls: bool) -> str:
    """``kamailio -c`` on the partner's kamailio.cfg with ``rendered`` deployed beside it."""
    need_modules(tls=tls)
    deployed.mkdir(parents=True)
    shutil.copy(SIP_DIR / "kamailio_partner.cfg", deployed / "kamailio.cfg")
    shutil.copytree(rendered, deployed / "exotel")
    checked = subprocess.run(
        [
            "kamailio", "-c", "-f", str(deployed / "kamailio.cfg"),
            "-A", f'EXOTEL_DIR="{deployed / "exotel"}/"',
            "-A", 'BOT="sip:127.0.0.1:9;transport=tcp"',
            *(["-A", "WITH_TLS", "-A", f'TLS_CONFIG="{rendered / "tls.cfg"}"'] if tls else []),
            "-l", f"tcp:{HOST}:5060",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    said = checked.stdout + checked.stderr
    assert checked.returncode == 0, said
    assert "config file ok, exiting..." in said
    assert "ERROR" not in said
    return said


def test_kamailio_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    """kamailio -c: the rendered exotel.cfg parses within the partner's kamailio.cfg, for
    TCP and for TLS (with the tls module), and so does the golden estate's (several
    trunks, two accounts, Exotel's proxy by host name)."""
    need("kamailio", "kamailio")
    for transport in ("tcp", "tls"):
        work = tmp_path / transport
        manifests(work / "manifests", tcp_port=5070, kamailio_port=5061, transport=transport)
        rendered = render(work)
        assert ("tls.cfg" in os.listdir(rendered)) == (transport == "tls")
        kamailio_check(work / "etc", rendered, tls=transport == "tls")
    golden = Path(__file__).parent / "golden" / "partners" / "expected" / "blr_kamailio"
    kamailio_check(tmp_path / "golden", golden, tls=True)


def test_a_call_from_exotel_reaches_the_bot_through_the_rendered_kamailio(edge: Edge) -> None:
    started = edge.sandbox.http.post(
        "/_sandbox/calls", json={"to": DID, "from": "+919876543210", "hangup_after_s": 1}
    )
    assert started.status_code == 201, started.text
    sid = started.json()["call_sid"]
    record = edge.sandbox.control("GET", f"calls/{sid}", params={"wait": 30})
    log = edge.log.read_text(errors="replace")
    assert record["status"] == "completed", (record, log[-3000:])
    [leg] = record["legs"]
    assert leg["outcome"] == "answered"
    assert leg["destination"] == f"sip:{SBC}:{edge.port};transport=tcp"
    assert leg["media"]["own_tone_back"] > 0  # media both ways, straight to the bot
    assert f"from Exotel to {DID} on trunk blr_bot: to the bot" in log
    # The dispatcher list and the permissions file were loaded, with Exotel's address.
    assert "ERROR" not in log


def test_a_call_out_is_admitted_with_the_password_from_kamailios_environment(
    edge: Edge, tmp_path: Path
) -> None:
    """The bot calls the PSTN with a caller ID of its own (1000): Kamailio shows the
    trunk's alias instead, sends the call to Exotel's proxy from its dispatcher list, and
    answers Exotel's 407 with the digest credential whose password it reads from
    SIP_PASSWORD, which no rendered file holds."""
    called = sipp_uac(
        tmp_path,
        (HOST, edge.port),
        number=CALLED,
        caller="1000",
        domain=SBC,
        source=BOT_SIDE,
        hold_ms=500,
    )
    record = outbound(edge.sandbox)
    assert called.returncode == 0, (called.log, edge.log.read_text()[-3000:])
    assert record["status"] == "completed", record
    assert record["trunk_name"] == "blr_bot"
    assert record["from"] == DID  # the alias, which Exotel admits as the caller ID
    assert record["to"] == CALLED
    [leg] = record["legs"]
    assert leg["detail"] == f"admitted by digest as {USER}"
    assert leg["ended_by"] == "partner"
    # The bot never saw the challenge, and got its own From back (uac restores it).
    assert "SIP/2.0 407" not in called.messages
    answer = called.messages.split("SIP/2.0 200 OK")[1].split("\n\n")[0]
    assert f'From: "1000" <sip:1000@{BOT_SIDE}:' in answer
    for file in edge.rendered.iterdir():
        assert PASSWORD not in file.read_text()


def test_without_the_variable_the_challenge_goes_unanswered_and_says_why(
    edge: Edge, tmp_path: Path
) -> None:
    (port,) = _free_ports(1)
    with partner_kamailio(tmp_path / "unset", edge.rendered, port=port, password=None) as log:
        called = sipp_uac(
            tmp_path, (HOST, port), number=CALLED, caller=DID, domain=SBC, source=BOT_SIDE
        )
    # Exotel's challenge went back to the bot (whose own answer Exotel refuses).
    assert "SIP/2.0 407 Proxy Authentication Required" in called.messages
    assert "SIP/2.0 403 Forbidden" in called.messages
    assert (
        "trunk blr_bot: SIP_PASSWORD is not set in Kamailio's environment, so Exotel's "
        "challenge goes unanswered"
    ) in log.read_text()
    assert outbound(edge.sandbox)["status"] == "failed"


def test_exotel_calling_a_number_that_is_no_did_is_refused(edge: Edge, tmp_path: Path) -> None:
    """From Exotel's signalling address (address.list), only the trunk's DIDs come in."""
    called = sipp_uac(
        tmp_path, (HOST, edge.port), number="+918000000000", caller=CALLED, domain=SBC, source=HOST
    )
    assert "SIP/2.0 404 Not Found - not a DID of this trunk" in called.messages


def test_a_call_out_over_tls_uses_the_rendered_client_profile(tmp_path: Path) -> None:
    """Over TLS: the dispatcher list names transport=tls, and Kamailio connects with the
    rendered client profile ([client:127.0.0.1:PORT], the certificate verified). The
    profile's CA list is Debian's; Exotel's test certificate here comes from a test CA,
    so the deployment points ca_list at it, as one with a private CA would."""
    need("sipp", "sip-tester")
    need("kamailio", "kamailio")
    certificates = Certificates(tmp_path / "certs")
    port, own_tls = _free_ports(2)
    with running(
        "--sip-port", "0", "--sip-tls-port", "0",
        "--certfile", str(certificates.valid.cert), "--keyfile", str(certificates.valid.key),
        log_path=tmp_path / "sandbox.log", verify=certificates.client_context(),
    ) as sandbox:  # fmt: skip
        api = Api(sandbox.http)
        trunk = api.trunk(api.create_trunk("blr_bot"))
        trunk.map(DID)
        added = trunk.post("credentials", {"user_name": USER, "password": PASSWORD})
        assert added.status_code == 200, added.text
        work = tmp_path / "repo"
        manifests(
            work / "manifests",
            tcp_port=sandbox.sip["tcp"][1],
            tls_port=sandbox.sip["tls"][1],
            kamailio_port=port,
            transport="tls",
        )
        rendered = render(work)
        profiles = tmp_path / "tls"
        profiles.mkdir()
        (profiles / "server.cfg").write_text(
            textwrap.dedent(
                f"""\
                [server:default]
                method = TLSv1.2+
                certificate = {certificates.valid.cert}
                private_key = {certificates.valid.key}
                """
            )
        )
        profile = (rendered / "tls.cfg").read_text()
        assert f"[client:127.0.0.1:{sandbox.sip['tls'][1]}]" in profile
        (profiles / "exotel.cfg").write_text(
            profile.replace("/etc/ssl/certs/ca-certificates.crt", str(certificates.ca_pem))
        )
        with partner_kamailio(
            tmp_path / "kamailio", rendered, port=port, tls=(profiles, own_tls)
        ) as log:
            called = sipp_uac(
                tmp_path, (HOST, port), number=CALLED, caller=DID, domain=SBC, source=BOT_SIDE,
                hold_ms=300,
            )  # fmt: skip
            record = outbound(sandbox)
    said = log.read_text(errors="replace")
    assert called.returncode == 0, (called.log, said[-3000:])
    assert record["status"] == "completed", record
    [leg] = record["legs"]
    assert leg["transport"] == "tls"
    assert leg["detail"] == f"admitted by digest as {USER}"
    assert f"TLSc<127.0.0.1:{sandbox.sip['tls'][1]}>: verify_certificate=1" in said
