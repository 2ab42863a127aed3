"""``reconciler serve`` as deployed, through the CLI in a subprocess: several workers each
reloading on their own, a graceful SIGTERM, HTTPS, the token from the environment, and a
small open-files limit. Slow (each start imports the service): tests/tiers.py."""

from __future__ import annotations

import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme

from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry
from tests.test_serve import MANIFEST, SID_BOT, SID_CC, SID_NEW
from tests.test_serve_ops import TOKEN, estate, parse

NOW = "2026-11-26T12:00"  # a Thursday noon, Asia/Kolkata


class Serve:
    """``reconciler serve`` in a subprocess, its port read from its first line."""

    def __init__(
        self,
        folder: Path,
        *args: str,
        env: dict[str, str] | None = None,
        files: int | None = None,
        stderr: Path,
    ) -> None:
        def limit() -> None:  # pragma: no cover (runs in the child)
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

        command = [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--at", NOW, *args],
            stdout=subprocess.PIPE,
            stderr=stderr.open("w"),
            text=True,
            env={**os.environ, **(env or {})},
            preexec_fn=limit,  # noqa: PLW1509 (only setrlimit, before exec)
        )
        assert self.process.stdout is not None
        self.line = self.process.stdout.readline()
        assert self.line.startswith("serving routes on "), stderr.read_text()
        self.port = int(self.line.split(":")[2].split()[0])
        self.scheme = self.line.split()[3].split(":")[0]
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def slow_agents() -> Iterator[str]:
    """An availability URL that says yes after 1.5 s."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/agents"
    server.shutdown()
    server.server_close()


def ask(url: str, path: str = "/connect", **extra: str) -> httpx.Response:
    query = {"CallSid": "c1", "CallTo": "08040264208", "CallFrom": "09123456789", **extra}
    return httpx.get(url + path, params=query, timeout=10)


def test_workers_each_reload_and_sigterm_finishes_what_is_in_flight(
    tmp_path: Path, slow_agents: str
) -> None:
    manifest = MANIFEST.replace("http://127.0.0.1:9/agents", slow_agents).replace(
        "timeout_ms: 200", "timeout_ms: 3000"
    )
    folder = estate(tmp_path / "m", manifest)
    log = tmp_path / "serve.log"
    serve = Serve(folder, "--workers", "2", "--reload-interval", "0.2", stderr=log)
    try:
        assert serve.line.rstrip().endswith("with 2 workers")
        deadline = time.monotonic() + 30
        while True:  # both workers up, each with its own snapshot (and its first load)
            samples = parse(httpx.get(serve.url + "/metrics").text)
            pids = {key for key in samples if key.startswith("reconciler_serve_routes{pid=")}
            # A worker counts its reload, then sets its gauges: a scrape can fall between.
            settled = len(pids) == 2 and {samples[pid] for pid in pids} == {2}
            if (samples["reconciler_serve_reloads_total"] == 2 and settled) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.2)
        assert samples["reconciler_serve_reloads_total"] == 2
        assert len(pids) == 2
        assert {samples[pid] for pid in pids} == {2}
        assert ask(serve.url).json()["destination"] == {"trunk": SID_BOT}
        # A replaced trunk: each worker notices and reloads by itself.
        ledgers.write(
            folder / "state" / "demo.json",
            Ledger("demo", "demo", {"bot": TrunkEntry(SID_NEW), "cc": TrunkEntry(SID_CC)}),
        )
        deadline = time.monotonic() + 30
        while parse(httpx.get(serve.url + "/metrics").text)["reconciler_serve_reloads_total"] < 4:
            assert time.monotonic() < deadline, "the workers did not both reload"
            time.sleep(0.2)
        assert {ask(serve.url).json()["destination"]["trunk"] for _ in range(20)} == {SID_NEW}
        # SIGTERM while a handoff waits 1.5 s for the agents: it is answered, then the
        # port closes and the service exits 0.
        answers: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answers.append(ask(serve.url, "/handoff", CallTo="02247788100"))
        )
        thread.start()
        time.sleep(0.5)
        serve.process.send_signal(signal.SIGTERM)
        thread.join(30)
        assert [a.json() for a in answers] == [{"result": "agent"}]
        assert serve.process.wait(timeout=30) == 0
        with pytest.raises(httpx.ConnectError):
            ask(serve.url)
    finally:
        serve.stop()
    text = log.read_text()
    assert '"serve.stopping"' in text
    assert "Traceback" not in text


def test_https_and_the_token_from_the_environment(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_pem.write_to_path(str(keyfile))
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in certificate.cert_chain_pems[1:]:
        with certfile.open("ab") as out:
            out.write(extra.bytes())
    folder = estate(tmp_path / "m")
    tls = ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    serve = Serve(
        folder, *tls, env={"RECONCILER_SERVE_TOKEN": TOKEN}, stderr=tmp_path / "serve.log"
    )
    try:
        assert serve.scheme == "https"
        context = ssl.create_default_context()
        authority.configure_trust(context)
        trusted = httpx.Client(verify=context)
        anonymous = trusted.get(serve.url + "/connect", params={"CallTo": "08040264208"})
        assert (anonymous.status_code, anonymous.content) == (401, b"")
        with_token = trusted.get(
            f"https://exotel:{TOKEN}@127.0.0.1:{serve.port}/connect",
            params={"CallTo": "08040264208", "CallFrom": "09876543210"},
        )
        assert with_token.json()["destination"] == {"trunk": SID_CC}
        assert trusted.get(f"{serve.url}/t/{TOKEN}/readyz").json() == {"ready": True}
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
            httpx.get(f"http://127.0.0.1:{serve.port}/healthz", timeout=5)
        trusted.close()
    finally:
        assert serve.stop() == 0
    # Refused at start: an empty token, a missing key.
    for env, args, said in [
        ({"RECONCILER_SERVE_TOKEN": ""}, [], "RECONCILER_SERVE_TOKEN is set but empty"),
        ({}, ["--certfile", str(tmp_path / "none.pem")], "cannot use --certfile"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", "serve", str(folder), "--port", "0", *args],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, **env},
        )  # fmt: skip
        assert result.returncode == 1
        assert said in result.stderr
        assert result.stdout == ""


def test_a_small_open_files_limit_lowers_the_connection_limit_and_logs_no_tracebacks(
    tmp_path: Path,
) -> None:
    """As the issue measured under ``ulimit -n 256``: 200 idle sockets, then callers."""
    folder = estate(tmp_path / "m")
    log = tmp_path / "serve.log"
    serve = Serve(folder, "--header-timeout", "1", files=256, stderr=log)
    try:
        held = []
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", serve.port)))
        time.sleep(1.5)  # the idle ones are closed after --header-timeout
        assert ask(serve.url).status_code == 200
        for sock in held:
            sock.close()
        samples = parse(httpx.get(serve.url + "/metrics").text)
        assert samples["reconciler_serve_connections_refused_total"] > 0
        assert samples["reconciler_serve_client_timeouts_total"] > 0
    finally:
        assert serve.stop() == 0
    text = log.read_text()
    assert '"serve.connection_limit_lowered"' in text
    assert "Traceback" not in text
    assert len(text) < 20_000  # a few lines, not one per refused socket
