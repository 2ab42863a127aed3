"""Real SIP servers on loopback, for the tests of ``reconciler check``.

* ``kamailio(...)``: Kamailio answering OPTIONS (200) over TCP and TLS, with a chosen
  certificate (``tests/sip/kamailio.cfg``).
* ``sipp_uas(...)``: SIPp as a callee over TCP, playing one scenario of ``tests/sip/``
  (answer with PCMA, reject with 488, ring until cancelled, or stay silent).
* ``Certificates``: a CA and server certificates that are valid, expiring soon, expired,
  for the wrong host, or from another CA (trustme).
* ``closed_port()`` and ``not_sip_server()``: a port nobody listens on, and a TCP server
  that answers in HTTP.

The servers come from Debian packages (``kamailio``, ``kamailio-tls-modules``,
``sip-tester``). Without them a test skips, unless ``RECONCILER_REQUIRE_TOOLS`` is set (as in
CI), when it fails.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import trustme

HOST = "127.0.0.1"
SIP_DIR = Path(__file__).parent / "sip"
SCENARIOS = (
    "answer_pcma",
    "answer_srtp",
    "bot_hangs_up",
    "busy_486",
    # LiveKit's SIP server, as livekit/sip answers (tests/test_check_partner.py)
    "livekit_488",
    "livekit_answer",
    "livekit_digest",
    "livekit_flood",
    "livekit_forbidden",
    "livekit_media",
    "livekit_no_agent",
    "livekit_no_rule",
    "livekit_no_trunk",
    "livekit_rejected",
    "reject_488",
    "ring_forever",
    "silent",
    "unavailable_503",
)
REQUIRE_ENV = "RECONCILER_REQUIRE_TOOLS"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3  # free ports are picked, then bound by the server: another may win the race

_instances = itertools.count(1)


def need(binary: str, package: str) -> None:
    """Skip the test when ``binary`` is not installed; fail instead in CI."""
    if shutil.which(binary) is None:
        missing(f"{binary} is not installed (Debian package {package})")


def missing(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(reason)
    pytest.skip(reason)


# Certificates


@dataclass(frozen=True)
class CertFiles:
    """A server certificate (``cert``: leaf then chain, PEM) and its private key (PEM)."""

    cert: Path
    key: Path


class Certificates:
    """One test CA (``ca_pem``) and the server certificates a check must tell apart.

    * ``valid``: ``sbc.example.test`` and ``127.0.0.1``, valid for a year
    * ``expiring``: the same names, expiring in 5 days
    * ``expired``: the same names, expired yesterday
    * ``wrong_host``: ``other.example.test`` only, valid for a year
    * ``untrusted``: the names of ``valid``, signed by another CA (not in ``ca_pem``)
    """

    HOSTNAME = "sbc.example.test"
    OTHER_HOSTNAME = "other.example.test"

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_pem = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        now = dt.datetime.now(dt.UTC)
        day = dt.timedelta(days=1)
        names = (self.HOSTNAME, HOST)
        self.valid = self._issue(self.ca, "valid", names, now - day, now + 365 * day)
        self.expiring = self._issue(self.ca, "expiring", names, now - 30 * day, now + 5 * day)
        self.expired = self._issue(self.ca, "expired", names, now - 30 * day, now - day)
        self.wrong_host = self._issue(
            self.ca, "wrong_host", (self.OTHER_HOSTNAME,), now - day, now + 365 * day
        )
        self.untrusted = self._issue(trustme.CA(), "untrusted", names, now - day, now + 365 * day)

    def _issue(
        self,
        ca: trustme.CA,
        name: str,
        identities: tuple[str, ...],
        not_before: dt.datetime,
        not_after: dt.datetime,
    ) -> CertFiles:
        leaf = ca.issue_cert(*identities, not_before=not_before, not_after=not_after)
        files = CertFiles(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        leaf.private_key_pem.write_to_path(str(files.key))
        with files.cert.open("wb") as out:
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
        return files

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA (hostname checks on)."""
        return ssl.create_default_context(cafile=str(self.ca_pem))


# Ports


def _free_ports(count: int) -> list[int]:
    """Distinct loopback TCP ports that were free a moment ago (bound together, released)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((HOST, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def closed_port() -> int:
    """A loopback TCP port with nothing listening: connecting is refused."""
    return _free_ports(1)[0]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for_ports(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
    """True once the process listens on every port; False if it exited or timed out."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(ports)
    while time.monotonic() < deadline:
        if _exited(process.pid):
            return False
        waiting = [port for port in waiting if not _listens(process.pid, port)]
        if not waiting:
            return True
        time.sleep(0.05)
    return False


def _listens(pid: int, port: int) -> bool:
    """Whether the process group ``pid`` leads listens on the loopback ``port``, and accepts.

    A free port is picked before the server binds it, so someone else may take it first:
    a connection alone would then prove nothing. Linux's /proc says whose socket it is (the
    whole group is searched: Kamailio's listening sockets may sit in a child).
    """
    local = f"0100007F:{port:04X}"
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    rows = (row.split() for row in table)
    listening = {f"socket:[{row[9]}]" for row in rows if (row[1], row[3]) == (local, "0A")}
    return bool(listening & _sockets(pid)) and _accepts(port)


