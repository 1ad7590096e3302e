"""`make load`: a headless locust run against a local server with a seeded registry.

    python -m loadtests.run [--users 50] [--spawn-rate 10] [--seconds 60] [--registry 100000]
                            [--postgres] [--cold-filters]

Steps: a temporary data dir; `refcheck-server init --demo` (with the load-test policy: the
network policy with the daily quotas of `loadtests/policy_overrides.toml`, high enough not to
throttle the run); `--registry` version-2 entries inserted in bulk (`loadtests.seed`, whole
cases of `keys_per_check`), every 30th person of the users' population registered through the
server's registration code (so about one check in 30 matches and the disclosure workflow runs),
and the registry filter published from them; uvicorn with 2 workers on a free port of
127.0.0.1 (`loadtests.serve`); each HR system's filter fetched once into its SDK filter file
(`write_filter_files`; not with `--cold-filters`); a 20-second single-user run of the HR
checker, checking back to back (the baseline latency); then locust with the full mix
(`loadtests/locustfile.py`); the per-endpoint report (requests, failures, throughput,
p50/p95/p99) and the targets; the server is stopped and the directory removed. Every request
goes to 127.0.0.1; locust runs as a subprocess (it monkey-patches the standard library with
gevent, which must not leak into this process).

Targets (issue 8): no failed request at 50 users for 60 s; p95 of `POST /v1/checks` under load
at most 10 times its single-user median.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.network import (
    LOADTESTS_DIR,
    DemoNetwork,
    create_pg_database,
    drop_pg_database,
    init_network,
    pg_server_url,
)
from loadtests.people import POPULATION
from loadtests.report import Figure, Target, format_figure, summary_line
from loadtests.seed import EntryKeys, Holder, seed_entries
from loadtests.serve import HOST, free_port, running_server
from server.db import make_engine

CHECK_ENDPOINT = "POST /v1/checks"
TARGET_FAILURES = Target("<=", 0)
TARGET_CHECK_P95 = Target("<=", 10)
BASELINE_SECONDS = 20


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


def read_stats(path: Path) -> list[EndpointStats]:
    """Rows of locust's `<prefix>_stats.csv`, the aggregated row last."""
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            # The locustfile names each row "METHOD /path" already; the total row is "Aggregated".
            name = "all requests" if row["Name"] == "Aggregated" else row["Name"]
            rows.append(
                EndpointStats(
                    name=name,
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    rps=float(row["Requests/s"]),
                    p50=_ms(row["50%"]),
                    p95=_ms(row["95%"]),
                    p99=_ms(row["99%"]),
                )
            )
    return rows


def read_failures(path: Path) -> list[str]:
    """`<prefix>_failures.csv` as lines: how often which endpoint failed, and with what."""
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [
            f"{row['Occurrences']:>6} x {row['Name']}: {row['Error']}" for row in csv.DictReader(fh)
        ]


