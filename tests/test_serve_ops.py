"""``reconciler serve`` as production software, over real HTTP on loopback: one agents
client per process, TCP_NODELAY, the token and the allow-list, metrics and readiness,
hostile clients. The server is the one ``serve`` runs (``service.server``: its protocol,
timeouts and limits) on ``service.listen``'s socket, in a thread of the test process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from reconciler.cli import logs as cli_logs
from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry
from reconciler.routing import service
from reconciler.routing.access import Access, check_token, networks
from reconciler.routing.agents import Agents
from reconciler.routing.protocol import Limits
from reconciler.routing.snapshot import Loader
from tests.test_serve import MANIFEST, SID_BOT, SID_CC, THURSDAY_NOON

Parser = Literal["httptools", "h11"]
FORK = multiprocessing.get_context("fork")
TOKEN = "s3cret-token-for-tests-0123456789"
AGENTS_MANIFEST = MANIFEST.replace("http://127.0.0.1:9/agents", "AGENTS_URL").replace(
    "timeout_ms: 200", "timeout_ms: 2000"
)


@pytest.fixture(autouse=True)
def logs_as_serve_writes_them() -> None:
    """JSON lines on standard error at INFO, as the CLI configures them for serve."""
    cli_logs.configure(level=logging.INFO)


def estate(folder: Path, manifest: str = MANIFEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.yaml").write_text(manifest)
    ledgers.write(
        folder / "state" / "demo.json",
        Ledger("demo", "demo", {"bot": TrunkEntry(SID_BOT), "cc": TrunkEntry(SID_CC)}),
    )
    return folder


@dataclass
class Served:
    url: str
    port: int
    server: Any
    loader: Loader
    app: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, **kwargs)


@contextlib.contextmanager
def serving(
    folder: Path, options: service.Options | None = None, *, reload_interval: float = 0.1
) -> Iterator[Served]:
    options = options or service.Options()
    listener = service.listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    loader = Loader(folder)
    loader.reload()
    app = service.create_app(
        folder,
        clock=lambda: THURSDAY_NOON,
        reload_interval=reload_interval,
        loader=loader,
        access=options.access,
        log_decisions=options.log_decisions,
    )
    server = service.server(app, options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", port, server, loader, app)
    finally:
        server.should_exit = True
        thread.join(10)


def query(**extra: str) -> dict[str, str]:
    return {"CallSid": "abc123", "CallTo": "08040264208", "CallFrom": "09876543210", **extra}


# 1. One agents client per process ------------------------------------------------------


class AgentsServer:
    """A local availability URL in a process of its own: answers 200 at once (kept
    alive) and counts its TCP connections and requests."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = FORK.Value("i", 0)
        self.requests = FORK.Value("i", 0)
        self.process = FORK.Process(target=self._run, daemon=True)

    def _run(self) -> None:  # pragma: no cover (in the child)
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections.value += 1
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while await reader.readuntil(b"\r\n\r\n"):
                    self.requests.value += 1
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    await writer.drain()
            writer.close()

        async def main() -> None:
            server = await asyncio.start_server(handle, sock=self.listener)
            await server.serve_forever()

        asyncio.run(main())

    def __enter__(self) -> str:
        self.process.start()
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/agents"

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join(5)
        self.listener.close()


def handoff_burst(url: str, calls: int, connections: int, out: Any) -> None:
    """``calls`` handoffs over ``connections`` at once, from a process of its own (a
    client in the test's process would starve the server's thread of the GIL)."""

    async def burst() -> list[Any]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as http:
            answers = await asyncio.gather(
                *(
                    http.get(url + "/handoff", params=query(CallTo="02247788100"))
                    for _ in range(calls)
                )
            )
        return [answer.json() for answer in answers]

    out.put(asyncio.run(burst()))


