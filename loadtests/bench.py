"""`make bench`: the server against the crypto floor, against a peer, over HTTP and at scale.

    python -m loadtests.bench [--quick] [--rescreen-rows N] [--no-postgres]

Every figure is a ratio measured in the same run on this machine, so it compares across machines
and survives other processes' load better than seconds do. The unit is one ristretto255 scalar
multiplication (libsodium through rbcl), re-timed next to every sample (`loadtests.measure`).
Figures, each printed with what was measured, the absolute numbers, the ratio, the target and
`met` or `missed`:

1. server cost per checked key of `POST /v1/checks` in-process (token check, consent, quota,
   evaluation and proof, bucket lookup, audit entry, counters, commit, JSON answer) at 8 keys,
   in units (target <= 3.0; the VOPRF floor is 2.4);
2. our per-element cost of answering a check's evaluation (parse the request, decode, evaluate
   and prove, encode the answer) over OpenMined PSI's `ProcessRequest` (parse, multiply,
   serialize) on the same 8 elements (target <= 2.2); then the bytes a client downloads per check
   from us and from OpenMined (its setup message for the same registry) at 100,000 keys;
3. checks per second over HTTP against uvicorn (2 workers, 127.0.0.1) over the crypto-only bound
   2 cores / (cost of one check's evaluation) (target >= 0.5), on SQLite and PostgreSQL;
4. check latency p50/p95 (in-process, one caller) with 100,000 and 1,000,000 registered
   pseudonyms over the same with 1,000, on SQLite and PostgreSQL (target <= 1.5);
5. `refcheck rescreen` of 10,000 staff records over HTTP: wall time over 10,000 times the cost
   of one check's evaluation (no target).

The last line is `N of M targets met`. The run uses temporary directories and fresh PostgreSQL
databases (created and dropped here) and sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from loadtests.httpload import post_all
from loadtests.inprocess import KEYS_PER_CHECK, InProcessServer, PreparedCheck, applicant_values
from loadtests.measure import Unit
from loadtests.network import (
    PG_SERVER_ENV,
    DemoNetwork,
    create_pg_database,
    drop_pg_database,
    init_network,
    pg_server_url,
)
from loadtests.people import person, write_staff_csv
from loadtests.report import Figure, Target, format_bytes, format_figure, percentile, summary_line
from loadtests.seed import Holder, seed_consents, seed_pseudonyms
from loadtests.serve import free_port, running_server

TARGET_SERVER_PER_KEY = Target("<=", 3.0)
TARGET_VS_OPENMINED = Target("<=", 2.2)
TARGET_HTTP_THROUGHPUT = Target(">=", 0.5)
TARGET_LATENCY_GROWTH = Target("<=", 1.5)
SIZES = (1_000, 100_000, 1_000_000)
#: The registry size of the download figure (item 2) and of the HTTP runs (items 3 and 5).
REFERENCE_SIZE = 100_000
#: OpenMined's false-positive rate for the setup message: one in a billion per check of 8 keys.
OPENMINED_FPR = 1e-9
#: Consent id of requests that are only evaluated, never sent.
_NO_CONSENT = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Plan:
    """Sample counts and sizes of one run; `--quick` shrinks everything for a smoke run."""

    sizes: tuple[int, ...]
    cost_samples: int
    latency_checks: int
    http_seconds: float
    http_connections: int
    rescreen_rows: int
    postgres: bool


def _say(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _holders(network: DemoNetwork) -> list[Holder]:
    return [
        Holder(network.principals[name].org_id, network.principals[name].principal_id)
        for name in ("org-a-focal", "org-b-focal")
    ]


def _engine(network: DemoNetwork) -> Engine:
    from server.db import make_engine

    return make_engine(network.effective_database_url)


def _seed_to(network: DemoNetwork, key_id: str, bits: int, have: int, want: int) -> int:
    engine = _engine(network)
    try:
        result = seed_pseudonyms(
            engine, want - have, holders=_holders(network), key_id=key_id, bucket_bits=bits
        )
    finally:
        engine.dispose()
    _say(f"  seeded {result.pseudonyms:,} pseudonyms in {result.seconds:.1f} s (total {want:,})")
    return want


def _consents(network: DemoNetwork, count: int, checker: str = "org-b-hr") -> list[str]:
    engine = _engine(network)
    try:
        principal = network.principals[checker]
        return seed_consents(
            engine, count, org_id=principal.org_id, principal_id=principal.principal_id
        )
    finally:
        engine.dispose()


class _Checks:
    """Prepared (blinded) check requests, handed out once each."""

    def __init__(self, server: InProcessServer, consents: Sequence[str], per_consent: int = 50):
        self._server = server
        self._consents = list(consents)
        self._per_consent = per_consent
        self._next = 0

    def take(self, n: int) -> list[PreparedCheck]:
        out = []
        for _ in range(n):
            i = self._next
            self._next += 1
            consent = self._consents[(i // self._per_consent) % len(self._consents)]
            out.append(self._server.prepare(consent, i))
        return out


def _latency(server: InProcessServer, checks: _Checks, n: int) -> tuple[list[float], int, float]:
    """Seconds of `n` sequential in-process checks (after 5 unmeasured ones), the mean size of
    their answers and the mean number of bucket entries in them; every answer is verified after
    it is timed."""
    for prepared in checks.take(5):
        server.verify(prepared, server.post_check(prepared.body))
    seconds: list[float] = []
    sizes: list[int] = []
    entries: list[int] = []
    for prepared in checks.take(n):
        start = time.perf_counter()
        answer = server.post_check(prepared.body)
        seconds.append(time.perf_counter() - start)
        server.verify(prepared, answer)
        sizes.append(len(answer))
        entries.append(sum(len(b["entries"]) for b in json.loads(answer)["buckets"]))
    return seconds, int(statistics.mean(sizes)), statistics.mean(entries)


@dataclass
class _Latencies:
    p50: dict[int, float]
    p95: dict[int, float]
    answer_bytes: dict[int, int]
    entries: dict[int, float]


def _latency_series(
    label: str, network: DemoNetwork, plan: Plan, unit: Unit, extra: Callable[..., None] | None
) -> _Latencies:
    """Item 4 on one backend: seed to each size in turn and time checks at each."""
    server = InProcessServer(network)
    out = _Latencies({}, {}, {}, {})
    try:
        consents = _consents(network, 1 + (plan.latency_checks * 4 + 400) // 50)
        checks = _Checks(server, consents)
        have = 0
        for size in plan.sizes:
            have = _seed_to(network, server.key_id, server.bucket_bits, have, size)
            seconds, answer, entries = _latency(server, checks, plan.latency_checks)
            out.p50[size] = percentile(seconds, 50)
            out.p95[size] = percentile(seconds, 95)
            out.answer_bytes[size] = answer
            out.entries[size] = entries
            _say(
                f"  {label} {size:>9,}: p50 {out.p50[size] * 1e3:.2f} ms, "
                f"p95 {out.p95[size] * 1e3:.2f} ms, answer {format_bytes(answer)}, "
                f"{entries:.0f} entries"
            )
            if extra is not None and size == plan.sizes[0]:
                extra(server, checks)
    finally:
        server.close()
    return out


def _latency_figures(label: str, lat: _Latencies, plan: Plan) -> list[Figure]:
    base = plan.sizes[0]
    figures = []
    for size in plan.sizes[1:]:
        r50 = lat.p50[size] / lat.p50[base]
        r95 = lat.p95[size] / lat.p95[base]
        figures.append(
            Figure(
                label=f"4. check latency {label}, {size:,} vs {base:,} registered",
                measured=(
                    f"p50 {lat.p50[size] * 1e3:.1f} / {lat.p50[base] * 1e3:.1f} ms = {r50:.2f}, "
                    f"p95 {lat.p95[size] * 1e3:.1f} / {lat.p95[base] * 1e3:.1f} ms = {r95:.2f}, "
                    f"answer {format_bytes(lat.answer_bytes[size])} "
                    f"({lat.entries[size]:,.0f} bucket entries) vs "
                    f"{format_bytes(lat.answer_bytes[base])} ({lat.entries[base]:,.0f})"
                ),
                ratio=max(r50, r95),
                target=TARGET_LATENCY_GROWTH,
                note=f"{plan.latency_checks} checks each, ratio = the larger of p50 and p95",
            )
        )
    return figures


def _server_cost_figures(
    server: InProcessServer, checks: _Checks, unit: Unit, plan: Plan
) -> list[Figure]:
    """Items 1 and 2 (the per-element comparison), on the smallest registry."""
    from protocol.messages import CheckRequest
    from server.oprf.services import blind_evaluate, decode_elements

    calls = 4
    batch = iter(checks.take(plan.cost_samples * calls + 1))
    full = unit.paired(
        lambda: server.post_check(next(batch).body),
        samples=plan.cost_samples,
        calls=calls,
        per=KEYS_PER_CHECK,
    )
    sample = checks.take(1)[0]
    blinded = list(sample.blinded)

    def evaluate_only() -> None:
        blind_evaluate(server.ctx, blinded)

    crypto = unit.paired(evaluate_only, samples=plan.cost_samples, calls=4, per=KEYS_PER_CHECK)

    def answer_evaluation() -> bytes:
        """What a check does for the OPRF alone: parse, decode, evaluate and prove, encode."""
        req = CheckRequest.model_validate_json(sample.body)
        evaluated, proof = blind_evaluate(server.ctx, decode_elements(req.blinded_elements))
        return json.dumps(
            {"evaluated_elements": [e.hex() for e in evaluated], "proof": proof.hex()}
        ).encode()

    ours = unit.paired(answer_evaluation, samples=plan.cost_samples, calls=4, per=KEYS_PER_CHECK)

    import private_set_intersection.python as psi

    psi_server = psi.server.CreateWithNewKey(True)
    psi_client = psi.client.CreateWithNewKey(True)
    request = psi_client.CreateRequest([v.hex() for v in applicant_values(0)])
    theirs = unit.paired(
        lambda: psi_server.ProcessRequest(request),
        samples=plan.cost_samples,
        calls=4,
        per=KEYS_PER_CHECK,
    )
    us = full.unit_seconds * 1e6
    return [
        Figure(
            label="1. POST /v1/checks in-process, cost per key / one scalar multiplication",
            measured=(
                f"{full.op_seconds * 1e3:.2f} ms per check of {KEYS_PER_CHECK} keys "
                f"(its evaluation and proof alone {crypto.op_seconds * 1e3:.2f} ms = "
                f"{crypto.ratio:.2f} per key), multiplication {us:.0f} us"
            ),
            ratio=full.ratio,
            target=TARGET_SERVER_PER_KEY,
            note=f"{plan.cost_samples} paired samples of {calls} checks, 1,000 registered",
        ),
        Figure(
            label="2. per-element server cost, ours / OpenMined PSI ProcessRequest",
            measured=(
                f"ours {ours.ratio:.2f} (parse, decode, evaluate, prove, encode), "
                f"OpenMined {theirs.ratio:.2f} (parse, multiply, serialize) multiplications "
                f"per element at {KEYS_PER_CHECK} elements; our whole check "
                f"{full.ratio:.2f} = {full.ratio / theirs.ratio:.1f}x theirs"
            ),
            ratio=ours.ratio / theirs.ratio,
            target=TARGET_VS_OPENMINED,
            note=f"{plan.cost_samples} paired samples of 4 calls each",
        ),
    ]


def _openmined_download(size: int, our_answer: int) -> Figure:
    """Item 2, second half: bytes a client downloads per check, ours vs OpenMined's."""
    import private_set_intersection.python as psi

    psi_server = psi.server.CreateWithNewKey(True)
    psi_client = psi.client.CreateWithNewKey(True)
    started = time.perf_counter()
    setup = psi_server.CreateSetupMessage(
        OPENMINED_FPR, KEYS_PER_CHECK, [f"registered-{i}" for i in range(size)]
    )
    setup_seconds = time.perf_counter() - started
    response = psi_server.ProcessRequest(
        psi_client.CreateRequest([v.hex() for v in applicant_values(0)])
    )
    theirs = len(setup.SerializeToString()) + len(response.SerializeToString())
    return Figure(
        label=f"2. bytes downloaded per check of {KEYS_PER_CHECK} keys at {size:,} registered",
        measured=(
            f"ours {format_bytes(our_answer)} (evaluations, proof, {KEYS_PER_CHECK} whole "
            f"buckets as JSON), OpenMined {format_bytes(theirs)} (setup message, GCS at fpr "
            f"{OPENMINED_FPR:g}, built in {setup_seconds:.0f} s, plus its response)"
        ),
        ratio=our_answer / theirs,
        note="ours / OpenMined; OpenMined's setup can be cached until the registry changes",
    )


