"""Checks per second over HTTP against the crypto-only bound (issue 17: what the audit chain's
single head cost; version 1's `make bench` item 3, which version 2's `make bench` left out).

    python -m loadtests.http_throughput [--seconds 20] [--connections 6] [--workers 2]
                                        [--backends sqlite,postgresql]

Per backend: `refcheck-server init --demo` with the load-test policy (`loadtests.network`),
re-screening consents seeded for org-b's HR checker, then uvicorn with `--workers` workers on
127.0.0.1 (`loadtests.serve`, no background jobs: nothing else runs beside the checks but the
transparency log's sealer, run here every `audit_seal_interval_seconds` as the server would when
the code under test has one). The check bodies (`keys_per_check` blinded elements each, as the SDK
builds them) are prepared before the timed window and a sample of the answers is verified after it
(the batch proof against the announced key, the filter header's signature), so during the window
the client spends its CPU on sending and receiving only: on a machine shared by client and server,
client-side crypto would take the cores the server is measured on. `http.client` threads with
keep-alive connections, a closed loop; the first `--warmup` seconds are not counted.

The bound is what the server's cores could do if a check were its cryptography alone:
`os.cpu_count()` / (one `blind_evaluate` of `keys_per_check` elements with its batch proof,
the fastest of 50 timed in-process before the run and 50 after). The judged ratio is checks/s
over it (target >= 0.5). The load average is printed before and after: on a shared machine it
says what else ran.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import inspect
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtests.inprocess import InProcessServer, PreparedCheck
from loadtests.network import (
    DemoNetwork,
    create_pg_database,
    drop_pg_database,
    init_network,
    pg_server_url,
)
from loadtests.seed import seed_consents
from loadtests.serve import free_port, running_server

#: A re-screening consent allows 53 checks; 50 are used.
PER_CONSENT = 50
TARGET = 0.5


@dataclass
class Run:
    started: float
    results: list[tuple[int, float, int, float]] = field(default_factory=list)
    answers: dict[int, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def post_all(
    base_url: str, token: str, bodies: list[bytes], *, connections: int, duration: float
) -> Run:
    """POST the bodies to /v1/checks in order from `connections` threads until they run out or
    `duration` seconds pass; each result is (body index, finish time, status, latency)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    counter = itertools.count()
    lock = threading.Lock()
    run = Run(started=time.perf_counter())
    deadline = run.started + duration

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                index = next(counter)
                if index >= len(bodies):
                    return
                sent = time.perf_counter()
                try:
                    conn.request("POST", "/v1/checks", body=bodies[index], headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        run.errors.append(type(exc).__name__)
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=60)
                    continue
                done = time.perf_counter()
                with lock:
                    run.results.append((index, done, response.status, done - sent))
                    run.answers[index] = data
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run


@contextlib.contextmanager
def sealing(server: InProcessServer) -> Iterator[None]:
    """The transparency log's sealer during the run, every `audit_seal_interval_seconds`, as a
    server with background jobs runs it (`loadtests.serve` starts the server without them, so
    nothing else runs beside the checks). In a process of its own, as in the server, where it
    runs in a worker: run in this process, its hashing took the interpreter from the threads
    that send the checks, and cut the figure by a fifth (loadtests/README.md). Code from before
    the log has no sealer: nothing."""
    try:
        from server.transparency.sealer import seal_once  # noqa: F401 - only: is there a log?
    except ImportError:
        yield
        return
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    process = spawn.Process(target=_seal_every_interval, args=(server.network.env(), stop))
    process.start()
    try:
        yield
    finally:
        stop.set()
        process.join(timeout=30)


def _seal_every_interval(env: dict[str, str], stop: Any) -> None:
    os.environ.clear()
    os.environ.update(env)
    from server.app import build_context
    from server.settings import Settings
    from server.transparency.sealer import seal_once

    ctx = build_context(Settings())
    try:
        while not stop.is_set():
            seal_once(ctx)
            stop.wait(ctx.policy.audit_seal_interval_seconds)
    finally:
        ctx.sessions.kw["bind"].dispose()


def crypto_seconds(server: InProcessServer, prepared: PreparedCheck, samples: int = 50) -> float:
    """The server's evaluation and batch proof of one check's elements: the fastest of
    `samples` (on a shared machine a median measures the neighbours too; the bound is what the
    cryptography itself costs)."""
    from server.oprf.services import blind_evaluate

    blinded = list(prepared.blinded)
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        blind_evaluate(server.ctx, blinded)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(
    backend: str, *, seconds: float, warmup: float, connections: int, workers: int, rate: float
) -> str:
    with tempfile.TemporaryDirectory(prefix=f"refcheck-http-{backend}-") as tmp:
        database_url = ""
        server_url = pg_server_url()
        if backend == "postgresql":
            database_url = create_pg_database(server_url, prefix="refcheck_http")
        try:
            port = free_port()
            network = init_network(
                Path(tmp) / "data",
                database_url=database_url,
                base_url=f"http://127.0.0.1:{port}",
            )
            return _measure(network, port, seconds, warmup, connections, workers, rate)
        finally:
            if database_url:
                drop_pg_database(server_url, database_url)


