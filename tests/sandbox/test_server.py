"""The sandbox process: HTTPS, start-up errors, and stopping on signals while busy."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import trustme

from tests.sandboxes import AUTH, Api, running


def sandbox_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_https_with_a_test_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(certfile)
    certificate.private_key_pem.write_to_path(keyfile)
    with running(
        "--certfile", str(certfile), "--keyfile", str(keyfile), log_path=tmp_path / "tls.log"
    ) as sandbox:
        assert sandbox.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context()
        authority.configure_trust(context)
        with httpx.Client(base_url=sandbox.url, auth=AUTH, verify=context) as client:
            assert Api(client).create_trunk()
        with pytest.raises(httpx.ConnectError):  # an unknown CA is refused
            httpx.get(sandbox.url + "/v2/accounts/demo/trunks")
        plain = sandbox.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(plain + "/v2/accounts/demo/trunks", auth=AUTH)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stops_within_five_seconds_while_a_response_is_held(tmp_path: Path, signum: int) -> None:
    with running(log_path=tmp_path / "held.log") as sandbox:
        sandbox.faults({"path": "*", "fault": "timeout_after_commit", "count": 1})
        failures: list[BaseException] = []

        def held_call() -> None:
            try:
                Api(sandbox.http).get("/trunks", timeout=60)
            except httpx.HTTPError as exc:
                failures.append(exc)

        thread = threading.Thread(target=held_call)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        sandbox.process.send_signal(signum)
        assert sandbox.process.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
        thread.join(5)
        assert failures, "the held call must fail, not be answered"


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = sandbox_command("--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--account", "demo:key"], 1, "expected SID:KEY:TOKEN"),
        (["--account", "bad sid:k:t"], 1, "account SID"),
        (["--rate-limit", "-1"], 1, "must not be negative"),
        (["--port", "99999"], 1, "a port is 0 to 65535"),
        (["--latency-ms", "soon"], 1, "expected a number"),
        (["--profile", "maximal"], 1, "invalid choice"),
        (["--keyfile", "key.pem"], 1, "--keyfile needs --certfile"),
        (["--certfile", "/nonexistent/cert.pem"], 1, "cannot load certificate"),
    ],
)
def test_bad_options_are_explained(args: list[str], code: int, message: str) -> None:
    """Usage errors exit 1, as every reconciler command's do (2 means "changes")."""
    result = sandbox_command("--port", "0", *args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_option() -> None:
    result = sandbox_command("--help")
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--profile",
        "--account",
        "--latency-ms",
        "--rate-limit",
        "--state",
        "--seed",
        "--hold-seconds",
        "--certfile",
        "--keyfile",
    ):
        assert option in result.stdout


def test_latency_is_added_to_every_api_response(tmp_path: Path) -> None:
    with running("--latency-ms", "300", log_path=tmp_path / "slow.log") as sandbox:
        started = time.monotonic()
        sandbox.stats()  # control calls are not delayed
        assert time.monotonic() - started < 0.3
        for auth in (AUTH, ("bad", "creds")):
            started = time.monotonic()
            Api(sandbox.http).get("/trunks", auth=auth)
            assert time.monotonic() - started >= 0.3
