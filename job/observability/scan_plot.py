"""The learning-rate scan drawn as one self-contained page (`hptune lr-scan`), in the report's style
(job/observability/report/plots.py): the loss of every step against its rate, the smoothed loss,
and the suggested range shaded; plotly.js inline, so the page opens offline."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go

from job.observability.report.plots import layout


def write_scan_plot(
    rates: Sequence[float],
    smoothed: Sequence[float],
    losses: Sequence[float],
    suggested_range: tuple[float, float],
    suggested: float,
    target: Path,
) -> None:
    low, high = suggested_range
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=list(rates),
            y=list(losses),
            mode="markers",
            name="each step's loss",
            marker={"size": 3, "color": "#bbbbbb"},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=list(rates),
            y=list(smoothed),
            mode="lines",
            name="smoothed loss",
            line={"color": "#1f77b4", "width": 2},
        )
    )
    figure.add_vrect(
        x0=low,
        x1=high,
        fillcolor="#2ca02c",
        opacity=0.12,
        line_width=0,
        annotation_text="range to search",
        annotation_position="top left",
    )
    figure.add_vline(x=suggested, line={"color": "#2ca02c", "dash": "dash"})
    finite = [value for value in smoothed if value == value]
    top = 2 * min(finite) if finite else None
    layout(
        figure,
        xaxis={"type": "log", "title": "learning rate"},
        yaxis={"title": "training loss", **({"range": [0, top * 1.5]} if top else {})},
    )
    body = figure.to_html(full_html=False, include_plotlyjs=True)
    title = html.escape(f"Learning-rate scan: suggested {suggested:.3g}, search {low:.3g} to {high:.3g}")
    target.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body style='font-family: sans-serif'><h2>{title}</h2>{body}</body></html>",
        encoding="utf-8",
    )