def test_concurrent_handoffs_share_one_client_and_reach_agents(tmp_path: Path) -> None:
    agents = AgentsServer()
    with agents as agents_url:
        folder = estate(tmp_path / "m", AGENTS_MANIFEST.replace("AGENTS_URL", agents_url))
        with serving(folder) as served:
            out = FORK.Queue()
            client = FORK.Process(target=handoff_burst, args=(served.url, 200, 20, out))
            client.start()
            answers = out.get(timeout=60)
            client.join(10)
        assert answers == [{"result": "agent"}] * 200  # no fallback hung a caller up
        assert agents.requests.value == 200
        # One pooled client: connections are reused, never one per check.
        assert agents.connections.value <= 20


def test_the_agents_client_is_opened_by_the_app_and_closed_on_shutdown(tmp_path: Path) -> None:
    folder = estate(tmp_path / "m")
    with serving(folder) as served:
        agents: Agents = served.app.user_middleware[0].kwargs["on_denied"].__self__.agents
        assert agents._client is not None
        assert not agents._client.is_closed
        client = agents._client
    assert client.is_closed  # lifespan's shutdown closed it
    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(Agents().ask("http://127.0.0.1:9/", timeout=0.1))


# 2. TCP_NODELAY --------------------------------------------------------------------------


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_accepted_sockets_have_nodelay_and_kept_alive_answers_do_not_wait(
    tmp_path: Path, parser: Parser
) -> None:
    folder = estate(tmp_path / "m")
    listener = service.listen("127.0.0.1", 0)
    assert listener.proto == socket.IPPROTO_TCP  # what asyncio's _set_nodelay looks for
    listener.close()
    with serving(folder, service.Options(parser=parser)) as served, httpx.Client() as http:
        timings = []
        for _ in range(30):  # one kept-alive connection, as Exotel's would be
            started = time.perf_counter()
            assert http.get(served.url + "/connect", params=query()).status_code == 200
            timings.append(time.perf_counter() - started)
        [connection] = list(served.server.server_state.connections)
        raw = connection.transport.get_extra_info("socket")
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    timings.sort()
    assert timings[len(timings) // 2] < 0.02  # Nagle meeting delayed ACKs costs ~40 ms each


# 3. The token and the allow-list ------------------------------------------------------


def test_the_token_as_basic_auth_or_in_the_path_and_anonymous_gets_a_bare_401(
    tmp_path: Path,
) -> None:
    folder = estate(tmp_path / "m")
    options = service.Options(access=Access(token=check_token(TOKEN)))
    with serving(folder, options) as served:
        anonymous = served.get("/connect", params=query())
        assert anonymous.status_code == 401
        assert anonymous.content == b""  # no route data, no SID, nothing
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        wrong = served.get("/connect", params=query(), auth=("exotel", TOKEN + "x"))
        assert (wrong.status_code, wrong.content) == (401, b"")
        assert served.get(f"/t/{TOKEN[:-1]}/connect", params=query()).status_code == 401
        # Basic auth, any user; and a URL carrying user:token, as a client sends it.
        by_header = served.get("/connect", params=query(), auth=("anyone", TOKEN))
        assert by_header.json()["destination"] == {"trunk": SID_CC}
        userinfo = httpx.get(
            f"http://exotel:{TOKEN}@127.0.0.1:{served.port}/connect", params=query()
        )
        assert userinfo.json()["destination"] == {"trunk": SID_CC}
        by_path = served.get(f"/t/{TOKEN}/connect", params=query())
        assert by_path.json()["destination"] == {"trunk": SID_CC}
        assert served.get(f"/t/{TOKEN}/handoff", params=query()).json() == {"result": "agent"}
        # Probes stay open; metrics need the token.
        assert served.get("/healthz").status_code == 200
        assert served.get("/readyz").status_code == 200
        assert served.get("/metrics").status_code == 401
        assert served.get(f"/t/{TOKEN}/metrics").status_code == 200
        metrics = served.get("/metrics", auth=("prometheus", TOKEN)).text
        assert 'reconciler_serve_denied_total{status="401"} 4.0' in metrics
    public = Access(token=check_token(TOKEN), public_metrics=True)
    with serving(folder, service.Options(access=public)) as served:
        assert served.get("/metrics").status_code == 200
        assert served.get("/connect", params=query()).status_code == 401


def test_a_passthru_post_a_trailing_slash_and_a_refusal_in_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exotel's Passthru applet may POST the call's details as a form: the same answer as
    a GET. A URL pasted with a trailing slash is served, never redirected (a redirect
    would drop the /t/TOKEN/ prefix). A refusal is in the log, without the path."""
    folder = estate(tmp_path / "m")
    options = service.Options(access=Access(token=check_token(TOKEN)))
    with serving(folder, options) as served:
        posted = httpx.post(f"{served.url}/t/{TOKEN}/handoff", data=query())
        assert posted.status_code == 200, posted.text
        assert posted.json() == served.get(f"/t/{TOKEN}/handoff", params=query()).json()
        form = httpx.post(f"{served.url}/t/{TOKEN}/connect", data=query())
        assert form.json()["destination"] == {"trunk": SID_CC}
        # A form's fields win over the query string's.
        mixed = httpx.post(
            f"{served.url}/t/{TOKEN}/connect", params={"CallTo": "0111111111"}, data=query()
        )
        assert mixed.json()["destination"] == {"trunk": SID_CC}
        huge = httpx.post(f"{served.url}/t/{TOKEN}/connect", data={"x": "y" * 70_000})
        assert huge.status_code == 413
        slash = served.get(f"/t/{TOKEN}/connect/", params=query(), follow_redirects=False)
        assert slash.status_code == 200
        assert slash.json()["destination"] == {"trunk": SID_CC}
        capsys.readouterr()
        assert served.get("/t/wrong-token-0123456789/connect", params=query()).status_code == 401
        logged = capsys.readouterr().err
        assert '"event": "serve.denied"' in logged, logged
        assert "wrong-token" not in logged


def test_a_token_read_from_a_file_keeps_no_newline() -> None:
    assert check_token(TOKEN + "\n") == TOKEN.encode()


def test_a_token_that_would_not_survive_a_url_is_refused() -> None:
    for bad in ["", "short", "has space in it 0123456789", "slash/in/it/0123456789abcd"]:
        with pytest.raises(Exception, match="RECONCILER_SERVE_TOKEN"):
            check_token(bad)
    assert check_token(TOKEN) == TOKEN.encode()


def test_the_allow_list_reads_the_peer_or_the_trusted_proxy_hop(tmp_path: Path) -> None:
    folder = estate(tmp_path / "m")
    only_exotel = networks(["10.0.0.0/8, 192.0.2.1"])
    with serving(folder, service.Options(access=Access(allow=only_exotel))) as served:
        refused = served.get("/connect", params=query())  # the peer is 127.0.0.1
        assert (refused.status_code, refused.content) == (403, b"")
        forged = served.get("/connect", params=query(), headers={"x-forwarded-for": "10.1.2.3"})
        assert forged.status_code == 403  # no trusted proxy: the header is not believed
        assert served.get("/healthz").status_code == 200  # probes are not call paths
    behind_proxy = Access(allow=only_exotel, trusted_hops=1)
    with serving(folder, service.Options(access=behind_proxy)) as served:

        def source(forwarded: str | None) -> int:
            headers = {"x-forwarded-for": forwarded} if forwarded else {}
            return served.get("/connect", params=query(), headers=headers).status_code

        assert source("10.1.2.3") == 200  # what the proxy saw
        assert source("192.0.2.1") == 200
        assert source("10.9.9.9, 198.51.100.7") == 403  # the client wrote the left one
        assert source(None) == 403  # no proxy hop where one must be
        assert source("not-an-address") == 403


# 4. Metrics, readiness, the decision log -----------------------------------------------


def test_metrics_count_answers_reloads_and_the_age_of_the_snapshot(tmp_path: Path) -> None:
    folder = estate(tmp_path / "m")
    with serving(folder) as served:
        served.get("/connect", params=query())
        served.get("/connect", params=query(CallTo="0111111111"))
        served.get("/handoff", params=query())
        (folder / "all.yaml").write_text(MANIFEST.replace("trunk: bot", "trunk: nowhere"))
        wait_until(lambda: served.get("/healthz").json()["stale"])
        time.sleep(0.3)
        text = served.get("/metrics").text
    samples = parse(text)
    assert (
        samples['reconciler_serve_answers_total{kind="connect",rule="rules[0]",status="200"}'] == 1
    )
    assert (
        samples['reconciler_serve_answers_total{kind="connect",rule="no-route",status="404"}'] == 1
    )
    assert samples['reconciler_serve_answers_total{kind="handoff",rule="agents",status="200"}'] == 1
    assert samples['reconciler_serve_answer_seconds_count{kind="connect"}'] == 2
    assert samples['reconciler_serve_answer_seconds_bucket{kind="connect",le="0.5"}'] == 2
    assert samples["reconciler_serve_reloads_total"] == 1  # the first load
    assert samples["reconciler_serve_reload_failures_total"] == 1
    assert samples["reconciler_serve_routes"] == 2
    assert samples["reconciler_serve_trunks"] == 2
    assert samples["reconciler_serve_stale"] == 1
    assert samples["reconciler_serve_snapshot_age_seconds"] >= 0.2  # grows while stale


def parse(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def wait_until(condition: Callable[[], Any], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_not_ready_until_a_first_good_load(tmp_path: Path) -> None:
    folder = estate(tmp_path / "m", MANIFEST.replace("trunk: bot", "trunk: nowhere"))
    with serving(folder) as served:
        assert served.get("/readyz").status_code == 503
        assert served.get("/healthz").status_code == 503
        answer = served.get("/connect", params=query())
        assert (answer.status_code, answer.json()) == (503, {"error": "routes are not loaded yet"})
        (folder / "all.yaml").write_text(MANIFEST)
        wait_until(lambda: served.get("/readyz").status_code == 200)
        assert served.get("/readyz").json() == {"ready": True}
        assert served.get("/connect", params=query()).json()["destination"] == {"trunk": SID_CC}


def test_anonymous_health_names_no_file_but_the_token_holder_sees_it(tmp_path: Path) -> None:
    folder = estate(tmp_path / "m")
    options = service.Options(access=Access(token=check_token(TOKEN)))
    with serving(folder, options) as served:
        (folder / "state" / "demo.json").write_bytes(b"\xff\xfe")
        wait_until(lambda: served.get("/healthz").json()["stale"])
        anonymous = served.get("/healthz").json()["problem"]
        assert "not UTF-8" in anonymous
        assert str(tmp_path) not in anonymous
        assert "demo.json" not in anonymous
        full = served.get(f"/t/{TOKEN}/healthz").json()["problem"]
        assert str(folder / "state" / "demo.json") in full


@pytest.mark.parametrize(("level", "logged"), [("all", 3), ("failures", 1), ("none", 0)])
def test_the_decision_log_can_be_turned_down_and_its_fields_are_bounded(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], level: str, logged: int
) -> None:
    folder = estate(tmp_path / "m")
    with serving(folder, service.Options(log_decisions=level)) as served:  # type: ignore[arg-type]
        served.get("/connect", params=query(CallSid="x" * 8192))
        served.get("/handoff", params=query())
        served.get("/connect", params=query(CallTo="0111111111"))  # no route: a failure
    lines = [line for line in capfd.readouterr().err.splitlines() if "serve.decision" in line]
    assert len(lines) == logged
    assert all(len(line) < 400 for line in lines)  # 8 KB of CallSid is not 8 KB of log
    if level == "all":
        assert '"call_sid": "' + "x" * 64 + '..."' in lines[0]


# 5. Hostile clients ---------------------------------------------------------------------


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_idle_and_trickling_connections_are_closed_after_the_header_timeout(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], parser: Parser
) -> None:
    folder = estate(tmp_path / "m")
    options = service.Options(limits=Limits(header_timeout=0.5), parser=parser)
    with serving(folder, options) as served:
        idle = socket.create_connection(("127.0.0.1", served.port))
        trickle = socket.create_connection(("127.0.0.1", served.port))
        started = time.monotonic()
        request = b"GET /connect?CallTo=08040264208 HTTP/1.1\r\nHost: x\r\n\r\n"
        closed_after = None
        for byte in request[:-2]:  # a byte every 50 ms: never a whole request in 0.5 s
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.05)
        idle.settimeout(5)
        assert idle.recv(1) == b""  # closed by the server
        assert closed_after is not None
        assert closed_after < 2
        # A whole request on time is served as ever.
        assert served.get("/connect", params=query()).status_code == 200
        metrics = parse(served.get("/metrics").text)
        assert metrics["reconciler_serve_client_timeouts_total"] == 2
    timeouts = [line for line in capfd.readouterr().err.splitlines() if "client_timeout" in line]
    assert len(timeouts) == 1  # throttled: one line, not one per connection


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_past_the_connection_limit_a_clear_503_and_one_log_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], parser: Parser
) -> None:
    folder = estate(tmp_path / "m")
    options = service.Options(limits=Limits(max_connections=5), parser=parser)
    with serving(folder, options) as served:
        held = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(5)]
        time.sleep(0.1)
        extra = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
        for sock in extra:
            sock.settimeout(5)
            assert sock.recv(200).startswith(b"HTTP/1.1 503 Service Unavailable")
        for sock in held + extra:
            sock.close()
        time.sleep(0.1)
        assert served.get("/connect", params=query()).status_code == 200  # room again
        metrics = parse(served.get("/metrics").text)
        assert metrics["reconciler_serve_connections_refused_total"] == 3
    lines = [line for line in capfd.readouterr().err.splitlines() if "connection_limit" in line]
    assert len(lines) == 1
    assert '"limit": 5' in lines[0]


MALFORMED = [
    # a bad chunk size, and a chunk longer than it said, while the app already answers
    b"GET /connect?CallTo=08040264208 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"GET /connect?CallTo=08040264208 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabcdef\r\n0\r\n\r\n",
    b"GET /connect HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS to a plain port
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",  # past h11's 16 KiB header limit
]


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_malformed_requests_are_closed_without_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], parser: Parser
) -> None:
    folder = estate(tmp_path / "m")
    with serving(folder, service.Options(parser=parser)) as served:
        for data in MALFORMED * 3:
            with socket.create_connection(("127.0.0.1", served.port)) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(data)
                sock.settimeout(5)
                with contextlib.suppress(OSError):
                    while sock.recv(65536):
                        pass
        assert served.get("/connect", params=query()).status_code == 200
        metrics = parse(served.get("/metrics").text)
        assert metrics["reconciler_serve_client_errors_total"] >= len(MALFORMED) * 3 - 3
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Exception in ASGI application" not in err
    assert len([line for line in err.splitlines() if "serve.client_error" in line]) == 1


def test_every_token_form_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac  # noqa: PLC0415

    from reconciler.routing import access  # noqa: PLC0415

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    guard = Access(token=check_token(TOKEN))
    header = b"Basic " + base64.b64encode(b"u:" + TOKEN.encode())
    password = guard.basic_password([(b"authorization", header)])
    assert password is not None
    assert guard.token_matches(password)
    assert not guard.token_matches(b"nope")
    assert compared == [(TOKEN.encode(), TOKEN.encode()), (b"nope", TOKEN.encode())]


def test_the_cli_reads_the_token_and_the_allow_list_from_options_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.cli import main  # noqa: PLC0415

    taken: list[service.Options] = []
    monkeypatch.setattr(service, "run", lambda path, options, clock=None: taken.append(options))
    monkeypatch.setenv("RECONCILER_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("RECONCILER_SERVE_ALLOW_FROM", "203.0.113.0/24, 198.51.100.7")
    monkeypatch.setenv("RECONCILER_SERVE_TRUSTED_HOPS", "2")
    assert main(["serve", str(tmp_path), "--workers", "3", "--log-decisions", "none"]) == 0
    assert main(["serve", str(tmp_path), "--allow-from", "10.0.0.0/8", "--trusted-hops", "0"]) == 0
    from_env, from_options = taken
    assert from_env.access.token == TOKEN.encode()
    assert [str(n) for n in from_env.access.allow] == ["203.0.113.0/24", "198.51.100.7/32"]
    assert from_env.access.trusted_hops == 2
    assert (from_env.workers, from_env.log_decisions) == (3, "none")
    assert [str(n) for n in from_options.access.allow] == ["10.0.0.0/8"]
    assert from_options.access.trusted_hops == 0
    monkeypatch.setenv("RECONCILER_SERVE_TOKEN", "")
    assert main(["serve", str(tmp_path)]) == 1  # set but empty: refused
    monkeypatch.delenv("RECONCILER_SERVE_TOKEN")
    assert main(["serve", str(tmp_path), "--allow-from", "nowhere"]) == 1
    assert len(taken) == 2


def _exchange(port: int, data: bytes, *, close_early: bool = False) -> bytes:
    """Send raw bytes on one connection and read until the server closes it (or, with
    ``close_early``, hang up without reading)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        if close_early:
            return b""
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_the_head_limit_counts_the_head_and_never_a_body(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], parser: Parser
) -> None:
    """A head past 16 KiB is closed and counted once; a body of any size the app did not
    wait for (a JSON POST answered at once) is not a head, not an error; a client gone
    mid-form leaves no traceback."""
    folder = estate(tmp_path / "m")
    call = "/connect?CallSid=abc123&CallTo=08040264208"
    with serving(folder, service.Options(parser=parser)) as served:

        def errors() -> float:
            return parse(served.get("/metrics").text)["reconciler_serve_client_errors_total"]

        big_head = f"GET {call} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20_000}\r\n\r\n".encode()
        assert b" 200 " not in _exchange(served.port, big_head)
        assert errors() == 1
        body = b"{" + b'"x": 1, ' * 5_000 + b'"y": 2}'  # 40 KB
        post = (
            f"POST {call} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        answered = _exchange(served.port, post)
        assert answered.startswith(b"HTTP/1.1 200 "), answered[:200]
        assert errors() == 1  # the body was not taken for a head
        gone = (
            f"POST {call} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            "\r\nContent-Length: 1000\r\n\r\nCallSid=abc"
        ).encode()
        _exchange(served.port, gone, close_early=True)
        time.sleep(0.3)
        assert served.get("/connect", params=query()).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Exception in ASGI application" not in err


def test_the_end_of_a_burst_of_warnings_is_told(capfd: pytest.CaptureFixture[str]) -> None:
    from reconciler.routing.protocol import Throttled  # noqa: PLC0415

    warned = Throttled("serve.test_burst", every=0.05)
    for _ in range(5):
        warned()
    warned.flush()  # too soon: nothing new
    time.sleep(0.06)
    warned.flush()
    warned.flush()  # nothing since
    lines = [line for line in capfd.readouterr().err.splitlines() if "serve.test_burst" in line]
    assert len(lines) == 2, lines
    assert '"times": 1' in lines[0]
    assert '"times": 4' in lines[1]


def test_keep_alive_longer_than_the_header_timeout_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli.main import main  # noqa: PLC0415

    folder = estate(tmp_path / "m")
    argv = ["serve", str(folder), "--keep-alive", "20", "--header-timeout", "5"]
    assert main(argv) == 1
    assert "--keep-alive 20 is longer than --header-timeout 5.0" in capsys.readouterr().err


def test_a_relative_manifests_path_still_names_no_file_to_anonymous_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    estate(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    loader = Loader(Path("m"))
    assert loader.reload()
    (tmp_path / "m" / "state" / "demo.json").write_bytes(b"\xff\xfe")
    assert not loader.reload(log_failure=False)
    said = loader.public_problem
    assert "not UTF-8" in said
    assert "demo.json" not in said
    assert "<file>" in said
    assert said.count("<file>") == 1, said  # not every word after a "." or "m"
