"""The SIP servers of tests/sipservers.py, driven by hand with raw sockets and ssl.

These prove the fixtures, not the product: every message here is written out in full, so a
failure in a test of ``reconciler check`` can be told apart from a broken fixture.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import sipservers
from tests.sipservers import Certificates, kamailio, need, sipp_uas

SDP_OFFER = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 8 0 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=sendrecv\r\n"
)


@dataclass
class Message:
    start: str
    headers: dict[str, str]  # lower-case names; the first value of each
    body: str

    @property
    def status(self) -> int:
        assert self.start.startswith("SIP/2.0 "), self.start
        return int(self.start.split()[1])

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Dialog:
    """One call's identifiers, and the requests of it, written out as RFC 3261 asks."""

    host: str
    port: int
    local: tuple[str, int]
    transport: str = "TCP"
    call_id: str = field(default_factory=lambda: f"{uuid.uuid4().hex}@check.test")
    from_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    to_tag: str = ""

    @property
    def uri(self) -> str:
        return f"sip:probe@{self.host}:{self.port};transport={self.transport.lower()}"

    def request(
        self,
        method: str,
        cseq: int,
        *,
        branch: str | None = None,
        body: str = "",
        uri: str | None = None,
    ) -> bytes:
        branch = branch or f"z9hG4bK{uuid.uuid4().hex[:16]}"
        to = f"<sip:probe@{self.host}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{method} {uri or self.uri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport} {self.local[0]}:{self.local[1]};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:check@check.test>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:check@{self.local[0]}:{self.local[1]};transport=tcp>",
            "User-Agent: test_sipservers",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Connection:
    """A SIP stream over one TCP or TLS socket: send bytes, read whole messages."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 5.0) -> Message | None:
        """The next message, or None if none came within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            while b"\r\n\r\n" not in self.buffer:
                self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            start, *lines = head.decode().split("\r\n")
            headers: dict[str, str] = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())
            length = int(headers.get("content-length", "0").strip())
            while len(rest) < length:
                self._fill()
                rest = self.buffer.partition(b"\r\n\r\n")[2]
        except TimeoutError:
            return None
        self.buffer = rest[length:]
        return Message(start, headers, rest[:length].decode())

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def connect() -> Iterator[type[Connection]]:
    """Closes every socket a test opens through ``Connection``."""
    sockets: list[socket.socket] = []

    class Tracked(Connection):
        def __init__(self, sock: socket.socket) -> None:
            sockets.append(sock)
            super().__init__(sock)

    yield Tracked
    for sock in sockets:
        sock.close()


