"""Timing helpers: one scalar multiplication as the unit, re-timed next to every sample.

The machine is shared and its speed drifts during a run, so a cost is never divided by a unit
timed minutes earlier: each sample of an operation is paired with a unit sample taken right
before it, and the figure is the median of those paired ratios (the approach of
`protocol.bench`, which also explains why).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import rbcl

__all__ = ["Paired", "Unit", "time_call"]


def time_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Paired:
    """Result of a paired measurement: seconds per call and the cost in units."""

    ratio: float  # median of (operation sample / adjacent unit sample), per `per`
    op_seconds: float  # median operation sample, per call (not divided by `per`)
    unit_seconds: float  # median unit sample
    samples: int


class Unit:
    """One `crypto_scalarmult_ristretto255` call on fixed random inputs."""

    def __init__(self, calls: int = 40) -> None:
        self._point = rbcl.crypto_core_ristretto255_random()
        self._scalar = rbcl.crypto_core_ristretto255_scalar_random()
        self._calls = calls

    def sample(self) -> float:
        """Seconds per multiplication, over `calls` back-to-back calls (a few milliseconds)."""
        point, scalar = self._point, self._scalar
        start = time.perf_counter()
        for _ in range(self._calls):
            rbcl.crypto_scalarmult_ristretto255(scalar, point)
        return (time.perf_counter() - start) / self._calls

    def paired(
        self,
        op: Callable[[], object],
        *,
        samples: int,
        calls: int = 1,
        per: int = 1,
    ) -> Paired:
        """Cost of `op` in units, divided by `per` (elements, keys): `samples` pairs of (unit
        sample, `calls` calls of `op`)."""
        ratios: list[float] = []
        ops: list[float] = []
        units: list[float] = []
        for _ in range(samples):
            unit = self.sample()
            start = time.perf_counter()
            for _ in range(calls):
                op()
            elapsed = (time.perf_counter() - start) / calls
            ratios.append(elapsed / unit / per)
            ops.append(elapsed)
            units.append(unit)
        return Paired(
            ratio=statistics.median(ratios),
            op_seconds=statistics.median(ops),
            unit_seconds=statistics.median(units),
            samples=samples,
        )
