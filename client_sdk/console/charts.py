"""Charts drawn on the server as SVG (no JavaScript, no charting library from a CDN): a bar
chart with its figures written on the bars, so it reads without colour and prints, and a
histogram whose bars each have a label of their own."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

__all__ = ["bar_chart", "histogram"]

COLOURS = ("#1f5f99", "#b35900", "#2d7a3a", "#7a2d6b")
#: A histogram bar's colour by its kind; the label under the bar says the same in words.
KIND_COLOURS = {"good": "#1f5f99", "late": "#b35900", "missing": "#7a2d6b"}


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 640,
    height: int = 220,
) -> Markup:
    """Grouped bars: one group per label, one bar per series; a legend names the series."""
    top, bottom, left = 28, 40, 36
    plot_h = height - top - bottom
    peak = max([1, *(v for _, values in series for v in values)])
    group_w = (width - left - 8) / max(1, len(labels))
    bar_w = max(2.0, (group_w - 6) / max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'class="chart" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" '
        'stroke="#333"/>',
        f'<text x="4" y="{top + 4}" font-size="11">{peak}</text>',
    ]
    for i, label in enumerate(labels):
        x0 = left + i * group_w + 3
        for j, (_, values) in enumerate(series):
            value = values[i] if i < len(values) else 0
            h = plot_h * value / peak
            x = x0 + j * bar_w
            y = top + plot_h - h
            colour = COLOURS[j % len(COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(label)}: {value}</title></rect>'
            )
            if value:
                parts.append(
                    f'<text x="{x + (bar_w - 1) / 2:.1f}" y="{y - 2:.1f}" font-size="10" '
                    f'text-anchor="middle">{value}</text>'
                )
        parts.append(
            f'<text x="{x0 + group_w / 2 - 3:.1f}" y="{top + plot_h + 14}" font-size="10" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    for j, (name, _) in enumerate(series):
        x = left + j * 170
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
            f'fill="{COLOURS[j % len(COLOURS)]}"/>'
            f'<text x="{x + 14}" y="{height - 5}" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _wrap(label: str, chars: int, lines: int = 4) -> list[str]:
    """`label` in lines of at most about `chars` characters, broken at spaces; at most `lines`
    lines (the last one keeps the rest)."""
    out: list[str] = []
    for word in label.split():
        if out and len(out[-1]) + 1 + len(word) <= chars:
            out[-1] += " " + word
        elif len(out) < lines:
            out.append(word)
        else:
            out[-1] += " " + word
    return out or [""]


def histogram(
    title: str,
    bars: Sequence[tuple[str, int, str]],
    *,
    width: int = 760,
    height: int = 280,
) -> Markup:
    """One bar per `(label, value, kind)`, coloured by kind (`KIND_COLOURS`), its figure above
    it and its label below it in up to four lines."""
    top, bottom, left = 24, 62, 36
    plot_h = height - top - bottom
    peak = max([1, *(value for _, value, _ in bars)])
    slot = (width - left - 8) / max(1, len(bars))
    bar_w = max(4.0, slot * 0.6)
    chars = max(6, int(slot / 5.6))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'class="chart" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" '
        'stroke="#333"/>',
        f'<text x="4" y="{top + 4}" font-size="11">{peak}</text>',
    ]
    for i, (label, value, kind) in enumerate(bars):
        centre = left + i * slot + slot / 2
        h = plot_h * value / peak
        y = top + plot_h - h
        colour = KIND_COLOURS.get(kind, COLOURS[0])
        parts.append(
            f'<rect x="{centre - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: {value}</title></rect>'
            f'<text x="{centre:.1f}" y="{y - 3:.1f}" font-size="11" '
            f'text-anchor="middle">{value}</text>'
        )
        lines = "".join(
            f'<tspan x="{centre:.1f}" dy="{0 if n == 0 else 12}">{escape(line)}</tspan>'
            for n, line in enumerate(_wrap(label, chars))
        )
        parts.append(
            f'<text y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{lines}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
