"""Smoke test of the benchmark and load-test tooling: report formatting, the seeded entries, the
filter measurements, and the whole of `make bench` at tiny sizes.

`make bench` and `make load` are run by hand (minutes, real servers); this keeps them from rotting
in between. Nothing here asserts a duration: timings are whatever this machine gives.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from loadtests import bench, run
from loadtests.people import person
from loadtests.report import (
    Figure,
    Target,
    endpoint_name,
    format_bytes,
    format_figure,
    format_report,
    percentile,
    summary_line,
)
from protocol.errors import DeserializeError


def test_target_judges_costs_and_throughputs_in_their_own_direction() -> None:
    assert Target("<=", 3.0).met(3.0) and not Target("<=", 3.0).met(3.01)
    assert Target(">=", 0.5).met(0.5) and not Target(">=", 0.5).met(0.49)
    assert not Target("<=", 3.0).met(math.nan)


def test_figure_line_states_measure_ratio_target_and_verdict() -> None:
    line = format_figure(
        Figure("1. cost", "2.0 ms per check", 2.5, bench.TARGET_SERVER_PER_KEY, note="21 samples")
    )
    assert line == "1. cost | 2.0 ms per check | ratio 2.50 | target <= 3 | met  [21 samples]"
    info = format_figure(Figure("5. rescreen", "12 s", 4.2))
    assert info.endswith("ratio 4.20 | (no target)")


def test_a_figure_with_failures_misses_its_target_whatever_the_ratio() -> None:
    figure = Figure("1. latency", "x", 0.9, bench.TARGET_LATENCY_GROWTH, failure="2 failed")
    assert figure.verdict == "missed (2 failed)"
    assert summary_line([figure]) == "0 of 1 targets met"


def test_summary_counts_only_figures_with_a_target() -> None:
    figures = [
        Figure("a", "", 1.0, Target("<=", 1.5)),
        Figure("b", "", 2.0, Target("<=", 1.5)),
        Figure("c", "", 9.0),
    ]
    assert summary_line(figures) == "1 of 2 targets met"
    assert format_report("title", figures).splitlines()[-1] == "1 of 2 targets met"


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_endpoint_names_collapse_ids() -> None:
    path = "/v1/disclosure-requests/0f1e2d3c-4b5a-4697-8877-665544332211/answer"
    assert endpoint_name("POST", path) == "POST /v1/disclosure-requests/{id}/answer"
    assert endpoint_name("GET", "/v1/cases") == "GET /v1/cases"


def test_bytes_are_printed_in_readable_units() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(23_400) == "23.4 kB"
    assert format_bytes(1_100_000) == "1.1 MB"


def test_load_report_reads_locust_csv_and_judges_both_targets(tmp_path: Path) -> None:
    header = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
    )
    rows = {
        "load": [
            "POST,POST /v1/checks,900,0,90,100,20,900,4000,15.0,0,90,100,110,120,200,300,400,"
            "500,800,900,900",
            ",Aggregated,2000,0,60,70,5,900,2000,33.3,0,60,70,80,90,150,250,350,450,800,900,900",
        ],
        "base": [
            "POST,POST /v1/checks,8,0,50,50,40,70,4000,0.5,0,50,55,60,60,70,70,70,70,70,70,70",
            ",Aggregated,20,0,40,40,10,70,1000,1.3,0,40,50,50,60,70,70,70,70,70,70,70",
        ],
    }
    for name, lines in rows.items():
        (tmp_path / f"{name}.csv").write_text(header + "\n".join(lines) + "\n")
    load = run.read_stats(tmp_path / "load.csv")
    baseline = run.read_stats(tmp_path / "base.csv")
    assert [s.name for s in load] == ["POST /v1/checks", "all requests"]
    table = run.format_table(load)
    assert "POST /v1/checks" in table and "all requests" in table
    failures, p95 = run.targets(load, baseline)
    assert failures.verdict == "met"
    assert p95.ratio == pytest.approx(300 / 50)
    assert p95.verdict == "met"


def test_load_report_without_a_completed_check_misses_the_latency_target(tmp_path: Path) -> None:
    header = "Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%\n"
    (tmp_path / "s.csv").write_text(header + ",Aggregated,3,3,0.1,N/A,N/A,N/A\n")
    stats = run.read_stats(tmp_path / "s.csv")
    failures, p95 = run.targets(stats, stats)
    assert failures.verdict == "missed"
    assert p95.verdict == "missed"


def test_staff_records_are_valid_people() -> None:
    from protocol.identity import derive_keys

    assert person(7) == person(7)
    assert person(7) != person(8)
    assert len(derive_keys(person(7))) >= 5


def test_load_policy_is_the_network_policy_with_raised_quotas(tmp_path: Path) -> None:
    from loadtests.network import write_load_policy
    from server.policy.schema import load_policy
    from server.settings import DEFAULT_POLICY_FILE

    shipped = load_policy(DEFAULT_POLICY_FILE)
    load = load_policy(write_load_policy(tmp_path / "policy.toml"))
    assert load.daily_check_quota > shipped.daily_check_quota
    assert load.model_dump(exclude={"daily_check_quota", "daily_evaluation_quota"}) == (
        shipped.model_dump(exclude={"daily_check_quota", "daily_evaluation_quota"})
    )


def test_load_policy_leaves_out_overrides_the_network_policy_does_not_know(
    tmp_path: Path,
) -> None:
    from loadtests.network import write_load_policy

    base = tmp_path / "base.toml"
    base.write_text('version = "x"\ndaily_check_quota = 5\n\n[table]\ndaily_check_quota = 7\n')
    overrides = tmp_path / "over.toml"
    overrides.write_text("daily_check_quota = 99\nunknown_key = 1\n")
    text = write_load_policy(tmp_path / "out.toml", base, overrides).read_text()
    assert "unknown_key" not in text
    assert text.splitlines()[1].startswith("daily_check_quota = 99")
    assert text.splitlines()[4] == "daily_check_quota = 7"  # in a table: not the top-level key


def test_server_errors_are_summarised_by_their_exception_line() -> None:
    log = (
        "INFO started\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    g()\n"
        "sqlalchemy.exc.TimeoutError: QueuePool limit reached\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "sqlalchemy.exc.TimeoutError: QueuePool limit reached\n"
    )
    assert run.server_error_lines(log) == [
        "     2 x sqlalchemy.exc.TimeoutError: QueuePool limit reached"
    ]
    assert run.server_error_lines("INFO all fine\n") == []


def test_figure_with_a_value_target_prints_its_quantity() -> None:
    line = format_figure(
        Figure("2. filter", "3.7 MB", 3.7, bench.TARGET_FILTER_BYTES, quantity="bytes per value")
    )
    assert line == "2. filter | 3.7 MB | bytes per value 3.70 | target <= 4.1 | met"
    over = Figure("3. delta", "x", 201.0, bench.TARGET_DELTA_PAYLOAD, quantity="bytes")
    assert over.verdict == "missed"


# --- the filter measurements, on filters signed here -------------------------------------------


def _signed_filters(values: list[int], added: list[int]) -> dict[str, Any]:
    """A full body of `values`, a delta adding `added`, and the SDK's view of the network."""
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from client_sdk.pinning import NetworkState, OprfKey
    from protocol import filter as rcfilter
    from protocol import signed

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    times = {
        "network_id": "bench",
        "issued_at": signed.format_time(now),
        "expires_at": signed.format_time(now + dt.timedelta(hours=2)),
        "key_id": "k1",
        "key_seq": 1,
    }

    def header(vals: list[int], revision: int, prev: str) -> signed.SignedObject:
        return signed.sign(
            key,
            {
                "type": "filter",
                **times,
                "revision": revision,
                "count": len(vals),
                "p": rcfilter.rice_parameter(len(vals)),
                "sha256": rcfilter.set_sha256(vals).hex(),
                "prev_sha256": prev,
            },
        )

    after = sorted(set(values) | set(added))
    old = header(values, 1, "0" * 64)
    new = header(after, 2, old.fields["sha256"])
    delta = signed.sign(
        key,
        {
            "type": "filter-delta",
            **times,
            "revision": 2,
            "since_sha256": old.fields["sha256"],
            "added": len(added),
            "removed": 0,
            "count": len(after),
            "sha256": new.fields["sha256"],
        },
    )
    oprf_key = OprfKey("k1", 1, bytes(range(32)), bytes(range(32)))
    return {
        "full": rcfilter.full_body(old, values),
        "delta": rcfilter.delta_body(delta, added, []),
        "full_after": rcfilter.full_body(new, after),
        "old": old.framed(),
        "new": new.framed(),
        "network": NetworkState("bench", public, (oprf_key,)),
        "key": oprf_key,
        "now": now,
        "after": after,
    }


