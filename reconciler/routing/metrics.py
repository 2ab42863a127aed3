"""What ``reconciler serve`` exposes at ``/metrics`` (Prometheus' text format).

Used by ``routing.service``. One ``Metrics`` per app (its own registry, so tests can run
several). With ``--workers N`` the service sets ``PROMETHEUS_MULTIPROC_DIR`` before
this module is first imported: each worker writes its numbers to files there and a
scrape, whichever worker answers it, adds them up (prometheus-client's multiprocess
mode). Gauges are then per worker (a ``pid`` label) or the worst of them.

    reconciler_serve_answers_total{kind,rule,status}   every answer (kind: connect, handoff)
    reconciler_serve_answer_seconds{kind}               time to answer, agents check included
    reconciler_serve_denied_total{status}               401 (no token) and 403 (allow-list)
    reconciler_serve_reloads_total                      new snapshots swapped in
    reconciler_serve_reload_failures_total              newer files that failed or were refused
    reconciler_serve_routes / _trunks                   what the served snapshot holds
    reconciler_serve_stale                              1 while the newest files are not served
    reconciler_serve_snapshot_age_seconds               since the served state last matched
                                                        the files (grows only while stale)
    reconciler_serve_connections_refused_total          over --max-connections
    reconciler_serve_client_timeouts_total              no complete request in --header-timeout
    reconciler_serve_client_errors_total                malformed HTTP (closed, never a traceback)
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as multiprocess_mode

# Loopback answers take about 0.3 ms; an agents check up to its timeout_ms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# No *_created series: noise for counters that start with the process.
disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


class Metrics:
    def __init__(self) -> None:
        self._multiprocess = multiprocess()
        # In multiprocess mode the values live in files; nothing is registered for export.
        registry = None if self._multiprocess else CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.answers = Counter(
            "reconciler_serve_answers",
            "Answers by kind (connect, handoff), routing rule and HTTP status",
            ["kind", "rule", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "reconciler_serve_answer_seconds",
            "Time to answer a call-path request, the agents check included",
            ["kind"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.denied = Counter(
            "reconciler_serve_denied",
            "Requests refused before routing: 401 without the token, 403 off the allow-list",
            ["status"],
            registry=registry,
        )
        self.reloads = Counter(
            "reconciler_serve_reloads", "New snapshots swapped in", registry=registry
        )
        self.reload_failures = Counter(
            "reconciler_serve_reload_failures",
            "Newer manifests or ledgers that failed to load or were refused",
            registry=registry,
        )
        self.routes = Gauge(
            "reconciler_serve_routes",
            "Routes in the snapshot being served",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.trunks = Gauge(
            "reconciler_serve_trunks",
            "Trunk SIDs in the snapshot being served",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.stale = Gauge(
            "reconciler_serve_stale",
            "1 while the newest files failed to load (or a ledger is missing) and the last "
            "good state serves",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.age = Gauge(
            "reconciler_serve_snapshot_age_seconds",
            "Seconds since the served state last matched the files on disk (about the "
            "reload interval while current; grows while stale)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.refused = Counter(
            "reconciler_serve_connections_refused",
            "Connections closed at once because --max-connections were open",
            registry=registry,
        )
        self.timeouts = Counter(
            "reconciler_serve_client_timeouts",
            "Connections closed for sending no complete request within --header-timeout",
            registry=registry,
        )
        self.client_errors = Counter(
            "reconciler_serve_client_errors",
            "Connections closed for malformed HTTP",
            registry=registry,
        )

    def render(self) -> bytes:
        if self._multiprocess:
            registry = CollectorRegistry()
            multiprocess_mode.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        assert self.registry is not None
        return generate_latest(self.registry)


def worker_exited(pid: int) -> None:
    """A worker is gone: its per-worker gauges leave the sums (multiprocess mode only)."""
    if multiprocess():
        multiprocess_mode.mark_process_dead(pid)  # type: ignore[no-untyped-call]