def _token(network: DemoNetwork, checker: str) -> str:
    """An access token for `checker`, issued with the network's own token key (what the token
    endpoint would hand out after a client assertion)."""
    from server.app import build_context
    from server.auth.permissions import Role
    from server.auth.tokens import Caller, issue_access_token

    ctx = build_context(network.settings())
    principal = network.principals[checker]
    caller = Caller(
        principal.principal_id, principal.org_id, frozenset(Role(r) for r in principal.roles)
    )
    token, _ttl = issue_access_token(
        settings=ctx.settings, keys=ctx.keys, caller=caller, now=ctx.now()
    )
    ctx.sessions.kw["bind"].dispose()
    return token


def _eval_cost(unit: Unit, server: InProcessServer, keys: int, samples: int) -> float:
    """Seconds of one check's evaluation and proof at `keys` keys (median, paired)."""
    from server.oprf.services import blind_evaluate

    blinded = list(server.prepare(_NO_CONSENT, 0, keys).blinded)
    return unit.paired(lambda: blind_evaluate(server.ctx, blinded), samples=samples).op_seconds


def _http_throughput(
    label: str, network: DemoNetwork, plan: Plan, unit: Unit, workdir: Path
) -> Figure:
    """Item 3 on one backend, on the smallest registry (as item 1: what is measured is the
    server's work per check above the crypto, item 4 covers the registry's size)."""
    server = InProcessServer(network)
    try:
        _seed_to(network, server.key_id, server.bucket_bits, 0, plan.sizes[0])
        consents = _consents(network, int(plan.http_seconds * 1000) // 50 + 2)
        checks = _Checks(server, consents)
        warm_up = checks.take(60)
        token = _token(network, "org-b-hr")
        port = free_port()
        with running_server(network, port, log_path=workdir / f"uvicorn-{label}.log") as url:
            warm = post_all(
                url, "/v1/checks", token, [p.body for p in warm_up],
                connections=plan.http_connections, duration=30, keep_answers=False,
            )  # fmt: skip
            # As many requests as the warm-up rate says the window needs, and half as many more.
            rate_seen = len(warm.results) / max(warm.finished - warm.started, 1e-3)
            expected = int(rate_seen * plan.http_seconds * 1.5) + 100
            _say(f"  preparing {expected:,} blinded check requests (client side, untimed)")
            prepared = checks.take(expected)
            crypto_before = _eval_cost(unit, server, KEYS_PER_CHECK, 15)
            run = post_all(
                url,
                "/v1/checks",
                token,
                [p.body for p in prepared],
                connections=plan.http_connections,
                duration=plan.http_seconds,
            )
            crypto_after = _eval_cost(unit, server, KEYS_PER_CHECK, 15)
        ok = [r for r in run.results if r[2] == 200]
        failed = len(run.results) - len(ok) + len(run.errors)
        seconds = run.finished - run.started
        for index, answer in run.answers.items():
            server.verify(prepared[index], answer)
        rate = len(ok) / seconds
        crypto = statistics.mean([crypto_before, crypto_after])
        bound = 2 / crypto
        latencies = [r[3] for r in ok]
        return Figure(
            label=f"3. checks/s over HTTP, uvicorn 2 workers, {label} / crypto-only bound",
            measured=(
                f"{rate:.1f} checks/s ({len(ok):,} in {seconds:.1f} s, {failed} failed, "
                f"p50 {percentile(latencies, 50) * 1e3:.0f} ms with "
                f"{plan.http_connections} connections), bound 2 cores / "
                f"{crypto * 1e3:.2f} ms = {bound:.0f} checks/s"
            ),
            ratio=rate / bound,
            failure=f"{failed} requests failed" if failed else "",
            target=TARGET_HTTP_THROUGHPUT,
            note=(
                f"{KEYS_PER_CHECK} keys, {plan.sizes[0]:,} registered, requests blinded before "
                "and every answer verified after the timed window"
            ),
        )
    finally:
        server.close()


def _rescreen(network: DemoNetwork, plan: Plan, unit: Unit, workdir: Path) -> Figure:
    """Item 5: the real `refcheck rescreen` CLI against uvicorn, rows with consents on file."""
    from protocol.identity import derive_keys

    server = InProcessServer(network)
    try:
        registry = min(REFERENCE_SIZE, plan.sizes[-1])
        _seed_to(network, server.key_id, server.bucket_bits, plan.sizes[0], registry)
        rows = plan.rescreen_rows
        consents = _consents(network, rows)
        staff = workdir / "staff.csv"
        write_staff_csv(staff, consents)
        keys = round(statistics.mean(len(derive_keys(person(i))) for i in range(min(rows, 500))))
        crypto = _eval_cost(unit, server, keys, 15)
        port = free_port()
        creds = network.principals["org-b-hr"].path
        out = workdir / "rescreen-results.csv"
        with running_server(network, port, log_path=workdir / "uvicorn-rescreen.log") as url:
            cmd = [str(Path(sys.executable).parent / "refcheck"), "--credentials", str(creds)]
            cmd += ["--base-url", url, "--json", "rescreen", str(staff), "--out", str(out)]
            started = time.perf_counter()
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - started
        crypto_after = _eval_cost(unit, server, keys, 15)
        crypto = statistics.mean([crypto, crypto_after])
        statuses: dict[str, int] = {}
        with out.open() as fh:
            next(fh)
            for line in fh:
                status = line.split(",")[2]
                statuses[status] = statuses.get(status, 0) + 1
        if result.returncode not in (0, 10, 11):
            _say(f"  rescreen exit {result.returncode}: {result.stderr.strip()[-300:]}")
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items()))
        return Figure(
            label=(
                f"5. refcheck rescreen of {rows:,} staff, "
                f"wall time / ({rows:,} x one check's crypto)"
            ),
            measured=(
                f"{wall:.1f} s ({rows / wall:.0f} rows/s; {counts}; exit {result.returncode}), "
                f"one check's evaluation {crypto * 1e3:.2f} ms at {keys} keys "
                f"(mean keys per row)"
            ),
            ratio=wall / (rows * crypto),
            note=f"{network.backend}, {registry:,} registered",
        )
    finally:
        server.close()


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run(plan: Plan) -> list[Figure]:
    unit = Unit()
    figures: list[Figure] = []
    pg_url = pg_server_url()
    with tempfile.TemporaryDirectory(prefix="refcheck-bench-") as tmp:
        root = Path(tmp)

        _say("SQLite: demo network, registry growing 1,000 -> 100,000 -> 1,000,000")
        lite = init_network(root / "sqlite")
        cost: list[Figure] = []

        def at_smallest(server: InProcessServer, checks: _Checks) -> None:
            _say("  items 1 and 2: server cost per key, OpenMined ProcessRequest")
            cost.extend(_server_cost_figures(server, checks, unit, plan))

        lite_lat = _latency_series("SQLite", lite, plan, unit, at_smallest)
        figures.extend(cost)
        ref = REFERENCE_SIZE if REFERENCE_SIZE in plan.sizes else plan.sizes[-1]
        _say(f"  OpenMined setup message for {ref:,} items")
        figures.append(_openmined_download(ref, lite_lat.answer_bytes[ref]))

        _say("SQLite over HTTP")
        http_lite = init_network(root / "sqlite-http")
        figures.append(_http_throughput("SQLite", http_lite, plan, unit, root))

        pg_figures: list[Figure] = []
        pg_lat: _Latencies | None = None
        if plan.postgres:
            for purpose in ("latency", "http"):
                url = create_pg_database(pg_url)
                try:
                    net = init_network(root / f"pg-{purpose}", database_url=url)
                    if purpose == "latency":
                        _say("PostgreSQL: demo network, registry growing")
                        pg_lat = _latency_series("PostgreSQL", net, plan, unit, None)
                    else:
                        _say("PostgreSQL over HTTP")
                        pg_figures.append(_http_throughput("PostgreSQL", net, plan, unit, root))
                        _say(f"refcheck rescreen of {plan.rescreen_rows:,} rows (PostgreSQL)")
                        pg_figures.append(_rescreen(net, plan, unit, root))
                finally:
                    drop_pg_database(pg_url, url)
        figures.extend(pg_figures[:1])
        figures.extend(_latency_figures("SQLite", lite_lat, plan))
        if pg_lat is not None:
            figures.extend(_latency_figures("PostgreSQL", pg_lat, plan))
        if plan.postgres:
            figures.extend(pg_figures[1:])
        else:
            _say(f"refcheck rescreen of {plan.rescreen_rows:,} rows (SQLite)")
            figures.append(_rescreen(http_lite, plan, unit, root))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--rescreen-rows", type=int, default=None)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        plan = Plan((1_000, 3_000, 10_000), 5, 20, 3.0, 4, 100, not args.no_postgres)
    else:
        plan = Plan(SIZES, 21, 120, 20.0, 6, 10_000, not args.no_postgres)
    if args.rescreen_rows is not None:
        plan = Plan(**{**plan.__dict__, "rescreen_rows": args.rescreen_rows})
    notes: list[str] = []
    if plan.postgres and not _pg_reachable(pg_server_url()):
        notes.append(
            f"PostgreSQL not reachable at {pg_server_url()} (set {PG_SERVER_ENV}): its figures "
            "are left out and not counted"
        )
        plan = Plan(**{**plan.__dict__, "postgres": False})
    started = time.perf_counter()
    load_before = _load_average()
    figures = run(plan)
    elapsed = time.perf_counter() - started
    print("refcheck bench (make bench): ratios measured in this run on this machine")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average "
        f"{load_before} at start and {_load_average()} at the end, {elapsed:.0f} s"
    )
    print(
        f"samples: {plan.cost_samples} paired samples for items 1-2, {plan.latency_checks} "
        f"checks per registry size, {plan.http_seconds:.0f} s with {plan.http_connections} "
        f"connections per HTTP run, {plan.rescreen_rows:,} rescreen rows"
    )
    for note in notes:
        print(note)
    for figure in figures:
        print(format_figure(figure))
    print(summary_line(figures))
    return 0


def _pg_reachable(url: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure to connect means: no PostgreSQL here
        return False
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