def test_body_layout_splits_magic_signed_header_and_payload() -> None:
    from loadtests.filterbench import body_layout

    made = _signed_filters(list(range(1, 4000, 7)), [5, 6, 9])
    delta = body_layout(made["delta"])
    assert delta.payload == 3 * 6
    assert delta.total == 4 + delta.header + delta.payload
    full = body_layout(made["full"])
    assert 0 < full.payload < 6 * len(range(1, 4000, 7))
    with pytest.raises(DeserializeError):
        body_layout(b"RCD2" + b"\x00")


def test_sdk_filter_cost_runs_the_sdk_through_a_delta_and_the_held_filter() -> None:
    from loadtests.filterbench import sdk_filter_cost

    made = _signed_filters(list(range(10, 50_000, 13)), [11, 12])
    cost = sdk_filter_cost(
        base_body=made["full"],
        delta_body=made["delta"],
        full_body_after=made["full_after"],
        new_header=made["new"],
        old_header=made["old"],
        network=made["network"],
        key=made["key"],
        prefixes=[11, 23, 24],
        now=made["now"],
        samples_current=3,
        samples_update=2,
    )
    assert cost.keys == 3 and cost.samples_current == 3 and cost.samples_update == 2
    assert cost.with_update >= cost.update >= 0
    assert cost.requests == 1  # the delta alone brought the SDK to the check's header


