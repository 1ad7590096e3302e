"""Prometheus metrics (`GET /metrics`, text format), for the operator's monitoring.

Off unless asked for (`server.settings`): `REFCHECK_METRICS_ENABLED=true` serves `/metrics` on
the API's port (restrict it at the proxy), `REFCHECK_METRICS_PORT=9108` on a port of its own,
listening on `REFCHECK_METRICS_HOST` (127.0.0.1) only.

What is measured, and from where:

* per request, by `MetricsMiddleware` (outermost, so refusals by admission control and the size
  limits count too): `refcheck_http_requests_total{method,route,status}` and the latency
  histogram `refcheck_http_request_duration_seconds{method,route}`; `route` is the route's
  template (`/v1/cases/{case_id}`), never the path a caller sent, which would carry ids;
* `refcheck_checks_total{outcome}` (`run` or `refused`) and `refcheck_refusals_total{problem}`,
  the problem slug (`urn:refcheck:problem:<slug>`) of every 4xx/5xx problem answer;
* at scrape time, from the database (`DatabaseCollector`): disclosure requests by state and
  those overdue, the notification backlog by status, and the log sealer's lag (entries not yet
  in a signed tree head, and the age of the oldest).

**No identifier** and no organisation-internal reference is ever a label: labels come from
fixed sets (methods, route templates, status codes, problem slugs, states), and a slug that
does not look like one is counted as `other`. A test scrapes after requests full of ids.

Several workers (`serve --workers N`) count in prometheus-client's multiprocess mode: `serve`
points `PROMETHEUS_MULTIPROC_DIR` at a fresh private directory before the workers start, each
worker writes its counts there, and a scrape (of any worker, or of the metrics port that
`serve` itself listens on) sums them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import PROBLEM_BASE
from server.settings import Settings

log = logging.getLogger("refcheck.server.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "refcheck_http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "refcheck_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CHECKS = Counter(
    "refcheck_checks",
    "Checks asked for (POST /v1/checks): run, or refused with a problem.",
    ["outcome"],
)
REFUSALS = Counter(
    "refcheck_refusals",
    "Problem answers (4xx and 5xx), by problem type.",
    ["problem"],
)

_SLUG = re.compile(rb'"type"\s*:\s*"' + re.escape(PROBLEM_BASE.encode()) + rb'([a-z0-9-]{1,64})"')
#: Error bodies are small; a larger one is not read for its type.
_MAX_PROBLEM_BODY = 16 * 1024
_CHECKS_ROUTE = "/v1/checks"


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # No route matched (404, or refused before routing): one label for all such paths, whose
    # raw text could be anything a caller typed.
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: the answer streams through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        problem = bytearray()
        is_problem = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, is_problem
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = dict(message.get("headers") or [])
                is_problem = status >= 400 and b"problem+json" in headers.get(b"content-type", b"")
            elif message["type"] == "http.response.body" and is_problem:
                if len(problem) < _MAX_PROBLEM_BODY:
                    problem.extend(message.get("body", b"")[: _MAX_PROBLEM_BODY - len(problem)])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_of(scope)
            method = str(scope.get("method", "GET"))
            if route != "/metrics":
                REQUESTS.labels(method, route, str(status)).inc()
                LATENCY.labels(method, route).observe(time.perf_counter() - started)
            if status >= 400:
                found = _SLUG.search(bytes(problem)) if is_problem else None
                REFUSALS.labels(found.group(1).decode() if found else "other").inc()
            if method == "POST" and route == _CHECKS_ROUTE:
                CHECKS.labels("run" if status < 400 else "refused").inc()


def count_shed_at_door(method: str, path: str) -> None:
    """Count a request shed by the HTTP protocol before the app (and `MetricsMiddleware`) saw
    it, as the middleware counts a `busy` answer: no route was matched yet."""
    REQUESTS.labels(method, "unmatched", "503").inc()
    REFUSALS.labels("busy").inc()
    if method == "POST" and path == _CHECKS_ROUTE:
        CHECKS.labels("refused").inc()


# --- figures read from the database at scrape time ------------------------------------------

_DISCLOSURES_BY_STATE = "SELECT state, count(*) FROM disclosure_requests GROUP BY state"
_DISCLOSURES_OVERDUE = (
    "SELECT count(*) FROM disclosure_requests "
    "WHERE state IN ('requested', 'acknowledged') AND due_at < :now"
)
_NOTIFICATIONS_BY_STATUS = (
    "SELECT status, count(*) FROM notification_deliveries "
    "WHERE status IN ('pending', 'sending', 'undeliverable', 'not_sent') GROUP BY status"
)
_UNSEALED = "SELECT count(*), min(at) FROM audit_entries WHERE leaf_index IS NULL"


class DatabaseCollector(Collector):
    """Gauges computed when scraped: a few counting queries, each on an index."""

    def __init__(
        self, bind: Engine | Connection, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.bind = bind
        self.clock = clock or (lambda: datetime.now(UTC))

    def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]] | None:
        try:
            if isinstance(self.bind, Connection):  # the tests' one connection
                return [tuple(r) for r in self.bind.execute(text(sql), params)]
            with self.bind.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params)]
        except SQLAlchemyError as exc:
            # A figure missing from one scrape is better than a scrape that fails whole.
            log.warning("metrics query failed: %s", type(exc).__name__)
            return None

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        states = GaugeMetricFamily(
            "refcheck_disclosure_requests",
            "Disclosure requests held, by state.",
            labels=["state"],
        )
        for state, count in self._rows(_DISCLOSURES_BY_STATE) or []:
            states.add_metric([str(state)], float(count))
        yield states
        overdue = self._rows(_DISCLOSURES_OVERDUE, now=now)
        if overdue is not None:
            yield GaugeMetricFamily(
                "refcheck_disclosure_requests_overdue",
                "Disclosure requests still unanswered after their due date.",
                value=float(overdue[0][0]),
            )
        backlog = GaugeMetricFamily(
            "refcheck_notification_backlog",
            "Notification deliveries not sent: waiting, being sent, given up, or recorded "
            "while no SMTP server is configured.",
            labels=["status"],
        )
        for status, count in self._rows(_NOTIFICATIONS_BY_STATUS) or []:
            backlog.add_metric([str(status)], float(count))
        yield backlog
        unsealed = self._rows(_UNSEALED)
        if unsealed is not None:
            count, oldest = unsealed[0]
            yield GaugeMetricFamily(
                "refcheck_log_unsealed_entries",
                "Audit entries not yet in a signed tree head.",
                value=float(count or 0),
            )
            yield GaugeMetricFamily(
                "refcheck_log_sealer_lag_seconds",
                "Age of the oldest audit entry not yet in a signed tree head (0: none).",
                value=_age(oldest, now),
            )


def _age(oldest: Any, now: datetime) -> float:
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):  # SQLite hands back the stored text
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


# --- exposition -------------------------------------------------------------------------------


def registry_for(
    bind: Engine | Connection, clock: Callable[[], datetime] | None = None
) -> CollectorRegistry:
    """What a scrape reads: this process's counts (or, with several workers, every worker's
    summed), and the database's figures."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry)
    else:
        for metric in (REQUESTS, LATENCY, CHECKS, REFUSALS):
            registry.register(metric)
    registry.register(DatabaseCollector(bind, clock))
    return registry


