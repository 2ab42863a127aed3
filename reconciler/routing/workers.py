"""``reconciler serve --workers N``: N forked processes sharing one listening socket.

Used by ``routing.service``. The parent binds the socket and loads the routes once (so a
bad checkout is refused before anything serves), then forks; each worker checks the
files again, keeps its own snapshot and reloads it on its own (a request is answered from
one snapshot, never a mix), and the kernel spreads new connections over the workers
accepting on the shared socket. The parent only supervises: SIGTERM or SIGINT is passed
to every worker, which stops accepting and finishes what is in flight (``serve``'s
``--graceful-timeout``); a worker that dies otherwise is replaced, unless workers keep
dying (then the parent stops them all and exits 1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

import structlog

log = structlog.get_logger("reconciler.serve")
RESTARTS_ALLOWED = 5  # within RESTART_WINDOW seconds, before the parent gives up
RESTART_WINDOW = 60.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Supervisor:
    """Forks the workers, replaces one that dies, and stops them all on a stop signal."""

    def __init__(self, work: Callable[[int], None], exited: Callable[[int], None]) -> None:
        self.work = work
        self.exited = exited
        self.workers: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.status = 0
        self._restarts: list[float] = []

    def stop(self, signum: int, frame: FrameType | None = None) -> None:
        if not self.stopping:
            name = signal.Signals(signum).name
            log.info("serve.stopping", signal=name, workers=len(self.workers))
        self.stopping = True
        for pid in list(self.workers):
            _signal(pid, signal.SIGTERM)

    def start(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                for signum in STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                self.work(index)
                status = 0
            except BaseException:  # a worker reports and ends, whatever it was
                log.exception("serve.worker_failed", worker=index)
            finally:
                os._exit(status)
        self.workers[pid] = index

    def reap(self, pid: int, code: int) -> None:
        """A worker ended: replace it, unless stopping or workers keep dying."""
        index = self.workers.pop(pid, -1)
        if index < 0:
            return
        self.exited(pid)
        if self.stopping:
            return
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
        restarting = len(self._restarts) <= RESTARTS_ALLOWED
        exit_code = os.waitstatus_to_exitcode(code)
        log.error(
            "serve.worker_exited", worker=index, pid=pid, exit=exit_code, restarting=restarting
        )
        if restarting:
            self.start(index)
        else:
            self.status = 1
            self.stop(signal.SIGTERM)

    def finish(self, grace: float) -> None:
        """Wait for workers still running (only if waiting broke off), then kill them."""
        deadline = time.monotonic() + grace + 5
        while self.workers and time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid:
                self.workers.pop(pid, None)
                self.exited(pid)
            else:
                time.sleep(0.05)
        for pid in self.workers:
            _signal(pid, signal.SIGKILL)


def supervise(
    count: int,
    work: Callable[[int], None],
    *,
    listener: socket.socket,
    grace: float,
    exited: Callable[[int], None] = lambda pid: None,
) -> int:
    """Run ``work(index)`` in ``count`` forked workers until a stop signal; the exit status."""
    supervisor = Supervisor(work, exited)
    previous = {signum: signal.signal(signum, supervisor.stop) for signum in STOP_SIGNALS}
    try:
        for index in range(count):
            supervisor.start(index)
        log.info("serve.workers", workers=count, pids=sorted(supervisor.workers))
        while supervisor.workers:
            try:
                pid, code = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            supervisor.reap(pid, code)
    finally:
        listener.close()
        supervisor.finish(grace)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("serve.stopped", workers=count)
    return supervisor.status


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