def server_error_lines(log: str, limit: int = 10) -> list[str]:
    """The exception lines of the server's log (the last line of each traceback), counted, so a
    500 in the report comes with its cause."""
    counts: dict[str, int] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            if j < len(lines):
                counts[lines[j][:200]] = counts.get(lines[j][:200], 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return [f"{n:>6} x {text}" for text, n in ranked]


def _ms(value: str) -> float:
    return float("nan") if value in ("", "N/A") else float(value)


def format_table(stats: Sequence[EndpointStats]) -> str:
    header = f"{'endpoint':<46} {'requests':>8} {'failed':>6} {'req/s':>7} "
    header += f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    lines = [header]
    for s in stats:
        lines.append(
            f"{s.name:<46} {s.requests:>8} {s.failures:>6} {s.rps:>7.1f} "
            f"{s.p50:>8.0f} {s.p95:>8.0f} {s.p99:>8.0f}"
        )
    return "\n".join(lines)


def targets(load: Sequence[EndpointStats], baseline: Sequence[EndpointStats]) -> list[Figure]:
    """The two targets of the load test, from the load run's and the baseline's stats."""
    total = next(s for s in load if s.name == "all requests")
    figures = [
        Figure(
            label="failed requests under load",
            measured=f"{total.failures} of {total.requests:,} requests failed",
            ratio=float(total.failures),
            target=TARGET_FAILURES,
        )
    ]
    check = next((s for s in load if s.name == CHECK_ENDPOINT), None)
    single = next((s for s in baseline if s.name == CHECK_ENDPOINT), None)
    if check is None or single is None or not single.p50:
        figures.append(
            Figure(
                label="p95 of a check under load / single-user median",
                measured="no check completed in one of the runs",
                ratio=float("nan"),
                target=TARGET_CHECK_P95,
            )
        )
    else:
        figures.append(
            Figure(
                label="p95 of a check under load / single-user median",
                measured=(
                    f"p95 {check.p95:.0f} ms under load ({check.requests:,} checks), "
                    f"single user p50 {single.p50:.0f} ms ({single.requests} checks)"
                ),
                ratio=check.p95 / single.p50,
                target=TARGET_CHECK_P95,
            )
        )
    return figures


def _has_disclosures(base_url: str) -> bool:
    port = int(base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/openapi.json")
        paths = json.loads(conn.getresponse().read()).get("paths", {})
    finally:
        conn.close()
    return "/v1/disclosure-requests/{request_id}/answer" in paths


def _locust(
    base_url: str,
    network: DemoNetwork,
    csv_prefix: Path,
    *,
    users: int,
    spawn_rate: float,
    seconds: int,
    disclosures: bool,
    classes: Sequence[str] = (),
    baseline: bool = False,
    filters: Path | None = None,
) -> None:
    env = dict(os.environ)
    env["REFCHECK_LOAD_CREDENTIALS"] = str(network.data_dir / "demo")
    env["REFCHECK_LOAD_DISCLOSURES"] = "1" if disclosures else "0"
    env["REFCHECK_LOAD_BASELINE"] = "1" if baseline else "0"
    if filters is not None:
        env["REFCHECK_LOAD_FILTERS"] = str(filters)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(LOADTESTS_DIR.parent), env.get("PYTHONPATH", "")) if p
    )
    cmd = [sys.executable, "-m", "locust", "-f", str(LOADTESTS_DIR / "locustfile.py")]
    cmd += ["--headless", "-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s"]
    cmd += ["--host", base_url, "--csv", str(csv_prefix), "--only-summary"]
    cmd += ["--stop-timeout", "30", "--loglevel", "WARNING", *classes]
    log = csv_prefix.with_suffix(".log")
    with log.open("wb") as fh:
        # Locust exits 1 when any request failed; the report says so, so that is not an error here.
        result = subprocess.run(
            cmd,
            env=env,
            cwd=LOADTESTS_DIR.parent,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode not in (0, 1):
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"locust exited with {result.returncode}:\n{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--registry", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument(
        "--cold-filters",
        action="store_true",
        help="every user's client fetches the whole filter at its first check (no filter files)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="refcheck-load-") as tmp:
        root = Path(tmp)
        port = free_port()
        pg_url = create_pg_database(pg_server_url()) if args.postgres else ""
        try:
            network = init_network(
                root / "data", database_url=pg_url, base_url=f"http://{HOST}:{port}"
            )
            _say(
                f"network initialised ({network.backend}); seeding {args.registry:,} entries, "
                f"registering {POPULATION // PRE_REGISTERED_EVERY} people of the population"
            )
            _seed(network, args.registry)
            with running_server(network, port, log_path=root / "uvicorn.log") as base_url:
                disclosures = _has_disclosures(base_url)
                filters = None if args.cold_filters else root / "filters"
                if filters is not None:
                    _say("each HR system's registry filter fetched once into its filter file")
                    write_filter_files(base_url, network, filters)
                _say(f"server on {base_url}; single-user baseline ({BASELINE_SECONDS} s)")
                _locust(
                    base_url,
                    network,
                    root / "baseline",
                    users=1,
                    spawn_rate=1,
                    seconds=BASELINE_SECONDS,
                    disclosures=disclosures,
                    classes=["HRChecker"],
                    baseline=True,
                    filters=filters,
                )
                _say(f"load: {args.users} users, spawn {args.spawn_rate}/s, {args.seconds} s")
                _locust(
                    base_url,
                    network,
                    root / "load",
                    users=args.users,
                    spawn_rate=args.spawn_rate,
                    seconds=args.seconds,
                    disclosures=disclosures,
                    filters=filters,
                )
            baseline = read_stats(root / "baseline_stats.csv")
            load = read_stats(root / "load_stats.csv")
            failures = read_failures(root / "load_failures.csv")
            server_errors = server_error_lines((root / "uvicorn.log").read_text(errors="replace"))
        finally:
            if pg_url:
                drop_pg_database(pg_server_url(), pg_url)
    figures = targets(load, baseline)
    print("refcheck load test (make load)")
    print(
        f"{network.backend}, {args.registry:,} registered entries, uvicorn 2 workers on "
        f"127.0.0.1, load-test policy (policies/network.toml with the daily quotas of "
        f"loadtests/policy_overrides.toml), "
        f"{args.users} users (spawn {args.spawn_rate}/s) for {args.seconds} s; disclosure "
        f"workflow {'exercised' if disclosures else 'not exercised (no endpoints on the server)'}"
        "; HR clients "
        + (
            "fetch the whole filter at their first check (--cold-filters)"
            if args.cold_filters
            else "start from their organisation's filter file"
        )
    )
    print(format_table(load))
    if failures:
        print("failures under load:")
        print("\n".join(failures))
    if server_errors:
        print("errors in the server log (last line of each traceback, with counts):")
        print("\n".join(server_errors))
    print(f"single-user baseline ({BASELINE_SECONDS} s, 1 HR checker):")
    print(format_table(baseline))
    for figure in figures:
        print(format_figure(figure))
    print(summary_line(figures))
    _say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def write_filter_files(base_url: str, network: DemoNetwork, directory: Path) -> None:
    """Fetch the registry filter once per HR system into `directory/<principal>.filter`, the
    SDK's own filter file, as a client that ran before keeps it (`Client(filter_file=...)`).

    Why: each locust user is a client of its own, and 45 of them starting at once would each
    fetch and decode the whole filter (0.1 s of CPU at 100,000 values) inside the one locust
    process, stalling every request in flight there for seconds: a cost of the load generator,
    not of the server. `--cold-filters` measures it anyway.
    """
    from client_sdk import Client

    for name in ("org-a-hr", "org-b-hr"):
        with Client.from_credentials_file(
            network.principals[name].path,
            base_url=base_url,
            filter_file=directory / f"{name}.filter",
        ) as client:
            client.registry_filter()


#: People of the load test's population registered through the server before the run, every
#: 30th: about one check in 30 matches, so the disclosure workflow runs (what the focal points
#: register during the run enters the filter only at its next hourly publication).
PRE_REGISTERED_EVERY = 30


def _seed(network: DemoNetwork, count: int) -> None:
    """Bulk-load `count` entries, register every `PRE_REGISTERED_EVERY`th person of the
    population through the server's registration code (alternately for org-a and org-b), then
    publish the filter once (as `refcheck-server filter publish` would), so the first check
    does not pay for computing it."""
    from loadtests.inprocess import InProcessServer

    holders = [
        Holder(network.principals[n].org_id, network.principals[n].principal_id)
        for n in ("org-a-focal", "org-b-focal")
    ]
    engine = make_engine(network.effective_database_url)
    try:
        keys = EntryKeys.of_network(network.data_dir, network.policy_file)
        seed_entries(engine, count, holders=holders, keys=keys)
    finally:
        engine.dispose()
    servers = [InProcessServer(network, focal=f"{org}-focal") for org in ("org-a", "org-b")]
    try:
        today = servers[0].ctx.now().date()
        for n, index in enumerate(range(0, POPULATION, PRE_REGISTERED_EVERY)):
            server = servers[n % 2]
            server.register(server.registration_body(index, today))
        servers[0].publish_filter()
    finally:
        for server in servers:
            server.close()


def _say(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