def _sockets(pgid: int) -> set[str]:
    """The sockets (``socket:[inode]``) open in the processes of group ``pgid``."""
    found: set[str] = set()
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            # Fields after the command's closing parenthesis: state, ppid, pgrp, ...
            if int((process / "stat").read_text().rpartition(")")[2].split()[2]) != pgid:
                continue
            found.update(os.readlink(fd) for fd in (process / "fd").iterdir())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to its process group (it leads one), so no child outlives it.

    The group is killed while the leader is still unreaped, so its id cannot have been
    reused by anyone else's process.
    """
    if process.returncode is None:
        # Not process.terminate(): it polls, and reaping the leader first would free its id.
        os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and not _exited(process.pid):
            time.sleep(0.02)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stray children, or a process that hung
    process.wait()


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


# Kamailio


@dataclass(frozen=True)
class Kamailio:
    """A running Kamailio: OPTIONS over TCP (``tcp_port``) or TLS (``tls_port``) get 200."""

    host: str
    tcp_port: int
    tls_port: int
    log: Path  # its stderr


def _kamailio_modules() -> Path | None:
    """Kamailio's compiled-in module directory, from ``kamailio -h``."""
    usage = subprocess.run(
        ["kamailio", "-h"], capture_output=True, text=True, check=False, timeout=10
    )
    found = re.search(r"-L path\s+Modules search path \(default: ([^)]+)\)", usage.stdout)
    return Path(found.group(1)) if found else None


