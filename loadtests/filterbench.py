"""The registry filter's figures, from bodies the server published: size, delta, SDK cost, false
positives (docs/protocol.md, "The registry filter").

Pure measurement over bytes and value sets, no server: `loadtests.bench` hands in the bodies that
`GET /v1/registry/filter` answered, and the smoke test runs the same code on tiny filters signed
here. The SDK side is the SDK's own code (`client_sdk._core.Core`'s filter step over its
`FilterCache`), driven as the sans-I/O generator it is: only the HTTP request is left out, its
body taken as already received.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.signed import parse_framed

__all__ = [
    "FalsePositives",
    "SdkCost",
    "body_layout",
    "false_positive_checks",
    "sdk_filter_cost",
]


@dataclass(frozen=True)
class BodyLayout:
    """A filter body split into its parts: magic, framed signed header, payload."""

    total: int
    header: int
    payload: int


def body_layout(body: bytes) -> BodyLayout:
    """Sizes of `RCF2`/`RCD2` || framed signed header || payload (coded set, or 6-byte lists)."""
    _obj, offset = parse_framed(body, 4)
    return BodyLayout(total=len(body), header=offset - 4, payload=len(body) - offset)


@dataclass(frozen=True)
class SdkCost:
    """Seconds of the SDK's filter work for one check, median over the samples."""

    #: The check's header names the filter already held: verify the header, take the held
    #: filter, look the keys up.
    current: float
    #: The check's header is one revision newer: the same, plus absorbing the delta body
    #: (parse, verify, apply, hash the whole list) and vouching for the result.
    with_update: float
    #: The update alone (`with_update - current`).
    update: float
    keys: int
    samples_current: int
    samples_update: int
    #: Filter requests the SDK sent for a check that met a new revision (1: the delta sufficed).
    requests: int


def _drive(op: Generator[Any, Any, Any], answers: Sequence[bytes]) -> tuple[Any, int]:
    """Run one of the SDK core's sans-I/O operations, answering its requests with `answers` in
    order (HTTP 200); its result and how many requests it sent."""
    import httpx

    sent = 0
    try:
        request = next(op)
        while True:
            del request
            sent += 1
            request = op.send(httpx.Response(200, content=answers[sent - 1]))
    except StopIteration as done:
        return done.value, sent


def sdk_filter_cost(
    *,
    base_body: bytes,
    delta_body: bytes,
    full_body_after: bytes,
    new_header: bytes,
    old_header: bytes,
    network: Any,
    key: Any,
    prefixes: Sequence[int],
    now: dt.datetime,
    samples_current: int,
    samples_update: int,
) -> SdkCost:
    """Time what the SDK does with the filter for one check, at the filter size of `base_body`.

    The SDK's own code: `client_sdk._core.Core`'s filter step (`_filter_for`, what a check runs
    after its answer's header is checked), driven as the sans-I/O generator it is, its filter
    request answered with `delta_body` (and, should it ask again, `full_body_after`); then one
    `prefix in filter` per key, as the check does. `old_header` is the framed `filter` header of
    `base_body`; `new_header` that of the revision `delta_body` leads to. Each update sample
    starts from a fresh client holding `base_body` (absorbed untimed: that is the cost of the
    first check of the day, not of each check).
    """
    from client_sdk._core import Core
    from client_sdk.filter_cache import FilterCache
    from client_sdk.pinning import NetworkPin

    def fresh() -> Core:
        pin = NetworkPin(
            "http://bench.invalid",
            network_id=network.network_id,
            signing_key_sha256=network.fingerprint,
        )
        core = Core(pin, FilterCache(), clock=now.timestamp)
        core.filters.absorb(base_body, network, key, now, (0, 0))
        return core

    def one_check(core: Core, framed: bytes, answers: Sequence[bytes]) -> tuple[int, int]:
        header = core.filters.check_header(framed, network, key, now, core.filters.seen)
        snapshot, sent = _drive(core._filter_for(network, key, header), answers)
        return sum(1 for p in prefixes if p in snapshot), sent

    warm = fresh()
    one_check(warm, old_header, [])
    current = []
    for _ in range(samples_current):
        start = time.perf_counter()
        one_check(warm, old_header, [])
        current.append(time.perf_counter() - start)
    updated = []
    requests = 0
    for _ in range(samples_update):
        core = fresh()
        start = time.perf_counter()
        _hits, requests = one_check(core, new_header, [delta_body, full_body_after])
        updated.append(time.perf_counter() - start)
        # The next check under the new revision is served from the held filter again.
        if one_check(core, new_header, [])[1] != 0:
            raise RuntimeError("the SDK fetched the filter again for the revision it holds")
    cur, upd = statistics.median(current), statistics.median(updated)
    return SdkCost(
        current=cur,
        with_update=upd,
        update=max(upd - cur, 0.0),
        keys=len(prefixes),
        samples_current=samples_current,
        samples_update=samples_update,
        requests=requests,
    )


@dataclass(frozen=True)
class FalsePositives:
    """Checks with at least one key whose prefix is in the set although nobody registered it."""

    trials: int
    keys_per_check: int
    set_size: int
    checks_hit: int
    keys_hit: int
    seconds: float

    @property
    def per_million(self) -> float:
        return self.checks_hit * 1e6 / self.trials if self.trials else float("nan")

    @property
    def expected_per_million(self) -> float:
        """`1 - (1 - n / 2^48)^k` per check, times a million."""
        per_key = self.set_size / 2.0**48
        return (1.0 - (1.0 - per_key) ** self.keys_per_check) * 1e6


def false_positive_checks(
    values: Sequence[int] | set[int],
    *,
    trials: int,
    keys_per_check: int,
    seed: int | None = None,
    chunk: int = 1 << 16,
) -> FalsePositives:
    """Test `trials` checks of `keys_per_check` random keys' prefixes against `values`.

    A key's prefix is the first 48 bits of `SHA-256(b"refcheck/v2/tag" || P)`: for a key nobody
    registered it is uniform over 0 .. 2^48 - 1, so it is drawn as such (a cryptographic hash
    per key would cost a minute for 32 million keys and test SHA-256 rather than the filter).
    """
    members = values if isinstance(values, set) else set(values)
    rng = random.Random(seed)
    bits = rng.getrandbits
    started = time.perf_counter()
    checks_hit: set[int] = set()
    keys_hit = 0
    total = trials * keys_per_check
    done = 0
    while done < total:
        n = min(chunk, total - done)
        drawn = [bits(48) for _ in range(n)]
        if not members.isdisjoint(drawn):
            for i, value in enumerate(drawn):
                if value in members:
                    keys_hit += 1
                    checks_hit.add((done + i) // keys_per_check)
        done += n
    return FalsePositives(
        trials=trials,
        keys_per_check=keys_per_check,
        set_size=len(members),
        checks_hit=len(checks_hit),
        keys_hit=keys_hit,
        seconds=time.perf_counter() - started,
    )
