"""Small inline SVG charts drawn on the server: no script, no library, readable without colour.

Every chart is an ``<svg role="img">`` with a title and a description; the page puts the same numbers in a
table beside it for screen readers. Series differ by colour *and* by dash pattern or marker, and the
colours keep at least 3:1 contrast against the white background (WCAG 1.4.11).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

# Okabe-Ito derived palette darkened for >= 3:1 on white; paired with dashes so colour is never the only cue.
COLOURS = ("#0b5cad", "#b34700", "#1a7a3c", "#8a2d8f", "#5c5c00", "#a3123a")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")

# Small enough that 12-unit text stays readable when the chart shrinks to a phone's width.
WIDTH = 420
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 12, 30
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM

_ids = count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None = no data for that point (gap in the line)


def nice_max(value: float) -> float:
    """The smallest 1-2-5 step multiple at or above ``value`` (an axis that ends on a round number)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        top = step * 10.0**exponent
        if top >= value:
            return top
    return 10.0 ** (exponent + 1)


def _ticks(top: float) -> list[float]:
    # Steps of 1, 2 or 5 times a power of ten: 0-2 in 0.5s, 0-5 in 1s, 0-25 in 5s, 0-10 in 2s.
    leading = top / 10 ** math.floor(math.log10(top))
    n = 4 if leading == 2 else 5
    return [top * i / n for i in range(n + 1)]


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _frame(title: str, desc: str, x_labels: Sequence[str], series: Sequence[Series]) -> tuple[list[str], int, float]:
    """The svg's opening, grid and axes, scaled to fit every series: (parts, x slots, top of the y axis)."""
    chart_id = f"chart{next(_ids)}"
    slots = max(1, len(x_labels))
    top = nice_max(max((v for s in series for v in s.values if v is not None), default=0.0))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]
    for tick in _ticks(top):
        y = TOP + PLOT_H - PLOT_H * tick / top
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    every = max(1, math.ceil(len(x_labels) / 8))  # at most ~8 labels so they never overlap at phone width
    for i, label in enumerate(x_labels):
        if i % every:
            continue
        x = LEFT + PLOT_W * (i + 0.5) / slots
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H}"/>')
    return parts, slots, top


def _legend(series: Sequence[Series], kind: str) -> str:
    if len(series) < 2:
        return ""  # the caption names a lone series
    items = []
    for index, s in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        dash = DASHES[index % len(DASHES)]
        if kind == "line":
            swatch = (
                f'<svg width="28" height="10" aria-hidden="true"><line x1="0" x2="28" y1="5" y2="5" '
                f'stroke="{colour}" stroke-width="3" stroke-dasharray="{dash}"/></svg>'
            )
        else:
            swatch = (
                f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" fill="{colour}"/></svg>'
            )
        items.append(f"<li>{swatch} {escape(s.name)}</li>")
    return '<ul class="legend">' + "".join(items) + "</ul>"


def _figure(title: str, svg_parts: list[str], legend: str) -> Markup:
    caption = f'<figcaption aria-hidden="true">{escape(title)}</figcaption>'  # the svg's title already names it
    return Markup('<figure class="chart-box">' + caption + "".join(svg_parts) + legend + "</figure>")  # noqa: S704 - parts escaped


def line_chart(title: str, desc: str, x_labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series over the same x slots; gaps where a value is None."""
    parts, slots, top = _frame(title, desc, x_labels, series)
    for index, s in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        dash = DASHES[index % len(DASHES)]
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values[:slots]):
            if value is None:
                runs.append([])
                continue
            x = LEFT + PLOT_W * (i + 0.5) / slots
            y = TOP + PLOT_H - PLOT_H * value / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline class="series" points="{" ".join(run)}" stroke="{colour}" '
                    f'stroke-dasharray="{dash}" data-series={quoteattr(s.name)}/>'
                )
    parts.append("</svg>")
    return _figure(title, parts, _legend(series, "line"))


def bar_chart(title: str, desc: str, x_labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Grouped bars: one group per x slot, one bar per series."""
    parts, slots, top = _frame(title, desc, x_labels, series)
    group_w = PLOT_W / slots
    bar_w = group_w * 0.8 / max(1, len(series))
    for index, s in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        for i, value in enumerate(s.values[:slots]):
            if not value:
                continue
            h = PLOT_H * value / top
            x = LEFT + group_w * i + group_w * 0.1 + bar_w * index
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + PLOT_H - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}"/>'
            )
    parts.append("</svg>")
    return _figure(title, parts, _legend(series, "bar"))