@contextmanager
def kamailio(
    tmp_path: Path, cert: Path, key: Path, *, relay_to: tuple[str, int] | None = None
) -> Iterator[Kamailio]:
    """Start Kamailio in the foreground on free loopback TCP and TLS ports (~0.1 s).

    ``cert`` (PEM, leaf first) and ``key`` are what the TLS port presents. Each call gets
    its own directory under ``tmp_path``, so several may run at once. With ``relay_to``
    (host, port) it plays a partner's SBC (``tests/sip/kamailio_relay.cfg``): every new
    INVITE is record-routed and relayed over TCP there, in-dialog requests follow their
    route set; without it, ``tests/sip/kamailio.cfg`` answers as a check expects.
    """
    need("kamailio", "kamailio")
    modules = _kamailio_modules()
    if modules is None or not (modules / "tls.so").exists():
        missing("Kamailio's tls.so is not installed (Debian package kamailio-tls-modules)")
    directory = tmp_path / f"kamailio-{next(_instances)}"
    directory.mkdir(parents=True)
    tls_cfg = directory / "tls.cfg"
    tls_cfg.write_text(
        "[server:default]\n"
        "method = TLSv1.2+\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
        f"certificate = {cert.resolve()}\n"
        f"private_key = {key.resolve()}\n"
    )
    log = directory / "kamailio.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        tcp_port, tls_port = _free_ports(2)
        with log.open("wb") as stderr:  # each attempt anew
            process = subprocess.Popen(
                [
                    "kamailio",
                    "-f",
                    str(SIP_DIR / ("kamailio_relay.cfg" if relay_to else "kamailio.cfg")),
                    "-A",
                    f'TLS_CONFIG="{tls_cfg.resolve()}"',
                    *(
                        [
                            "-A",
                            "WITH_TLS",
                            "-A",
                            f'DST="sip:{relay_to[0]}:{relay_to[1]};transport=tcp"',
                        ]
                        if relay_to
                        else []
                    ),
                    "-l",
                    f"tcp:{HOST}:{tcp_port}",
                    "-l",
                    f"tls:{HOST}:{tls_port}",
                    "-DD",  # stay in the foreground (children still fork)
                    "-E",  # log to stderr
                    "-m",  # shared memory, MB
                    "16",
                    "-M",  # private memory per process, MB
                    "4",
                    "-Y",
                    str(directory),
                    "-P",
                    str(directory / "kamailio.pid"),
                    "-w",
                    str(directory),
                ],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            if _wait_for_ports(process, (tcp_port, tls_port)):
                yield Kamailio(HOST, tcp_port, tls_port, log)
                return
        finally:
            _stop(process)
        if "Address already in use" not in _tail(log) or attempt == START_ATTEMPTS:
            break
    raise RuntimeError(f"kamailio did not start:\n{_tail(log)}")


# SIPp


@dataclass(frozen=True)
class Sipp:
    """A running SIPp callee (UAS) over TCP, at ``host``:``port``."""

    host: str
    port: int
    scenario: Path
    log: Path  # stderr, then the unexpected messages (-trace_err)
    messages: Path  # every message sent and received (-trace_msg)


@contextmanager
def sipp_uas(tmp_path: Path, scenario: str, *, echo: bool = False) -> Iterator[Sipp]:
    """Start SIPp as a UAS over TCP on a free loopback port, playing ``tests/sip/<scenario>``.

    ``scenario`` is one of ``SCENARIOS`` (with or without ``.xml``). SIPp runs until the
    block ends, answering each new call (Call-ID) with the scenario, then it is stopped.
    Starting takes ~0.1 s. With ``echo``, SIPp sends every RTP packet back where it came
    from (``-rtp_echo``), so a caller can tell its own media came back.
    """
    need("sipp", "sip-tester")
    name = scenario.removesuffix(".xml")
    if name not in SCENARIOS:
        raise ValueError(f"unknown SIPp scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    scenario_path = SIP_DIR / f"{name}.xml"
    directory = tmp_path / f"sipp-{name}-{next(_instances)}"
    directory.mkdir(parents=True)
    log, errors, messages = (
        directory / "sipp.log",
        directory / "errors.log",
        directory / "messages.log",
    )
    for attempt in range(1, START_ATTEMPTS + 1):
        (port,) = _free_ports(1)
        with log.open("wb") as stderr:  # each attempt anew
            process = subprocess.Popen(
                [
                    "sipp",
                    "-sf",
                    str(scenario_path),
                    "-t",
                    "t1",  # TCP, one socket (replies go back on the caller's connection)
                    "-i",
                    HOST,
                    "-p",
                    str(port),
                    "-bind_local",  # listen on HOST only
                    "-mi",  # media (RTP echo) sockets: bound on loopback, ports from 6000 up
                    HOST,
                    "-ci",  # control socket (UDP 8888 up): on loopback too
                    HOST,
                    "-nostdin",
                    *(["-rtp_echo"] if echo else []),
                    "-trace_err",
                    "-error_file",
                    str(errors),
                    "-trace_msg",
                    "-message_file",
                    str(messages),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the statistics screen
                stderr=stderr,
                cwd=directory,
                start_new_session=True,
            )
        try:
            if _wait_for_ports(process, (port,)):
                yield Sipp(HOST, port, scenario_path, log, messages)
                return
        finally:
            _stop(process)
            if errors.exists():
                with log.open("a") as out:
                    out.write(errors.read_text(errors="replace"))
        if "Address already in use" not in _tail(log) or attempt == START_ATTEMPTS:
            break
    raise RuntimeError(f"sipp ({name}) did not start:\n{_tail(log)}")


@dataclass(frozen=True)
class Called:
    """What a SIPp caller (UAC) run came to."""

    returncode: int  # 0: every call succeeded by the scenario's rules
    messages: str  # every message sent and received (-trace_msg)
    log: str  # stderr and the unexpected messages


def sipp_uac(
    tmp_path: Path,
    target: tuple[str, int],
    *,
    number: str,
    caller: str,
    domain: str,
    source: str = HOST,
    credential: tuple[str, str] | None = None,
    hold_ms: int = 1000,
    timeout: float = 30.0,
    scenario: str = "call_out",
) -> Called:
    """Call out once through ``target`` over TCP as a partner's SBC would: SIPp playing
    ``tests/sip/<scenario>.xml`` (``call_out``, or ``call_out_srtp``) from ``source`` (a
    loopback address), echoing the media it gets (-rtp_echo), answering a digest challenge
    with ``credential`` if one comes."""
    need("sipp", "sip-tester")
    directory = tmp_path / f"sipp-uac-{next(_instances)}"
    directory.mkdir(parents=True)
    messages, errors = directory / "messages.log", directory / "errors.log"
    auth = ["-au", credential[0], "-ap", credential[1]] if credential else []
    completed = subprocess.run(
        [
            "sipp",
            f"{target[0]}:{target[1]}",
            "-sf",
            str(SIP_DIR / f"{scenario}.xml"),
            "-t",
            "t1",
            "-i",
            source,
            "-bind_local",
            "-mi",
            source,
            "-ci",
            source,
            "-s",
            number,
            "-key",
            "caller",
            caller,
            "-key",
            "domain",
            domain,
            *auth,
            "-d",
            str(hold_ms),
            "-rtp_echo",
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            f"{int(timeout)}s",
            "-trace_err",
            "-error_file",
            str(errors),
            "-trace_msg",
            "-message_file",
            str(messages),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=directory,
        timeout=timeout + 10,
        check=False,
    )
    said = completed.stderr.decode(errors="replace")
    if errors.exists():
        said += errors.read_text(errors="replace")
    text = messages.read_text(errors="replace") if messages.exists() else ""
    return Called(completed.returncode, text, said)


# Not SIP


@dataclass(frozen=True)
class Server:
    host: str
    port: int


HTTP_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"


@contextmanager
def not_sip_server() -> Iterator[Server]:
    """A loopback TCP server that answers every connection with an HTTP 400 and closes."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.1)
    stopping = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            try:
                connection.sendall(HTTP_400)
                connection.shutdown(socket.SHUT_WR)
                # Read what the client sent before closing, so the close is a FIN, not a
                # reset that could destroy the 400 before the client reads it.
                connection.settimeout(1.0)
                while connection.recv(65536):
                    pass
            except OSError:
                pass

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Server(HOST, listener.getsockname()[1])
    finally:
        stopping.set()
        thread.join(5)
        listener.close()