def tls_handshake(port: int, context: ssl.SSLContext, server_hostname: str) -> ssl.SSLSocket:
    raw = socket.create_connection((sipservers.HOST, port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


# need()


def test_need_skips_without_the_binary_and_fails_when_sip_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv(sipservers.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"kamailio is not installed \(Debian"):
        need("kamailio", "kamailio")
    monkeypatch.setenv(sipservers.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="sipp is not installed"):
        need("sipp", "sip-tester")


# Kamailio


def test_kamailio_answers_options_over_tcp_and_refuses_other_methods(
    tmp_path: Path, certs: Certificates, connect: type[Connection]
) -> None:
    with kamailio(tmp_path, certs.valid.cert, certs.valid.key) as server:
        sip = connect(socket.create_connection((server.host, server.tcp_port), timeout=5))
        dialog = Dialog(server.host, server.tcp_port, sip.local)
        sip.send(dialog.request("OPTIONS", 1))
        answer = sip.read()
        assert answer is not None
        assert answer.start == "SIP/2.0 200 OK"
        assert answer.header("Server") == "kamailio-test"
        assert answer.header("Call-ID") == dialog.call_id
        assert answer.header("CSeq") == "1 OPTIONS"

        sip.send(dialog.request("INVITE", 2, body=SDP_OFFER))
        refused = sip.read()
        assert refused is not None
        assert refused.status == 405
        assert refused.header("Allow") == "OPTIONS"


def test_kamailio_over_tls_with_a_valid_certificate(
    tmp_path: Path, certs: Certificates, connect: type[Connection]
) -> None:
    with kamailio(tmp_path, certs.valid.cert, certs.valid.key) as server:
        for name in (Certificates.HOSTNAME, server.host):
            with tls_handshake(server.tls_port, certs.client_context(), name) as tls:
                peer = tls.getpeercert()
                assert peer is not None
                assert ("DNS", Certificates.HOSTNAME) in peer["subjectAltName"]
                assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        sip = connect(tls_handshake(server.tls_port, certs.client_context(), Certificates.HOSTNAME))
        dialog = Dialog(Certificates.HOSTNAME, server.tls_port, sip.local, transport="TLS")
        sip.send(dialog.request("OPTIONS", 1))
        answer = sip.read()
        assert answer is not None
        assert answer.status == 200
        assert answer.header("Server") == "kamailio-test"


def test_a_certificate_for_another_host_fails_hostname_verification_only(
    tmp_path: Path, certs: Certificates
) -> None:
    with kamailio(tmp_path, certs.wrong_host.cert, certs.wrong_host.key) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch") as failed:
            tls_handshake(server.tls_port, certs.client_context(), Certificates.HOSTNAME)
        assert failed.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
        chain_only = certs.client_context()
        chain_only.check_hostname = False
        with tls_handshake(server.tls_port, chain_only, Certificates.HOSTNAME) as tls:
            peer = tls.getpeercert()
            assert peer is not None
            assert peer["subjectAltName"] == (("DNS", Certificates.OTHER_HOSTNAME),)


@pytest.mark.parametrize(
    ("name", "message"),
    [("expired", "certificate has expired"), ("untrusted", "unable to get local issuer")],
)
def test_expired_and_untrusted_certificates_fail_verification(
    tmp_path: Path, certs: Certificates, name: str, message: str
) -> None:
    files = getattr(certs, name)
    with (
        kamailio(tmp_path, files.cert, files.key) as server,
        pytest.raises(ssl.SSLCertVerificationError, match=message),
    ):
        tls_handshake(server.tls_port, certs.client_context(), Certificates.HOSTNAME)


def test_an_expiring_certificate_verifies_and_ends_within_ten_days(
    tmp_path: Path, certs: Certificates
) -> None:
    with (
        kamailio(tmp_path, certs.expiring.cert, certs.expiring.key) as server,
        tls_handshake(server.tls_port, certs.client_context(), Certificates.HOSTNAME) as tls,
    ):
        peer = tls.getpeercert()
        assert peer is not None
        expires = ssl.cert_time_to_seconds(str(peer["notAfter"]))
        not_after = dt.datetime.fromtimestamp(expires, dt.UTC)
        left = not_after - dt.datetime.now(dt.UTC)
        assert dt.timedelta(days=4) < left < dt.timedelta(days=10)


def test_several_kamailios_run_at_once(tmp_path: Path, certs: Certificates) -> None:
    with (
        kamailio(tmp_path, certs.valid.cert, certs.valid.key) as first,
        kamailio(tmp_path, certs.wrong_host.cert, certs.wrong_host.key) as second,
    ):
        assert len({first.tcp_port, first.tls_port, second.tcp_port, second.tls_port}) == 4
        with tls_handshake(second.tls_port, certs.client_context(), "other.example.test"):
            pass
        with tls_handshake(first.tls_port, certs.client_context(), Certificates.HOSTNAME):
            pass


# SIPp


@contextmanager
def invite(
    tmp_path: Path, scenario: str, connect: type[Connection]
) -> Iterator[tuple[Connection, Dialog, str]]:
    with sipp_uas(tmp_path, scenario) as uas:
        sip = connect(socket.create_connection((uas.host, uas.port), timeout=5))
        dialog = Dialog(uas.host, uas.port, sip.local)
        branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
        sip.send(dialog.request("INVITE", 1, branch=branch, body=SDP_OFFER))
        yield sip, dialog, branch


def responses_until_final(sip: Connection) -> list[Message]:
    seen: list[Message] = []
    while not seen or seen[-1].status < 200:
        message = sip.read()
        assert message is not None, [m.start for m in seen]
        seen.append(message)
    return seen


def test_sipp_answers_with_pcma(tmp_path: Path, connect: type[Connection]) -> None:
    with invite(tmp_path, "answer_pcma", connect) as (sip, dialog, _):
        seen = responses_until_final(sip)
        assert [m.status for m in seen] == [100, 180, 200]
        ok = seen[-1]
        assert ok.header("CSeq") == "1 INVITE"
        assert ok.header("Content-Type") == "application/sdp"
        assert "m=audio " in ok.body
        assert " RTP/AVP 8 101\r\n" in ok.body
        assert "a=rtpmap:8 PCMA/8000\r\n" in ok.body
        assert "a=rtpmap:101 telephone-event/8000\r\n" in ok.body
        dialog.to_tag = ok.header("To").partition(";tag=")[2]
        assert dialog.to_tag
        contact = ok.header("Contact").strip("<>")
        sip.send(dialog.request("ACK", 1, uri=contact))
        sip.send(dialog.request("BYE", 2, uri=contact))
        bye = sip.read()
        assert bye is not None
        assert (bye.status, bye.header("CSeq")) == (200, "2 BYE")


def test_sipp_rejects_with_488(tmp_path: Path, connect: type[Connection]) -> None:
    with invite(tmp_path, "reject_488", connect) as (sip, dialog, branch):
        seen = responses_until_final(sip)
        assert [m.status for m in seen] == [488]
        assert seen[0].start == "SIP/2.0 488 Not Acceptable Here"
        dialog.to_tag = seen[0].header("To").partition(";tag=")[2]
        sip.send(dialog.request("ACK", 1, branch=branch))  # non-2xx: the INVITE's branch


def test_sipp_rings_until_cancelled(tmp_path: Path, connect: type[Connection]) -> None:
    with invite(tmp_path, "ring_forever", connect) as (sip, dialog, branch):
        provisional = [sip.read(), sip.read()]
        assert [m.status if m else None for m in provisional] == [100, 180]
        assert sip.read(timeout=0.5) is None  # still ringing
        sip.send(dialog.request("CANCEL", 1, branch=branch))
        cancelled, terminated = sip.read(), sip.read()
        assert cancelled is not None
        assert terminated is not None
        assert (cancelled.status, cancelled.header("CSeq")) == (200, "1 CANCEL")
        assert (terminated.status, terminated.header("CSeq")) == (487, "1 INVITE")
        assert terminated.header("Via") == cancelled.header("Via")
        dialog.to_tag = terminated.header("To").partition(";tag=")[2]
        sip.send(dialog.request("ACK", 1, branch=branch))


def test_sipp_stays_silent(tmp_path: Path, connect: type[Connection]) -> None:
    with invite(tmp_path, "silent", connect) as (sip, _, _):
        assert sip.read(timeout=1.0) is None


def test_unknown_scenarios_are_refused(tmp_path: Path) -> None:
    need("sipp", "sip-tester")
    with pytest.raises(ValueError, match="unknown SIPp scenario"), sipp_uas(tmp_path, "nope"):
        pass


# Not SIP at all


def test_a_closed_port_refuses_connections() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((sipservers.HOST, sipservers.closed_port()), timeout=2)


def test_the_not_sip_server_answers_in_http() -> None:
    with sipservers.not_sip_server() as server:
        for _ in range(2):
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                sock.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
                received = b""
                while chunk := sock.recv(1024):
                    received += chunk
                assert received == b"HTTP/1.1 400 Bad Request\r\n\r\n"