def install_metrics(
    app: FastAPI,
    settings: Settings,
    bind: Engine | Connection,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Count requests when metrics are on at all; serve `GET /metrics` with
    `metrics_enabled`. Added after every other middleware, so it is the outermost."""
    if not (settings.metrics_enabled or settings.metrics_port):
        return
    app.add_middleware(MetricsMiddleware)
    if not settings.metrics_enabled:
        return
    router = APIRouter()
    registry = registry_for(bind, clock)

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)


def prepare_multiprocess(workers: int) -> None:
    """Before several workers start: a fresh private directory for their counts (a stale one
    would add a previous run's counts to this one's)."""
    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        return
    path = tempfile.mkdtemp(prefix="refcheck-metrics-")
    os.environ[MULTIPROC_ENV] = path
    import atexit

    atexit.register(shutil.rmtree, path, True)


def start_metrics_server(settings: Settings) -> Callable[[], None]:
    """Serve the metrics on `metrics_host:metrics_port` from a thread of this process."""
    from prometheus_client import start_http_server

    from server.db import engine_arguments, make_engine

    engine = make_engine(settings.effective_database_url, **engine_arguments(settings))
    server, thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=registry_for(engine)
    )

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)
        engine.dispose()

    return stop


def sample_names(exposition: str) -> Iterable[str]:
    """The metric names of a text exposition (tests, and a quick look by hand)."""
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            yield line.split("{", 1)[0].split(" ", 1)[0]
