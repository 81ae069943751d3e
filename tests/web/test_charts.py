"""The SVG charts: valid markup, escaped text, values on the right scale, gaps where data is missing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from hub_server.web import charts

SVG = "{http://www.w3.org/2000/svg}"


def _svg(markup: str) -> ET.Element:
    figure = ET.fromstring(str(markup))  # the whole figure must be well-formed XML
    svg = figure.find(f"{SVG}svg")
    assert svg is not None
    return svg


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1.0), (0.3, 0.5), (1, 1.0), (7, 10.0), (12, 20.0), (24, 25.0), (101, 200.0)]
)
def test_axis_ends_on_a_round_number(value: float, expected: float) -> None:
    assert charts.nice_max(value) == expected


def test_line_chart_scales_points_and_breaks_at_missing_values() -> None:
    markup = charts.line_chart(
        "Line <a>", "desc & more", ["00", "01", "02", "03"], [charts.Series("in", [0, 10, None, 5])]
    )
    svg = _svg(markup)
    assert svg.get("role") == "img"
    title = svg.find(f"{SVG}title")
    assert title is not None and title.text == "Line <a>"  # escaped in the markup, intact for the reader
    assert "<a>" not in str(markup).split("</title>")[0].split("<title")[1]
    lines = svg.findall(f"{SVG}polyline")
    dots = svg.findall(f"{SVG}circle")
    assert len(lines) == 1 and len(dots) == 1  # the gap splits the series: a 2-point run and a lone point
    points = [tuple(map(float, p.split(","))) for p in (lines[0].get("points") or "").split()]
    bottom = charts.HEIGHT - charts.BOTTOM
    assert points[0][1] == pytest.approx(bottom)  # 0 sits on the axis
    assert points[1][1] == pytest.approx(charts.TOP)  # 10 is the top of a 0..10 axis
    assert float(dots[0].get("cy") or 0) == pytest.approx(bottom - (bottom - charts.TOP) / 2)


def test_series_differ_by_dash_not_only_colour() -> None:
    svg = _svg(charts.line_chart("t", "d", ["a", "b"], [charts.Series("x", [1, 2]), charts.Series("y", [2, 1])]))
    lines = svg.findall(f"{SVG}polyline")
    assert len({ln.get("stroke") for ln in lines}) == 2
    assert len({ln.get("stroke-dasharray") for ln in lines}) == 2


def test_bar_chart_draws_one_bar_per_nonzero_value() -> None:
    svg = _svg(
        charts.bar_chart(
            "t", "d", ["Mon", "Tue", "Wed"], [charts.Series("in", [3, 0, None]), charts.Series("out", [1, 2, 4])]
        )
    )
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 4
    tallest = max(bars, key=lambda b: float(b.get("height") or 0))
    bottom = charts.HEIGHT - charts.BOTTOM
    assert float(tallest.get("y") or 0) == pytest.approx(bottom - (bottom - charts.TOP) * 4 / 5)  # axis 0..5


def test_legend_names_are_escaped() -> None:
    markup = str(charts.line_chart("t", "d", ["a"], [charts.Series("<b>x</b>", [1]), charts.Series("y", [2])]))
    assert "<b>x</b>" not in markup and "&lt;b&gt;x&lt;/b&gt;" in markup