def test_sdk_filter_cost_refuses_a_delta_that_does_not_lead_to_the_checks_filter() -> None:
    from client_sdk.errors import ProtocolViolation
    from loadtests.filterbench import sdk_filter_cost

    made = _signed_filters(list(range(10, 50_000, 13)), [11, 12])
    other = _signed_filters(list(range(10, 50_000, 13)), [14])
    with pytest.raises(ProtocolViolation):
        sdk_filter_cost(
            base_body=made["full"],
            delta_body=other["delta"],  # signed by another key, for another list
            full_body_after=made["full_after"],
            new_header=made["new"],
            old_header=made["old"],
            network=made["network"],
            key=made["key"],
            prefixes=[11],
            now=made["now"],
            samples_current=1,
            samples_update=1,
        )


def test_false_positive_checks_count_checks_and_keys_that_hit() -> None:
    import random

    from loadtests.filterbench import false_positive_checks

    drawn = random.Random(5)
    first = [drawn.getrandbits(48) for _ in range(100)]
    # Keys 0 and 3 of check 0, key 35 (check 1) and key 99 (check 3) are "registered".
    values = {first[0], first[3], first[35], first[99], 7}
    fp = false_positive_checks(values, trials=4, keys_per_check=32, seed=5, chunk=50)
    assert (fp.checks_hit, fp.keys_hit, fp.set_size) == (3, 4, 5)
    assert fp.per_million == 3 * 1e6 / 4
    clean = false_positive_checks({7}, trials=1000, keys_per_check=32, seed=5)
    assert (clean.checks_hit, clean.per_million) == (0, 0.0)
    assert clean.expected_per_million == pytest.approx(32 / 2**48 * 1e6)


# --- the seeded registry and the bench at tiny sizes -------------------------------------------


