"""The trust boundary: in CI, credentials go only to Exotel's hosts; plans need no SIP
passwords; a ledger stays inside the manifests folder."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from reconciler.exotel.transport import foreign_host
from tests.estate import environ, write
from tests.sandboxes import Api, Sandbox
from tests.test_plan import BASE
from tests.test_plan_cli import reconciler


class Listener:
    """A loopback socket that records every byte anyone sends it, and answers 401."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.received = b""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.received += connection.recv(65536)
                    connection.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                except (TimeoutError, OSError):
                    pass

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.socket.close()


def manifests_pointing_at(folder: Path, url: str) -> Path:
    write(folder, BASE)
    accounts = (folder / "accounts.yaml").read_text()
    (folder / "accounts.yaml").write_text(
        accounts.replace("    api: full\n", f"    api: full\n    base_url: {url}\n")
    )
    return folder


def test_official_hosts_only_unless_the_environment_allows() -> None:
    assert foreign_host("https://api.in.exotel.com") is None
    assert foreign_host("https://api.exotel.com/") is None
    assert foreign_host("http://api.in.exotel.com") == "http://api.in.exotel.com"
    assert foreign_host("https://api.in.exotel.com:8443") == "https://api.in.exotel.com:8443"
    assert foreign_host("https://attacker.example") == "https://attacker.example"
    assert foreign_host("https://api.in.exotel.com.attacker.example") is not None
    assert foreign_host("http://127.0.0.1:8765", "127.0.0.1:8765") is None
    assert foreign_host("http://127.0.0.1:8766", "127.0.0.1:8765") is not None


def test_in_ci_a_manifest_base_url_never_receives_credentials(tmp_path: Path) -> None:
    listener = Listener()
    try:
        manifests_pointing_at(tmp_path / "manifests", f"http://127.0.0.1:{listener.port}")
        env = {
            "GITHUB_ACTIONS": "true",
            "EXOTEL_API_KEY": "prod_key_canary",
            "EXOTEL_API_TOKEN": "prod_token_canary",
            "EXOTEL_BASE_URL": "",
        }
        result = reconciler("plan", env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert "refusing to send its API credentials to http://127.0.0.1:" in result.stderr
        assert "Nothing was sent" in result.stderr
        assert "prod_token_canary" not in result.stdout + result.stderr
        assert listener.received == b""
        # The workflow's own environment may allow a host: then it is asked (so the
        # listener above would have seen a request, had one been sent).
        # A malformed list (a scheme) is said to be malformed, not "not listed".
        schemed = {**env, "RECONCILER_ALLOWED_HOSTS": f"http://127.0.0.1:{listener.port}"}
        malformed = reconciler("plan", env=schemed, cwd=tmp_path)
        assert malformed.returncode == 1
        assert "RECONCILER_ALLOWED_HOSTS entry 'http://127.0.0.1:" in malformed.stderr
        assert f"with no scheme or path (like 127.0.0.1:{listener.port})" in malformed.stderr
        assert listener.received == b""
        allowed = {**env, "RECONCILER_ALLOWED_HOSTS": f"127.0.0.1:{listener.port}"}
        assert reconciler("plan", env=allowed, cwd=tmp_path).returncode == 1
        assert b"Authorization: Basic" in listener.received
    finally:
        listener.close()


def test_plan_and_drift_need_no_sip_passwords(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE)
    env = {key: value for key, value in environ(sandbox).items() if key != "SIP_PASSWORD"}
    env["SIP_PASSWORD"] = ""  # unset in the child, whatever the parent has
    assert reconciler("plan", env=env, cwd=tmp_path).returncode == 0
    assert reconciler("drift", env=env, cwd=tmp_path).returncode == 0
    refused = reconciler("apply", "--auto-approve", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "environment variable SIP_PASSWORD is set but empty" in refused.stderr