def _measure(
    network: DemoNetwork,
    port: int,
    seconds: float,
    warmup: float,
    connections: int,
    workers: int,
    rate: float,
) -> str:
    from server.db import make_engine

    total = int(rate * (seconds + warmup))
    principal = network.principals["org-b-hr"]
    engine = make_engine(network.effective_database_url)
    try:
        extra = {}
        # The same script measures commits from before consents' details were sealed (the
        # "before" of loadtests/README.md), whose seeder takes no keys.
        if "org_keys" in inspect.signature(seed_consents).parameters:
            extra["org_keys"] = json.loads(principal.path.read_text()).get("org_keys")
        consents = seed_consents(
            engine,
            total // PER_CONSENT + 1,
            org_id=principal.org_id,
            principal_id=principal.principal_id,
            **extra,
        )
    finally:
        engine.dispose()
    server = InProcessServer(network)
    try:
        _say(f"{network.backend}: preparing {total} checks")
        prepared = [server.prepare(consents[i // PER_CONSENT], i) for i in range(total)]
        crypto = crypto_seconds(server, prepared[0])
        token = server._token
        load_before = os.getloadavg()
        _say(f"{network.backend}: {workers} workers, {connections} connections, {seconds} s")
        with running_server(network, port, workers=workers) as base_url, sealing(server):
            run = post_all(
                base_url,
                token,
                [p.body for p in prepared],
                connections=connections,
                duration=seconds + warmup,
            )
        load_after = os.getloadavg()
        crypto = min(crypto, crypto_seconds(server, prepared[0]))  # before and after the run
        cores = os.cpu_count() or 1
        bound = cores / crypto
        start = run.started + warmup
        counted = [r for r in run.results if r[1] >= start]
        ok = [r for r in counted if r[2] == 200]
        failed = len(counted) - len(ok) + len(run.errors)
        causes = collections.Counter(
            [f"HTTP {r[2]} {_problem(run.answers[r[0]])}" for r in counted if r[2] != 200]
            + run.errors
        )
        failures = f"{failed} failed" + (
            f" ({', '.join(f'{n} {cause}' for cause, n in sorted(causes.items()))})"
            if failed
            else ""
        )
        span = max(r[1] for r in counted) - start if counted else seconds
        per_second = len(ok) / span if span > 0 else 0.0
        # A fast but wrong server must not pass: verify a sample of the answers (after the run).
        sample = ok[:: max(1, len(ok) // 100)]
        for index, *_ in sample:
            server.read(prepared[index], run.answers[index])
        p50 = statistics.median(r[3] for r in ok) * 1e3 if ok else 0.0
        ratio = per_second / bound
        heads = _tree_heads(server)
        sealed = "no transparency log" if heads is None else f"{heads} tree heads signed"
        if len(run.results) + len(run.errors) >= total:
            # The figure then covers less than the window: say so rather than under-report.
            sealed += f"; all {total:,} prepared checks used before the window ended (raise --rate)"
        verdict = "met" if ratio >= TARGET else "missed"
        return (
            f"checks/s over HTTP, uvicorn {workers} workers, {network.backend} / crypto-only bound"
            f" | {per_second:.1f} checks/s ({len(ok):,} in {span:.1f} s after {warmup:.0f} s of"
            f" warm-up, {failures}, p50 {p50:.0f} ms with {connections} connections), bound"
            f" {cores} cores / {crypto * 1e3:.2f} ms = {bound:.0f} checks/s | ratio {ratio:.2f}"
            f" | target >= {TARGET} | {verdict}  [{server.keys_per_check} elements a check;"
            f" {len(sample)} answers verified after the window; {sealed}; load average"
            f" {' '.join(f'{x:.2f}' for x in load_before)} before,"
            f" {' '.join(f'{x:.2f}' for x in load_after)} after]"
        )
    finally:
        server.close()


def _problem(answer: bytes) -> str:
    """The problem slug of an error answer (`busy`, `quota-exceeded`, ...), or `?`."""
    try:
        kind = json.loads(answer).get("type", "")
    except (ValueError, AttributeError):
        return "?"
    return str(kind).rsplit(":", 1)[-1] or "?"


def _tree_heads(server: InProcessServer) -> int | None:
    """How many tree heads the log holds (None for code from before the log)."""
    from sqlalchemy import inspect as inspect_db
    from sqlalchemy import text

    bind = server.ctx.sessions.kw["bind"]
    if not inspect_db(bind).has_table("transparency_tree_heads"):
        return None
    with bind.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM transparency_tree_heads")).scalar_one())


def _say(message: str) -> None:
    print(f"[http {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.http_throughput")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--rate", type=float, default=400.0, help="checks prepared per second of the run"
    )
    args = parser.parse_args(argv)
    print(f"refcheck HTTP throughput, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for backend in args.backends.split(","):
        print(
            measure(
                backend,
                seconds=args.seconds,
                warmup=args.warmup,
                connections=args.connections,
                workers=args.workers,
                rate=args.rate,
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