@pytest.fixture
def bench_pg_url(monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The suite's PostgreSQL server (REFCHECK_TEST_DATABASE_URL), where the bench makes and
    drops its own database; None: SQLite only."""
    from loadtests.network import PG_SERVER_ENV
    from tests.databases import postgres_server_url

    url = postgres_server_url()
    if url:
        monkeypatch.setenv(PG_SERVER_ENV, url)
    return url


@pytest.mark.slow
def test_seeded_entries_are_version_2_entries_of_whole_cases(tmp_path: Path) -> None:
    """Every seeded row unwraps (w⁻¹·P̂) to a P whose tag it carries and whose handle opens to
    its own entry and case, with the case's holder; each case has exactly keys_per_check entries,
    some of them pads."""
    from sqlalchemy import text

    from loadtests.network import init_network
    from loadtests.seed import EntryKeys, Holder, seed_entries
    from protocol.codes import PADDING_KIND
    from protocol.entry import open_handle, tag
    from protocol.hazmat.ristretto255 import scalar_mult
    from server.db import make_engine
    from server.keys import load_keys

    network = init_network(tmp_path / "data")
    keys = EntryKeys.of_network(network.data_dir, network.policy_file)
    unwrap = load_keys(network.data_dir / "server").oprf_unwrap
    holder = network.principals["org-a-focal"]
    engine = make_engine(network.effective_database_url)
    try:
        result = seed_entries(
            engine,
            keys.keys_per_check * 3 - 5,  # rounded up to whole cases
            holders=[Holder(holder.org_id, holder.principal_id)],
            keys=keys,
            workers=2,
            cases_per_job=2,  # two jobs: the worker processes are used
        )
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, case_id, key_seq, p_hat, tag, sealed_handle FROM pseudonyms")
            ).all()
            org_name = conn.execute(
                text("SELECT short_name FROM organisations WHERE id = :id"), {"id": holder.org_id}
            ).scalar_one()
            indexes = {
                r[0]
                for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
            }
    finally:
        engine.dispose()
    assert (result.cases, result.entries) == (3, 3 * keys.keys_per_check)
    assert len(rows) == result.entries
    assert {"ix_pseudonyms_case_id", "ix_pseudonyms_key_seq_tag"} <= indexes
    per_case: dict[str, list[str]] = {}
    for entry_id, case_id, key_seq, p_hat, entry_tag, sealed in rows:
        p = scalar_mult(unwrap, bytes(p_hat))
        assert key_seq == keys.key_seq and bytes(entry_tag) == tag(p)
        handle = open_handle(p, bytes(sealed))
        assert handle is not None
        assert (handle.entry_id, handle.case_id) == (entry_id, case_id)
        assert (handle.holder_org_id, handle.holder_org_name) == (holder.org_id, org_name)
        per_case.setdefault(case_id, []).append(handle.kind)
    assert all(len(kinds) == keys.keys_per_check for kinds in per_case.values())
    assert all(PADDING_KIND in kinds and len(set(kinds)) > 2 for kinds in per_case.values())
    # A P nobody registered opens nothing.
    assert open_handle(scalar_mult(unwrap, bytes(rows[1][3])), bytes(rows[0][5])) is None


@pytest.mark.slow
def test_make_bench_quick_prints_every_figure_with_its_target(
    capsys: pytest.CaptureFixture[str], bench_pg_url: str | None
) -> None:
    argv = ["--quick"] + ([] if bench_pg_url else ["--no-postgres"])
    assert bench.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    backends = ["SQLite", "PostgreSQL"] if bench_pg_url else ["SQLite"]
    for backend in backends:
        assert any(
            line.startswith(f"1. check latency {backend}") and "target <= 1.2" in line
            for line in out
        )
        assert any(
            line.startswith(f"1. entries call of a registered applicant {backend}") for line in out
        )
    for start, target in (
        ("2. full filter, bytes per value", "target <= 4.1"),
        ("3. delta after one registration", "target <= 200"),
        ("4. SDK filter work per check", "target <= 1"),
        ("5. false-positive checks per million", "target <= 1"),
        ("POST /v1/checks in-process, cost per element", "target <= 3"),
    ):
        assert any(line.startswith(start) and target in line for line in out), start
    assert out[-1].endswith("targets met")
    assert "not a result" in "\n".join(out)


@pytest.mark.slow
def test_http_throughput_prints_checks_per_second_against_the_crypto_bound(
    capsys: pytest.CaptureFixture[str], bench_pg_url: str | None
) -> None:
    from loadtests import http_throughput

    backends = "sqlite,postgresql" if bench_pg_url else "sqlite"
    # Enough checks prepared to outlast the warm-up: at 30 a second a fast server answered them
    # all within it, and none was counted.
    argv = ["--seconds", "1", "--warmup", "0.5", "--rate", "400", "--backends", backends]
    assert http_throughput.main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "checks/s over HTTP" in line]
    assert len(lines) == len(backends.split(","))
    for line, backend in zip(lines, backends.split(","), strict=True):
        assert f"uvicorn 2 workers, {backend} / crypto-only bound" in line
        assert " 0 failed" in line and "target >= 0.5" in line
        # Answers were verified (proof, filter signature) and the sealer signed heads meanwhile.
        assert re.search(r"; [1-9]\d* answers verified after the window; [1-9]\d* tree heads", line)


def test_protocol_bench_quick_runs_the_v2_check_batch(capsys: pytest.CaptureFixture[str]) -> None:
    from protocol import bench as protocol_bench

    assert protocol_bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "n=32" in out and "a v2 check" in out


def test_a_failed_postgresql_run_misses_its_target_and_keeps_sqlites_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from loadtests.network import PG_SERVER_ENV

    plan = bench.Plan(**{**bench.QUICK.__dict__, "small": 10, "large": 20})

    def fake_series(label: str, network: Any, plan: bench.Plan, unit: Any, **_: Any) -> Any:
        sizes = {}
        for size in (plan.small, plan.large):
            sizes[size] = bench._Size(size, [0.01] * 4, [0.02] * 4, claimed_entries=18)
        return bench._Series(label, sizes)

    monkeypatch.setattr(bench, "_series", fake_series)
    monkeypatch.setattr(bench, "init_network", lambda *a, **k: None)
    # Nothing listens on port 1: creating the run's database fails.
    monkeypatch.setenv(PG_SERVER_ENV, "postgresql+psycopg://postgres@127.0.0.1:1/postgres")
    figures = bench.run(plan, workdir=tmp_path)
    lines = [format_figure(f) for f in figures]
    assert lines[0].startswith("1. check latency SQLite") and "| ratio 1.00 | " in lines[0]
    assert figures[0].verdict == "met"
    failed = next(f for f in figures if f.label.startswith("1. check latency PostgreSQL"))
    assert failed.verdict == "missed (the run failed)"
    assert "OperationalError" in failed.measured
