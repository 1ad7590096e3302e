"""Smoke test of the benchmark and load-test tooling: imports and report formatting only.

`make bench` and `make load` are run by hand (minutes, real servers); this keeps their pure parts
from rotting in between. Nothing here times anything or asserts a duration.
"""

from __future__ import annotations

import math
from pathlib import Path

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
    figure = Figure("3. throughput", "x", 0.9, bench.TARGET_HTTP_THROUGHPUT, failure="2 failed")
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
