"""Start the real sandbox as a subprocess on a free loopback port, and talk to it.

Used by every test that needs Exotel's API: the sandbox runs as ``python -m reconciler
sandbox --port 0`` exactly as a user would start it, and tests reach it over real HTTP.
"""

from __future__ import annotations

import os
import select
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ACCOUNT = "demo"
AUTH = ("demo_key", "demo_token")
START_TIMEOUT = 15.0


class Sandbox:
    """A running ``reconciler sandbox`` process."""

    def __init__(
        self,
        *args: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.args = args
        self.verify = verify
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, **(env or {})},
        )
        self._http: httpx.Client | None = None
        self.sip: dict[str, tuple[str, int]] = {}  # transport -> (host, port) of --sip-*port
        wanted = sum(flag in args for flag in ("--sip-port", "--sip-tls-port"))
        self.url = self._read_url(wanted)

    @property
    def http(self) -> httpx.Client:
        """One authenticated client for the process's life (creating one costs ~90 ms)."""
        if self._http is None:
            self._http = self.client()
        return self._http

    def _read_url(self, sip: int) -> str:
        """The HTTP URL, after ``listening on``; then ``sip`` SIP listeners' lines."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while time.monotonic() < deadline:
            # Once the first line is in, the SIP lines follow at once: read them without
            # select, which cannot see lines already in the file object's buffer.
            ready = url is not None or select.select([self.process.stdout], [], [], 0.1)[0]
            if ready:
                line = self.process.stdout.readline().decode()
                if line.startswith("listening on "):
                    url = line.split()[-1]
                elif line.startswith("sip listening on sip:"):
                    where, _, transport = line.split()[-1][4:].partition(";transport=")
                    host, _, port = where.rpartition(":")
                    self.sip[transport] = (host, int(port))
                if url is not None and len(self.sip) == sip:
                    return url
                if not line:
                    break
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"sandbox did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        if self._http is not None:
            self._http.close()
        if self.process.stdout:
            self.process.stdout.close()
        return self.process.returncode

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("auth", AUTH)
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("verify", self.verify)
        return httpx.Client(base_url=self.url, **kwargs)

    def control(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/_sandbox/{endpoint}", **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def faults(self, *rules: dict[str, Any]) -> None:
        self.control("POST", "faults", json=list(rules))

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "state")
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "stats")
        return result


@contextmanager
def running(
    *args: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Iterator[Sandbox]:
    sandbox = Sandbox(*args, log_path=log_path, env=env, verify=verify)
    try:
        yield sandbox
    finally:
        sandbox.stop()


class Api:
    """An httpx client bound to one account's API root, with the setup calls as helpers."""

    def __init__(self, client: httpx.Client, account: str = ACCOUNT) -> None:
        self.client = client
        self.root = f"/v2/accounts/{account}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.root + path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(self.root + path, json=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.client.put(self.root + path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.delete(self.root + path, **kwargs)

    def create_trunk(self, name: str = "blr_bot") -> str:
        body = {"trunk_name": name, "nso_code": "ANY-ANY", "domain_name": "demo.pstn.exotel.com"}
        return str(ok(self.post("/trunks", body))["trunk_sid"])

    def trunk(self, trunk_sid: str) -> TrunkApi:
        return TrunkApi(self, trunk_sid)


class TrunkApi:
    def __init__(self, api: Api, trunk_sid: str) -> None:
        self.api = api
        self.sid = trunk_sid
        self.base = f"/trunks/{trunk_sid}"

    def get(self, child: str, **kwargs: Any) -> httpx.Response:
        return self.api.get(f"{self.base}/{child}", **kwargs)

    def post(self, child: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.api.post(f"{self.base}/{child}", body, **kwargs)

    def put(self, child: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.api.put(f"{self.base}/{child}", body, **kwargs)

    def delete(self, child: str, **kwargs: Any) -> httpx.Response:
        return self.api.delete(f"{self.base}/{child}", **kwargs)

    def whitelist(self, ip: str, mask: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ip": ip} if mask is None else {"ip": ip, "mask": mask}
        return ok(self.post("whitelisted-ips", body))

    def map(self, number: str, mode: str | None = None) -> dict[str, Any]:
        body = {"phone_number": number} if mode is None else {"phone_number": number, "mode": mode}
        return ok(self.post("phone-numbers", body))

    def items(self, child: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a child list, following ``next_page_uri``."""
        found: list[dict[str, Any]] = []
        response = self.get(child, params=params)
        while True:
            document = response.json()
            assert response.status_code == 200, document
            found += [item["data"] for item in document["response"]]
            next_uri = document.get("metadata", {}).get("next_page_uri")
            if not next_uri:
                return found
            response = self.api.client.get(next_uri)


def ok(response: httpx.Response) -> dict[str, Any]:
    """The ``data`` of a successful single-object answer; fails the test otherwise."""
    document = response.json()
    assert response.status_code == 200, document
    assert document["response"]["status"] == "success", document
    assert document["response"]["code"] == 200, document
    data: dict[str, Any] = document["response"]["data"]
    return data


def error(response: httpx.Response) -> tuple[int, int, int, str]:
    """(HTTP status, envelope code, error code, description) of a failed answer."""
    document = response.json()
    envelope = document["response"]
    assert envelope["status"] == "failure", document
    assert envelope["data"] is None
    assert document["http_code"] == response.status_code
    details = envelope["error_data"]
    return response.status_code, envelope["code"], details["code"], details["description"]
