"""`make bench`: protocol version 2 at a million registered entries, on SQLite and PostgreSQL.

    python -m loadtests.bench [--quick] [--large N] [--no-postgres] [--workers N]

Every figure is printed with what was measured, its baseline measured in the same run on this
machine, the judged number, the target and `met` or `missed`; the last line counts the targets
met. Issue 12's figures:

1. check latency (`POST /v1/checks` in-process, p50 and p95) with 1,000,000 stored entries over
   the same with 1,000, on SQLite and on PostgreSQL (target <= 1.2; the judged ratio is the
   larger of p50's and p95's). Each backend has two registries, one of each size, and their
   checks alternate, so the shared machine's drift falls on both alike. Beside it, for
   information, the entries call of a registered applicant's check (claims proven, entries
   looked up by tag) at both sizes;
2. bytes per value of the full filter (`RCF2`, signed header included) at 1,000,000 (target
   <= 4.1); baseline: the same at 1,000 and the plain list of 6-byte values;
3. bytes of the delta (`RCD2`) after one registration, after its signed header (target <= 200);
   baseline: `keys_per_check` values of 6 bytes;
4. the SDK's filter work per check at 1,000,000 (`client_sdk.filter_cache.FilterCache`, in
   the order a check calls it), in ms (target <= 1); baseline: the same at 1,000. Judged: a
   member checking at the policy's daily check quota while the filter is published every
   `filter_publish_seconds`, so each revision's update is shared by that many checks; printed
   beside it, the two costs it is made of (a check whose filter is current; a check that meets
   a new revision and applies its delta), the second also as a figure of its own;
5. false-positive checks per million at 1,000,000, measured by testing random keys' prefixes
   against the published set (a million checks of `keys_per_check` keys; target <= 1);
   baseline: the expectation `1 - (1 - n / 2^48)^k`.

And issue 8's figure that still applies: the server cost per checked element of
`POST /v1/checks` in-process on the small registry, in scalar multiplications (target <= 3.0).

The run uses temporary directories and a fresh PostgreSQL database (created and dropped here),
and sends nothing over the network. The registry is filled with real version-2 entries in bulk
(`loadtests.seed`); two synthetic people are registered through the server's own registration
code (sealed keys, evaluation, pads, handles), one before the checks (so checks of them hit and
claim) and one to make the delta.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from loadtests.filterbench import body_layout, false_positive_checks, sdk_filter_cost
from loadtests.inprocess import InProcessServer, PreparedCheck
from loadtests.measure import Unit
from loadtests.network import (
    PG_SERVER_ENV,
    DemoNetwork,
    create_pg_database,
    drop_pg_database,
    init_network,
    pg_server_url,
)
from loadtests.report import Figure, Target, format_bytes, format_figure, percentile, summary_line
from loadtests.seed import EntryKeys, Holder, seed_consents, seed_entries

TARGET_LATENCY_GROWTH = Target("<=", 1.2)
TARGET_FILTER_BYTES = Target("<=", 4.1)
TARGET_DELTA_PAYLOAD = Target("<=", 200)
TARGET_SDK_MS = Target("<=", 1.0)
TARGET_FALSE_POSITIVES = Target("<=", 1.0)
TARGET_SERVER_PER_KEY = Target("<=", 3.0)

#: Synthetic people registered through the server (`loadtests.people.person(index)`): far from
#: the indexes checks use, so no check of a random applicant meets them by accident.
REGISTERED = 900_000
DELTA_PERSON = 900_001
#: Checks per consent (a re-screening consent allows 53).
_PER_CONSENT = 50


@dataclass(frozen=True)
class Plan:
    """Sizes and sample counts of one run; `--quick` shrinks everything for a smoke run."""

    small: int
    large: int
    latency_checks: int
    claim_checks: int
    cost_samples: int
    fp_trials: int
    sdk_current_samples: int
    sdk_update_samples: int
    postgres: bool
    workers: int | None = None


FULL = Plan(1_000, 1_000_000, 150, 20, 21, 1_000_000, 200, 3, True)
QUICK = Plan(64, 2_000, 12, 3, 3, 20_000, 20, 2, True)


def _say(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _engine(network: DemoNetwork) -> Engine:
    from server.db import make_engine

    return make_engine(network.effective_database_url)


def _consents(network: DemoNetwork, count: int, checker: str = "org-b-hr") -> list[str]:
    engine = _engine(network)
    try:
        principal = network.principals[checker]
        org_keys = json.loads(principal.path.read_text()).get("org_keys")
        return seed_consents(
            engine,
            count,
            org_id=principal.org_id,
            principal_id=principal.principal_id,
            org_keys=org_keys,
        )
    finally:
        engine.dispose()


class _Checks:
    """Prepared (blinded) checks of synthetic applicants, each handed out once, under consents
    seeded for the purpose (`_PER_CONSENT` checks each)."""

    def __init__(self, server: InProcessServer, consents: Sequence[str]) -> None:
        self._server = server
        self._consents = list(consents)
        self._next = 0

    def take(self, n: int, person: int | None = None) -> list[PreparedCheck]:
        out = []
        for _ in range(n):
            i = self._next
            self._next += 1
            consent = self._consents[i // _PER_CONSENT]
            out.append(self._server.prepare(consent, i if person is None else person))
        return out


@dataclass
class _Size:
    """What one registry size measured."""

    entries: int
    check_seconds: list[float] = field(default_factory=list)
    claim_seconds: list[float] = field(default_factory=list)
    claimed_entries: int = 0
    publish_seconds: float = 0.0
    full_body: bytes = b""
    count: int = 0


@dataclass
class _Series:
    label: str
    sizes: dict[int, _Size]
    cost: list[Figure] = field(default_factory=list)
    filter_figures: list[Figure] = field(default_factory=list)


class _Registry:
    """One backend's demo network, its in-process server and its growing registry."""

    def __init__(self, network: DemoNetwork, plan: Plan) -> None:
        self.network = network
        self.plan = plan
        self.server = InProcessServer(network)
        self.keys = EntryKeys.of_network(network.data_dir, network.policy_file)
        self.entries = 0
        per_size = plan.latency_checks + plan.cost_samples * 4 + plan.claim_checks + 10
        self.checks = _Checks(self.server, _consents(network, 2 + 2 * per_size // _PER_CONSENT))

    def close(self) -> None:
        self.server.close()

    def holders(self) -> list[Holder]:
        return [
            Holder(self.network.principals[n].org_id, self.network.principals[n].principal_id)
            for n in ("org-a-focal", "org-b-focal")
        ]

    def grow_to(self, entries: int) -> None:
        engine = _engine(self.network)
        try:
            result = seed_entries(
                engine,
                entries - self.entries,
                holders=self.holders(),
                keys=self.keys,
                workers=self.plan.workers,
            )
        finally:
            engine.dispose()
        self.entries += result.entries
        _say(
            f"  seeded {result.entries:,} entries ({result.cases:,} cases) in "
            f"{result.seconds:.1f} s: {self.entries:,} seeded in all"
        )

    def register(self, person: int) -> None:
        today = self.server.ctx.now().date()
        self.server.register(self.server.registration_body(person, today))

    def publish(self) -> float:
        started = time.perf_counter()
        self.server.publish_filter()
        return time.perf_counter() - started


def _alternating(n: int) -> list[tuple[int, int]]:
    """Small, large, large, small, ...: `n` rounds over the two registries, each starting with
    the one the round before ended with, so neither always runs first."""
    return [(0, 1) if i % 2 == 0 else (1, 0) for i in range(n)]


def _time_checks(regs: Sequence[_Registry], n: int, out: Sequence[_Size]) -> None:
    """`n` in-process checks of random applicants on each registry, alternating between them
    (after 5 unmeasured ones each): what slows the shared machine down slows both alike. Every
    answer is verified after it is timed."""
    for reg in regs:
        for prepared in reg.checks.take(5):
            reg.server.read(prepared, reg.server.post_check(prepared.body))
    for order in _alternating(n):
        for i in order:
            server = regs[i].server
            prepared = regs[i].checks.take(1)[0]
            start = time.perf_counter()
            answer = server.post_check(prepared.body)
            elapsed = time.perf_counter() - start
            server.read(prepared, answer)
            out[i].check_seconds.append(elapsed)


def _time_claims(
    regs: Sequence[_Registry], values: Sequence[set[int]], n: int, out: Sequence[_Size]
) -> None:
    """`n` checks of the registered person on each registry, alternating: each check run
    untimed, its hits found in that registry's filter as the SDK would, then the entries call
    timed; what comes back must open with the person's `P`."""
    for order in [(0, 1)] + _alternating(n):  # the first round warms up
        for i in order:
            elapsed, entries = _one_claim(regs[i], values[i])
            if out[i].claimed_entries == 0:
                out[i].claimed_entries = entries
                continue
            out[i].claim_seconds.append(elapsed)


def _one_claim(reg: _Registry, values: set[int]) -> tuple[float, int]:
    from protocol.entry import open_handle, prefix

    server = reg.server
    prepared = reg.checks.take(1, person=REGISTERED)[0]
    read = server.read(prepared, server.post_check(prepared.body))
    hits = [i for i, p in enumerate(read.points) if prefix(p) in values]
    if not hits:
        raise RuntimeError("the registered person's check found nothing in the filter")
    body = server.claims_body(prepared, read, hits)
    start = time.perf_counter()
    answer = server.post_entries(read.check_id, body)
    elapsed = time.perf_counter() - start
    entries = json.loads(answer)["entries"]
    points = {read.points[i] for i in hits}
    opened = sum(
        1 for e in entries if any(open_handle(p, bytes.fromhex(e["sealed_handle"])) for p in points)
    )
    if not entries or opened != len(entries):
        raise RuntimeError("the entries call did not answer the registered person's entries")
    return elapsed, len(entries)


def _server_cost(unit: Unit, reg: _Registry, plan: Plan) -> Figure:
    """Issue 8's figure: the whole in-process check per element, in units."""
    from server.oprf.services import blind_evaluate

    calls = 4
    kpc = reg.server.keys_per_check
    batch = iter(reg.checks.take(plan.cost_samples * calls))
    full = unit.paired(
        lambda: reg.server.post_check(next(batch).body),
        samples=plan.cost_samples,
        calls=calls,
        per=kpc,
    )
    blinded = list(reg.checks.take(1)[0].blinded)
    crypto = unit.paired(
        lambda: blind_evaluate(reg.server.ctx, blinded),
        samples=plan.cost_samples,
        calls=calls,
        per=kpc,
    )
    return Figure(
        label="POST /v1/checks in-process, cost per element / one scalar multiplication",
        measured=(
            f"{full.op_seconds * 1e3:.2f} ms per check of {kpc} elements (its evaluation and "
            f"proof alone {crypto.op_seconds * 1e3:.2f} ms = {crypto.ratio:.2f} per element, "
            f"floor {(2 * kpc + 3) / kpc:.2f}), multiplication {full.unit_seconds * 1e6:.0f} us"
        ),
        ratio=full.ratio,
        target=TARGET_SERVER_PER_KEY,
        note=f"issue 8; {plan.cost_samples} paired samples of {calls} checks, small registry",
    )


def _filter_values(body: bytes) -> list[int]:
    from protocol.filter import parse_full

    return parse_full(body)[1]


def _publish(reg: _Registry, size: _Size) -> tuple[set[int], bytes]:
    """Publish the registry's filter now; its values and full body."""
    size.publish_seconds = reg.publish()
    body = reg.server.filter_body()
    values = _filter_values(body)
    size.full_body, size.count = body, len(values)
    return set(values), body


@dataclass(frozen=True)
class _DeltaRun:
    """A registration's delta at one size, and what the SDK pays for it."""

    count: int
    payload: int
    header: int
    added: int
    sdk: Any


def _delta_and_sdk(reg: _Registry, plan: Plan, base_body: bytes, values: set[int]) -> _DeltaRun:
    """Register one more person, publish, fetch the delta from `base_body`'s revision, and time
    the SDK's filter work for a check at the old and at the new revision."""
    from client_sdk.pinning import NetworkState, OprfKey
    from protocol import filter as rcfilter
    from protocol.signed import parse_framed

    old_header, _ = parse_framed(base_body, 4)
    reg.register(DELTA_PERSON + reg.entries)
    reg.publish()
    delta = reg.server.filter_body(since_sha256=old_header.fields["sha256"])
    if delta[:4] != rcfilter.DELTA_MAGIC:
        raise RuntimeError("the server answered the full filter where a delta was expected")
    new_header, _ = parse_framed(delta, 4)
    full_after = reg.server.filter_body()
    new_filter_header, _ = parse_framed(full_after, 4)
    keys = reg.server.ctx.keys
    key = OprfKey(
        keys.oprf_key_id, keys.oprf_key_seq, keys.oprf_public, reg.server.registration_key
    )
    network = NetworkState(reg.server.network_id, reg.server.signing_key, (key,))
    layout = body_layout(delta)
    # The applicant's keys: a real person's prefixes, looked up as a check would.
    from protocol.entry import hash_to_group, prefix
    from protocol.hazmat.ristretto255 import scalar_mult

    prefixes = [
        prefix(scalar_mult(keys.oprf_secret, hash_to_group(v)))
        for v in reg.server.key_values(12345)
    ]
    sdk = sdk_filter_cost(
        base_body=base_body,
        delta_body=delta,
        full_body_after=full_after,
        new_header=new_filter_header.framed(),
        old_header=old_header.framed(),
        network=network,
        key=key,
        prefixes=prefixes,
        now=reg.server.ctx.now(),
        samples_current=plan.sdk_current_samples,
        samples_update=plan.sdk_update_samples,
    )
    return _DeltaRun(
        count=len(values),
        payload=layout.payload,
        header=layout.header,
        added=int(new_header.fields["added"]),
        sdk=sdk,
    )


def _checks_per_revision(reg: _Registry) -> float:
    """Checks that share one filter revision for a member checking at its daily quota while
    the filter is published every `filter_publish_seconds` (at most one revision a check)."""
    policy = reg.server.ctx.policy
    from server.policy.schema import load_policy
    from server.settings import DEFAULT_POLICY_FILE

    shipped = load_policy(DEFAULT_POLICY_FILE)  # the load policy raises the quotas
    interval = max(policy.filter_publish_seconds, 60)
    return max(1.0, shipped.daily_check_quota * interval / 86_400)


def _series(
    label: str,
    networks: tuple[DemoNetwork, DemoNetwork],
    plan: Plan,
    unit: Unit,
    *,
    everything: bool,
) -> _Series:
    """One backend: a registry of `plan.small` entries and one of `plan.large`, each with one
    person registered through the server, their checks and entries calls timed alternately (so
    the machine's drift falls on both alike); with `everything`, also issue 8's cost figure and
    the filter figures (which do not depend on the backend)."""
    regs = [_Registry(networks[0], plan), _Registry(networks[1], plan)]
    series = _Series(label, {})
    try:
        sizes = []
        bodies = []
        values = []
        for reg, target in zip(regs, (plan.small, plan.large), strict=True):
            reg.register(REGISTERED)
            reg.grow_to(target)
            size = series.sizes[target] = _Size(reg.entries)
            published, body = _publish(reg, size)
            sizes.append(size)
            bodies.append(body)
            values.append(published)
            _say(
                f"  {label} {size.entries:>9,} entries: {size.count:,} filter values, "
                f"published in {size.publish_seconds:.1f} s"
            )
        _say(f"  {plan.latency_checks} checks and {plan.claim_checks} entries calls on each")
        _time_checks(regs, plan.latency_checks, sizes)
        _time_claims(regs, values, plan.claim_checks, sizes)
        for size in sizes:
            _say(
                f"  {label} {size.entries:>9,}: check p50 "
                f"{percentile(size.check_seconds, 50) * 1e3:.2f} ms, p95 "
                f"{percentile(size.check_seconds, 95) * 1e3:.2f} ms; entries call p50 "
                f"{percentile(size.claim_seconds, 50) * 1e3:.2f} ms ({size.claimed_entries} "
                "entries)"
            )
        if everything:
            _say("  server cost per element (issue 8), small registry")
            series.cost.append(_server_cost(unit, regs[0], plan))
            _say("  delta after one registration, SDK filter work")
            small_delta = _delta_and_sdk(regs[0], plan, bodies[0], values[0])
            large_delta = _delta_and_sdk(regs[1], plan, bodies[1], values[1])
            _say(f"  false positives: {plan.fp_trials:,} checks against {len(values[1]):,}")
            fp = false_positive_checks(
                values[1], trials=plan.fp_trials, keys_per_check=regs[1].server.keys_per_check
            )
            series.filter_figures = _filter_figures(
                regs[1], plan, sizes[0], sizes[1], small_delta, large_delta, fp
            )
    finally:
        for reg in regs:
            reg.close()
    return series


def _filter_figures(
    reg: _Registry,
    plan: Plan,
    small: _Size,
    large: _Size,
    small_delta: _DeltaRun,
    large_delta: _DeltaRun,
    fp: Any,
) -> list[Figure]:
    kpc = reg.server.keys_per_check
    small_bpe = len(small.full_body) / small.count
    large_bpe = len(large.full_body) / large.count
    layout = body_layout(large.full_body)
    coded = layout.payload / large.count
    per_revision = _checks_per_revision(reg)

    def amortised(d: _DeltaRun) -> float:
        return float(d.sdk.current + d.sdk.update / per_revision)

    small_ms, large_ms = amortised(small_delta) * 1e3, amortised(large_delta) * 1e3
    policy = reg.server.ctx.policy
    figures = [
        Figure(
            label=f"2. full filter, bytes per value at {large.count:,} values",
            measured=(
                f"{format_bytes(len(large.full_body))} (coded set {coded:.2f} B a value, signed "
                f"header {layout.header} B); at {small.count:,} values {small_bpe:.2f} B a value "
                f"({format_bytes(len(small.full_body))}); plain 6-byte list: "
                f"{large_bpe / 6:.2f} of it"
            ),
            ratio=large_bpe,
            target=TARGET_FILTER_BYTES,
            quantity="bytes per value",
            note="RCF2 body as GET /v1/registry/filter answers it",
        ),
        Figure(
            label=f"3. delta after one registration at {large_delta.count:,} values, payload",
            measured=(
                f"{large_delta.payload} B after the {large_delta.header}-B signed header "
                f"({large_delta.added} values added); baseline {kpc} values x 6 B = {6 * kpc} B: "
                f"{large_delta.payload / (6 * kpc):.2f} of it; at {small_delta.count:,} values "
                f"{small_delta.payload} B"
            ),
            ratio=float(large_delta.payload),
            target=TARGET_DELTA_PAYLOAD,
            quantity="bytes",
            note="RCD2 body for ?since_sha256= of the revision before the registration",
        ),
        Figure(
            label=f"4. SDK filter work per check at {large_delta.count:,} values, ms",
            measured=(
                f"filter current {large_delta.sdk.current * 1e3:.2f} ms (header verified, "
                f"{large_delta.sdk.keys} lookups) + one delta update "
                f"{_ms(large_delta.sdk.update)} shared by {per_revision:.0f} checks "
                f"(daily quota over {24 * 3600 // max(policy.filter_publish_seconds, 60)} "
                f"revisions a day); at {small_delta.count:,} values {small_ms:.2f} ms: "
                f"{large_ms / small_ms:.1f}x"
            ),
            ratio=large_ms,
            target=TARGET_SDK_MS,
            quantity="ms",
            note=(
                f"median of {large_delta.sdk.samples_current} checks at the current filter and "
                f"{large_delta.sdk.samples_update} that applied a delta"
            ),
        ),
        Figure(
            label=f"4. SDK, one check that meets a new revision at {large_delta.count:,} values",
            measured=(
                f"{_ms(large_delta.sdk.with_update)} (the SDK core's filter step: "
                f"{large_delta.sdk.requests} request, the "
                f"{large_delta.payload + large_delta.header + 4}-B delta absorbed, the list "
                f"hashed, vouched for; lookups); at {small_delta.count:,} values "
                f"{_ms(small_delta.sdk.with_update)}"
            ),
            ratio=large_delta.sdk.with_update * 1e3,
            quantity="ms",
            note="the worst case of the figure above, once per revision",
        ),
        Figure(
            label=f"5. false-positive checks per million at {fp.set_size:,} values",
            measured=(
                f"{fp.checks_hit} of {fp.trials:,} checks of {fp.keys_per_check} random keys "
                f"({fp.keys_hit} keys) hit the set; expected {fp.expected_per_million:.3f} per "
                f"million (1 in {1e6 / fp.expected_per_million:,.0f} checks)"
            ),
            ratio=fp.per_million,
            target=TARGET_FALSE_POSITIVES,
            quantity="per million",
            note=f"{fp.seconds:.0f} s; random keys' prefixes, uniform as SHA-256 outputs are",
        ),
    ]
    return figures


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.2f} ms"


def _latency_figures(series: _Series, plan: Plan) -> list[Figure]:
    small, large = series.sizes[plan.small], series.sizes[plan.large]

    def ratio(a: list[float], b: list[float], pct: float) -> float:
        return percentile(a, pct) / percentile(b, pct)

    r50 = ratio(large.check_seconds, small.check_seconds, 50)
    r95 = ratio(large.check_seconds, small.check_seconds, 95)
    c50 = ratio(large.claim_seconds, small.claim_seconds, 50)
    ms = 1e3
    return [
        Figure(
            label=(
                f"1. check latency {series.label}, {large.entries:,} vs {small.entries:,} entries"
            ),
            measured=(
                f"p50 {percentile(large.check_seconds, 50) * ms:.1f} / "
                f"{percentile(small.check_seconds, 50) * ms:.1f} ms, p95 "
                f"{percentile(large.check_seconds, 95) * ms:.1f} / "
                f"{percentile(small.check_seconds, 95) * ms:.1f} ms: p50 {r50:.2f}, "
                f"p95 {r95:.2f}"
            ),
            ratio=max(r50, r95),
            target=TARGET_LATENCY_GROWTH,
            note=(
                f"{len(large.check_seconds)} checks each, alternating between the registries, "
                "POST /v1/checks in-process; ratio = the larger of p50's and p95's"
            ),
        ),
        Figure(
            label=(
                f"1. entries call of a registered applicant {series.label}, "
                f"{large.entries:,} vs {small.entries:,}"
            ),
            measured=(
                f"p50 {percentile(large.claim_seconds, 50) * ms:.1f} / "
                f"{percentile(small.claim_seconds, 50) * ms:.1f} ms "
                f"({large.claimed_entries} claimed entries, proofs verified)"
            ),
            ratio=c50,
            note=f"{len(large.claim_seconds)} calls each, alternating; ratio of p50s",
        ),
    ]


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run(plan: Plan, *, workdir: Path | None = None) -> list[Figure]:
    unit = Unit()
    pg_url = pg_server_url()
    with tempfile.TemporaryDirectory(prefix="refcheck-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        _say(f"SQLite: demo networks of {plan.small:,} and of {plan.large:,} entries")
        lite_networks = (init_network(root / "sqlite-small"), init_network(root / "sqlite-large"))
        lite = _series("SQLite", lite_networks, plan, unit, everything=True)
        pg: _Series | None = None
        pg_failure = ""
        if plan.postgres:
            urls: list[str] = []
            try:
                for _size in (plan.small, plan.large):
                    urls.append(create_pg_database(pg_url))
                _say(f"PostgreSQL: demo networks of {plan.small:,} and of {plan.large:,} entries")
                pg_networks = (
                    init_network(root / "pg-small", database_url=urls[0]),
                    init_network(root / "pg-large", database_url=urls[1]),
                )
                pg = _series("PostgreSQL", pg_networks, plan, unit, everything=False)
            except Exception as exc:  # noqa: BLE001 - SQLite's figures are still worth printing
                lines = str(exc).strip().splitlines() or [""]
                pg_failure = f"{type(exc).__name__}: {lines[-1][:300]}"
                _say(f"PostgreSQL series failed: {pg_failure}")
            finally:
                for url in urls:
                    drop_pg_database(pg_url, url)
    figures = _latency_figures(lite, plan)
    if pg is not None:
        figures += _latency_figures(pg, plan)
    elif pg_failure:
        figures.append(
            Figure(
                label=f"1. check latency PostgreSQL, {plan.large:,} vs {plan.small:,} entries",
                measured=f"the PostgreSQL run failed ({pg_failure})",
                ratio=float("nan"),
                target=TARGET_LATENCY_GROWTH,
                failure="the run failed",
            )
        )
    figures += lite.filter_figures
    figures += lite.cost
    return figures


def plan_from(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    changes: dict[str, Any] = {"workers": args.workers}
    if args.large is not None:
        changes["large"] = args.large
    if args.no_postgres:
        changes["postgres"] = False
    return Plan(**{**plan.__dict__, **changes})


def main(
    argv: Sequence[str] | None = None, *, pg_check: Callable[[str], bool] | None = None
) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--large", type=int, default=None, help="entries of the large registry")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="processes computing entries")
    args = parser.parse_args(argv)
    plan = plan_from(args)
    notes: list[str] = []
    reachable = pg_check or _pg_reachable
    if plan.postgres and not reachable(pg_server_url()):
        notes.append(
            f"PostgreSQL not reachable at {pg_server_url()} (set {PG_SERVER_ENV}): its figures "
            "are left out and not counted"
        )
        plan = Plan(**{**plan.__dict__, "postgres": False})
    started = time.perf_counter()
    load_before = _load_average()
    figures = run(plan)
    elapsed = time.perf_counter() - started
    print("refcheck bench (make bench): protocol v2, measured in this run on this machine")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average "
        f"{load_before} at start and {_load_average()} at the end, {elapsed:.0f} s"
    )
    if plan is not FULL and plan.large != FULL.large:
        notes.append(f"registry of {plan.large:,} entries, not 1,000,000: not a result")
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
