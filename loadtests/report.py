"""Pure formatting of benchmark and load-test figures: one line per figure, a verdict per target.

Kept free of any measuring so the smoke test can run it without timing anything, and so
`make bench` and `make load` state targets the same way: what was measured, the absolute
numbers, the ratio, the target and `met` or `missed`, and a last line `N of M targets met`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Figure",
    "Target",
    "endpoint_name",
    "format_bytes",
    "format_figure",
    "format_report",
    "percentile",
    "summary_line",
]


_ID_SEGMENT = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def endpoint_name(method: str, path: str) -> str:
    """`POST /v1/disclosure-requests/{id}/answer`: one report row per endpoint, not per id."""
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


@dataclass(frozen=True)
class Target:
    """`ratio <= value` (a cost) or `ratio >= value` (a throughput)."""

    op: Literal["<=", ">="]
    value: float

    def met(self, ratio: float) -> bool:
        if math.isnan(ratio):
            return False
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Figure:
    """One printed line. `target` None: reported for information, not counted."""

    label: str
    measured: str
    #: The number judged against `target`: a ratio, or a value in `quantity`'s unit.
    ratio: float
    target: Target | None = None
    note: str = ""
    #: Set when the run behind the figure was not clean (failed requests, wrong answers): the
    #: target then counts as missed whatever the ratio, and the line says why.
    failure: str = ""
    #: How the judged number is printed: `ratio 1.05`, or `bytes per entry 3.70`.
    quantity: str = "ratio"

    @property
    def verdict(self) -> str | None:
        if self.target is None:
            return None
        if self.failure:
            return f"missed ({self.failure})"
        return "met" if self.target.met(self.ratio) else "missed"


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile by linear interpolation between closest ranks (numpy's default),
    so p50 of an even-sized sample is the median."""
    if not values:
        return math.nan
    if not 0 <= pct <= 100:
        raise ValueError("percentile must be within 0..100")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else math.nan


def format_bytes(n: float) -> str:
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def format_figure(figure: Figure) -> str:
    parts = [figure.label, figure.measured, f"{figure.quantity} {figure.ratio:.2f}"]
    if figure.target is not None:
        parts.append(f"target {figure.target}")
        parts.append(str(figure.verdict))
    else:
        parts.append("(no target)")
    line = " | ".join(parts)
    return f"{line}  [{figure.note}]" if figure.note else line


def summary_line(figures: Iterable[Figure]) -> str:
    judged = [f for f in figures if f.target is not None]
    met = sum(1 for f in judged if f.verdict == "met")
    return f"{met} of {len(judged)} targets met"


def format_report(title: str, figures: Sequence[Figure], preamble: Sequence[str] = ()) -> str:
    lines = [title, *preamble, *(format_figure(f) for f in figures), summary_line(figures)]
    return "\n".join(lines)
