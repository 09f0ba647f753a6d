"""`hptune report URI`: a search drawn for people, as one self-contained HTML page.

The page holds its data and plotly.js inline (no network when it is viewed): the objective by trial
with the best so far, the hyperparameters against the objective (parallel coordinates), the
learning curves of the top trials (from the per-epoch history in trials/<id>/trial.json), which
hyperparameters mattered (a random forest on the completed trials, the method stated on the page),
and each trial's duration and outcome. A plot that would be empty or meaningless (no trial
completed, a single one) is replaced by a sentence saying why.

The chief (or a standalone search) writes it as report.html beside best/ when the search ends
(`write_report_quietly`: a report that fails is logged, never fails the search); `hptune report`
writes it again, or elsewhere, from the output alone.

The page marks itself for checks by a browser: each plot's div gets `data-rendered` once Plotly has
drawn it, and <body> gets `data-rendered="true"` when every plot has (at once when there is none);
script errors (and anything the page's Content-Security-Policy blocked: it may fetch nothing) are
collected in <html data-errors>.
"""

from __future__ import annotations

import html
import logging
import math
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job import __version__
from job.errors import last_line
from job.numbers import duration, significant
from job.output.layout import REPORT_KEY
from job.output.reading import SearchResults, TrialResult, load_results, read_losses
from job.storage import Store

if TYPE_CHECKING:
    import plotly.graph_objects as go

log = logging.getLogger(__name__)

TOP_CURVES = 5  # learning curves drawn: the best trials' only, or the plot is a tangle
MIN_FOR_IMPORTANCE = 5  # completed trials a random forest needs to say anything at all
FOREST_TREES = 200
TABLE_ROWS = 20
AXIS_TICKS = 12  # a parallel-coordinates axis with this few values has a tick at each
OUTCOME_COLORS = {"completed": "#2a9d8f", "pruned": "#8ab17d", "failed": "#e76f51", "lost": "#e9c46a"}
OUTCOME_NAMES = {
    "completed": "completed",
    "pruned": "pruned (stopped early)",
    "failed": "failed",
    "lost": "given up (lost workers)",
}
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Section:
    """One part of the page: a heading, what it shows (or why it shows nothing), and its plot."""

    key: str
    title: str
    text: str
    figure: go.Figure | None = None
    extra: str = ""  # HTML after the plot (a table)


def report(uri: str, output: str | None = None, endpoint_url: str | None = None) -> str:
    """Write the report of the search at uri to output (a path or URI), by default report.html in
    the output itself; returns where it went. Raises `BadInput` when uri holds no search."""
    store = Store(uri, endpoint_url=endpoint_url)
    page = render_report(_load(store, uri))
    if output is None:
        store.write_text(REPORT_KEY, page)
        return store.url(REPORT_KEY)
    if "://" in output:
        parent, _, name = output.rstrip("/").rpartition("/")
        target = Store(parent, endpoint_url=endpoint_url)
        target.write_text(name, page)
        return target.url(name)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return str(path)


def write_report_quietly(store: Store) -> None:
    """The search's own report.html, at its end: best-effort, a failure is logged and nothing more."""
    started = time.perf_counter()
    try:
        page = render_report(_load(store, store.uri))
        store.write_text(REPORT_KEY, page)
    except Exception as err:
        log.error(
            "the report was not written (%s: %s); `hptune report` can write it later", type(err).__name__, err
        )
        return
    log.info(
        "report written to %s (%.1f MB, %.1f s)",
        store.url(REPORT_KEY),
        len(page.encode()) / 1e6,
        time.perf_counter() - started,
    )


def _load(store: Store, uri: str) -> SearchResults:
    results = load_results(store, "all", uri=uri)
    results.losses = read_losses(store)
    return results


# -- the page ------------------------------------------------------------------------------------------


def render_report(results: SearchResults) -> str:
    """The whole page, plotly.js included once, inline."""
    sections = [
        objective_section(results),
        parallel_section(results),
        curves_section(results),
        importance_section(results),
        outcomes_section(results),
    ]
    plots = [s for s in sections if s.figure is not None]
    parts = []
    for section in sections:
        body = ""
        if section.figure is not None:
            first = section is plots[0]
            body = section.figure.to_html(
                full_html=False,
                include_plotlyjs=first,  # the bundle once, inline: the page works offline
                div_id=f"plot-{section.key}",
                config=PLOT_CONFIG,
                post_script="hptuneDrawn('{plot_id}');",
            )
        parts.append(
            f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>'
            f'<p class="{"note" if section.figure is None else "about"}">{section.text}</p>'
            f"{body}{section.extra}</section>"
        )
    title = f"{results.name}: hptune search report"
    return PAGE.format(
        title=html.escape(title),
        policy=POLICY,
        style=STYLE,
        head_script=HEAD_SCRIPT.replace("PLOTS", str(len(plots))),
        plots=len(plots),
        heading=html.escape(title),
        summary=summary_html(results),
        sections="\n".join(parts),
        footer=html.escape(
            f"Written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by hptune {__version__} "
            f"from {results.uri}. Scores are rounded to 4 significant digits here; "
            "leaderboard.csv and trials/<id>/trial.json hold every digit."
        ),
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>{title}</title>
<style>{style}</style>
<script>{head_script}</script>
</head>
<body data-plots="{plots}">
<main>
<h1>{heading}</h1>
{summary}
{sections}
<footer>{footer}</footer>
</main>
</body>
</html>
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
  margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
p.note { background: #fff8e1; border-left: 4px solid #e9c46a; padding: .6rem .9rem; }
p.about { color: #555; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; background: #fff; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-succeeded { color: #2a9d8f; font-weight: 600; }
.state-failed, .state-interrupted { color: #e76f51; font-weight: 600; }
.plotly-graph-div { background: #fff; }
footer { margin-top: 3rem; color: #777; font-size: .85rem; }
"""

# The page fetches nothing: everything it shows is inline (a browser enforces it, and reports a
# violation to the script below).
POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)

# Defined before any plot's script runs: errors are collected on <html>, and each plot reports
# when Plotly has drawn it.
HEAD_SCRIPT = """
window.hptuneErrors = [];
function hptuneError(text) {
  window.hptuneErrors.push(text);
  document.documentElement.setAttribute('data-errors', window.hptuneErrors.join(' | '));
}
window.addEventListener('error', function (e) { hptuneError(String(e.message || e)); });
document.addEventListener('securitypolicyviolation', function (e) {
  hptuneError('blocked ' + e.blockedURI + ' (' + e.violatedDirective + ')');
});
window.hptunePlots = PLOTS;
window.hptuneDrawnCount = 0;
function hptuneDrawn(id) {
  var div = document.getElementById(id);
  if (div && div.querySelector('.main-svg')) { div.setAttribute('data-rendered', 'true'); }
  window.hptuneDrawnCount += 1;
  if (window.hptuneDrawnCount >= window.hptunePlots) { document.body.setAttribute('data-rendered', 'true'); }
}
document.addEventListener('DOMContentLoaded', function () {
  if (window.hptunePlots === 0) { document.body.setAttribute('data-rendered', 'true'); }
});
"""


def summary_html(results: SearchResults) -> str:
    counts = _outcome_counts(results.trials)
    state = results.state or "unknown"
    planned = f" of {results.max_trials} planned" if results.max_trials else ""
    lines = [
        f"<p>Search <strong>{html.escape(results.name)}</strong>: "
        f'<span class="state-{html.escape(state)}">{html.escape(state)}</span>. '
        f"{len(results.trials)} trials{planned}: "
        + ", ".join(f"{n} {OUTCOME_NAMES.get(o, o)}" for o, n in counts.items() if n)
        + f". Objective <code>{html.escape(results.objective)}</code>, "
        f"{'maximized' if results.direction == 'max' else 'minimized'}.</p>"
    ]
    if results.reason:
        lines.append(f'<p class="note">{html.escape(results.reason)}</p>')
    best = results.completed[0] if results.completed else None
    if best is not None:
        values = ", ".join(
            f"{html.escape(n)} = {html.escape(results.hp_text(n, v))}"
            for n, v in best.hyperparameters.items()
        )
        epoch = f", at epoch {best.best_step + 1}" if best.best_step is not None else ""
        lines.append(
            f"<p>Best: trial <strong>{html.escape(best.trial_id)}</strong>, "
            f"{html.escape(results.objective)} = <strong>{significant(best.score)}</strong>{epoch}; "
            f"{values}.</p>"
        )
    lines.append(leaderboard_html(results))
    return "\n".join(lines)


def leaderboard_html(results: SearchResults) -> str:
    names = results.names()
    shown = results.trials[:TABLE_ROWS]
    with_errors = any(t.error for t in shown)
    scored = any(t.completed for t in shown)
    head = ["rank", "trial", "outcome", *([results.objective] if scored else []), *names, "time"]
    head += ["error"] if with_errors else []
    rows = []
    for t in shown:
        cells = [
            (str(t.rank) if t.rank else "", True),
            (t.trial_id, False),
            (OUTCOME_NAMES.get(t.outcome, t.outcome), False),
            *([(significant(t.score) if t.completed else "", True)] if scored else []),
            *[(results.hp_text(n, t.hyperparameters.get(n)), True) for n in names],
            (duration(t.seconds), True),
        ]
        if with_errors:
            cells.append((last_line(t.error, 90) if t.error else "", False))
        rows.append(
            "<tr>"
            + "".join(f"<td{' class=num' if num else ''}>{html.escape(text)}</td>" for text, num in cells)
            + "</tr>"
        )
    more = (
        f"<p class=about>The first {TABLE_ROWS} of {len(results.trials)} trials; "
        "leaderboard.csv has them all.</p>"
        if len(results.trials) > TABLE_ROWS
        else ""
    )
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(rows)
    return f'<table id="leaderboard"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>{more}'


# -- the plots -----------------------------------------------------------------------------------------


def _no_completed(results: SearchResults) -> str | None:
    """Why there is nothing to compare, or None when at least two trials completed."""
    done = results.completed
    if not done:
        failed = len(results.trials)
        return (
            f"No trial completed ({failed} ended without a score), so there is no objective to plot. "
            "The errors are under Durations and outcomes below, and in trials/&lt;id&gt;/trial.json."
        )
    if len(done) == 1:
        only = done[0]
        return (
            f"Only one trial completed (trial {html.escape(only.trial_id)}, "
            f"{html.escape(results.objective)} = {significant(only.score)}): there is nothing to compare "
            "it with yet."
        )
    return None


def _order(trial_id: str) -> tuple[int, str]:
    return (int(trial_id), "") if trial_id.isdigit() else (1 << 62, trial_id)


def _hover(results: SearchResults, trial: TrialResult) -> str:
    values = "<br>".join(
        f"{html.escape(n)} = {html.escape(results.hp_text(n, v))}" for n, v in trial.hyperparameters.items()
    )
    score = f"{html.escape(results.objective)} = {significant(trial.score)}"
    return f"trial {html.escape(trial.trial_id)}<br>{score}<br>{values}"


def _layout(fig: go.Figure, height: int = 420, **extra: Any) -> go.Figure:
    settings: dict[str, Any] = {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 60, "r": 30, "t": 30, "b": 50},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    }
    fig.update_layout(**{**settings, **extra})
    return fig


def objective_section(results: SearchResults) -> Section:
    title = "Objective by trial"
    why = _no_completed(results)
    if why is not None:
        return Section("objective", title, why)
    import plotly.graph_objects as go

    done = sorted(results.completed, key=lambda t: _order(t.trial_id))
    best_so_far: list[float] = []
    for t in done:
        score = float(t.score or 0.0)
        if not best_so_far:
            best_so_far.append(score)
        else:
            pick = max if results.direction == "max" else min
            best_so_far.append(pick(best_so_far[-1], score))
    ids = [t.trial_id for t in done]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ids,
            y=[t.score for t in done],
            mode="markers",
            name=results.objective,
            marker={"size": 9, "color": OUTCOME_COLORS["completed"]},
            text=[_hover(results, t) for t in done],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ids,
            y=best_so_far,
            mode="lines",
            name="best so far",
            line={"shape": "hv", "color": "#264653", "width": 2},
            hovertemplate="best so far %{y:.4g}<extra></extra>",
        )
    )
    _layout(fig, xaxis_title="trial (in the order they were created)", yaxis_title=results.objective)
    fig.update_xaxes(type="category")
    fig.update_yaxes(tickformat=".4~g")
    failed = len(results.trials) - len(done)
    text = (
        f"Each completed trial's {html.escape(results.objective)}, in the order the trials were created; the "
        f"line is the best so far ({'highest' if results.direction == 'max' else 'lowest'})."
        + (f" {failed} trials without a score are not drawn." if failed else "")
    )
    return Section("objective", title, text, fig)


def _axis(results: SearchResults, name: str, values: Sequence[Any]) -> dict[str, Any] | None:
    """One parallel-coordinates axis: numbers as they are (log10 for a log-sampled range), anything
    else as categories in order; None when the trials left it unset."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    definition = results.definitions.get(name, {})
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if numeric and definition.get("sampling") == "log" and all(v > 0 for v in present):
        logs = [math.log10(v) if v is not None else None for v in values]
        ticks = sorted(set(present))
        if len(ticks) > 8:
            low, high = min(present), max(present)
            decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
            ticks = [m * 10.0**e for e in decades for m in (1, 2, 5) if low <= m * 10.0**e <= high]
        return {
            "label": f"{name} (log)",
            "values": [lv if lv is not None else math.log10(min(present)) for lv in logs],
            "tickvals": [math.log10(t) for t in ticks],
            "ticktext": [results.hp_text(name, t) for t in ticks],
        }
    if numeric:
        axis: dict[str, Any] = {
            "label": name,
            "values": [v if v is not None else min(present) for v in values],
        }
        distinct = sorted(set(present))
        if len(distinct) <= AXIS_TICKS:  # a grid's values as ticks, as the user wrote them
            axis.update(tickvals=distinct, ticktext=[results.hp_text(name, v) for v in distinct])
        return axis
    labels = sorted({results.hp_text(name, v) for v in values}, key=_natural)
    index = {label: i for i, label in enumerate(labels)}
    return {
        "label": name,
        "values": [index[results.hp_text(name, v)] for v in values],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
        "range": [-0.5, len(labels) - 0.5] if len(labels) == 1 else [0, len(labels) - 1],
    }


def _natural(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def parallel_section(results: SearchResults) -> Section:
    title = "Hyperparameters against the objective"
    why = _no_completed(results)
    varying = [n for n in results.varying() if any(n in t.hyperparameters for t in results.completed)]
    if why is None and not varying:
        why = "Every trial had the same hyperparameters: there is nothing to set against the objective."
    if why is not None:
        return Section("parallel", title, why)
    import plotly.graph_objects as go

    done = results.completed
    dimensions = []
    for name in varying:
        axis = _axis(results, name, [t.hyperparameters.get(name) for t in done])
        if axis is not None:
            dimensions.append(axis)
    scores = [float(t.score or 0.0) for t in done]
    dimensions.append({"label": results.objective, "values": scores, "tickformat": ".4~g"})
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": scores,
                "colorscale": "Viridis",
                "reversescale": results.direction == "min",
                "showscale": True,
                "colorbar": {"title": {"text": results.objective}, "tickformat": ".4~g"},
            },
            dimensions=dimensions,
        )
    )
    _layout(fig, height=460, margin={"l": 70, "r": 70, "t": 60, "b": 30})
    text = (
        f"One line per completed trial ({len(done)}), through its value of each hyperparameter that varied "
        f"and its {html.escape(results.objective)} on the last axis; brighter lines scored better. "
        "Drag along an axis to pick out a range."
    )
    return Section("parallel", title, text, fig)


def _epoch_series(trial: TrialResult, metric: str) -> list[float]:
    """A metric per epoch, averaged over the trial's executions (as many epochs as all ran)."""
    runs = [[e.get(metric) for e in execution] for execution in trial.history if execution]
    runs = [r for r in runs if r and all(isinstance(v, int | float) for v in r)]
    if not runs:
        return []
    length = min(len(r) for r in runs)
    return [statistics.fmean(float(r[i]) for r in runs) for i in range(length)]  # type: ignore[arg-type]


def _epoch_hover(label: str, metric: str) -> str:
    return f"{html.escape(label)}<br>epoch %{{x}}: {html.escape(metric)} %{{y:.4g}}<extra></extra>"


def curves_section(results: SearchResults) -> Section:
    title = "Learning curves of the top trials"
    objective = results.objective
    top = [t for t in results.completed if _epoch_series(t, objective)][:TOP_CURVES]
    if not results.completed:
        return Section("curves", title, "No trial completed, so there are no learning curves to draw.")
    if not top:
        return Section(
            "curves",
            title,
            f"The trial records hold no per-epoch {html.escape(objective)} (trials/&lt;id&gt;/trial.json "
            '"history"), so there are no learning curves to draw.',
        )
    import plotly.colors
    import plotly.graph_objects as go

    palette = plotly.colors.qualitative.D3
    train = objective.removeprefix("val_") if objective.startswith("val_") else None
    fig = go.Figure()
    for i, trial in enumerate(top):
        color = palette[i % len(palette)]
        series = _epoch_series(trial, objective)
        epochs = list(range(1, len(series) + 1))
        label = f"trial {trial.trial_id} (#{trial.rank})"
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=series,
                mode="lines+markers",
                name=label,
                legendgroup=label,
                line={"color": color},
                hovertemplate=_epoch_hover(label, objective),
            )
        )
        if train:
            training = _epoch_series(trial, train)
            if training:
                fig.add_trace(
                    go.Scatter(
                        x=list(range(1, len(training) + 1)),
                        y=training,
                        mode="lines",
                        name=f"{label}, {train}",
                        legendgroup=label,
                        showlegend=False,
                        line={"color": color, "dash": "dot"},
                        hovertemplate=_epoch_hover(label, train),
                    )
                )
    _layout(fig, xaxis_title="epoch", yaxis_title=objective)
    fig.update_xaxes(dtick=1 if max(len(_epoch_series(t, objective)) for t in top) <= 20 else None)
    fig.update_yaxes(tickformat=".4~g")
    dotted = f"; dotted, the same trial's {html.escape(train)} on its training data" if train else ""
    text = (
        f"{html.escape(objective)} after each epoch for the best {len(top)} trials (solid{dotted}), "
        "averaged over a trial's executions where it had several."
    )
    return Section("curves", title, text, fig)


def importance(results: SearchResults) -> tuple[dict[str, float], float | None] | str:
    """Each varying hyperparameter's share of a random forest's impurity decrease, and the forest's
    out-of-bag R²; or why it cannot be computed."""
    done = results.completed
    names = [n for n in results.varying() if any(n in t.hyperparameters for t in done)]
    if len(done) < MIN_FOR_IMPORTANCE:
        return (
            f"Which hyperparameters mattered needs at least {MIN_FOR_IMPORTANCE} completed trials to "
            f"estimate; this search has {len(done)}."
        )
    if not names:
        return "Every trial had the same hyperparameters: none can be said to have mattered."
    scores = [float(t.score or 0.0) for t in done]
    if max(scores) == min(scores):
        return f"Every completed trial scored the same {html.escape(results.objective)}: nothing to explain."
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    columns = []
    for name in names:
        values = [t.hyperparameters.get(name) for t in done]
        present = [v for v in values if v is not None]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            floor = min(present) - 1 if present else -1
            columns.append([float(v) if v is not None else float(floor) for v in values])
        else:  # categories: their order (a tree splits them as well as it can)
            labels = sorted({results.hp_text(name, v) for v in values}, key=_natural)
            codes = {label: i for i, label in enumerate(labels)}
            columns.append([float(codes[results.hp_text(name, v)]) for v in values])
    x = np.array(columns, dtype=float).T
    y = np.array(scores, dtype=float)
    forest = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=0, oob_score=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a small forest warns that some trials were never out of bag
        forest.fit(x, y)
    shares = {name: float(share) for name, share in zip(names, forest.feature_importances_, strict=True)}
    oob = float(forest.oob_score_) if math.isfinite(forest.oob_score_) else None
    return shares, oob


def importance_section(results: SearchResults) -> Section:
    title = "Which hyperparameters mattered"
    found = importance(results)
    if isinstance(found, str):
        return Section("importance", title, found)
    import plotly.graph_objects as go

    shares, oob = found
    order = sorted(shares, key=lambda n: shares[n])
    fig = go.Figure(
        go.Bar(
            x=[shares[n] for n in order],
            y=order,
            orientation="h",
            marker={"color": "#264653"},
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    _layout(fig, height=max(220, 60 + 40 * len(order)), xaxis_title="share of the forest's impurity decrease")
    fig.update_xaxes(tickformat=".0%", rangemode="tozero")
    n = len(results.completed)
    fit = (
        f" Out of bag (on trials each tree did not see) the forest explains R² = {oob:.2f} of the "
        f"{html.escape(results.objective)}'s variation"
        + (
            ": the hyperparameters account for little of it, so read the shares with care."
            if oob < 0.3
            else "."
        )
        if oob is not None
        else ""
    )
    text = (
        f"How this was computed: a random forest of {FOREST_TREES} trees (scikit-learn's "
        f"RandomForestRegressor, seed 0) was fit to predict {html.escape(results.objective)} from the "
        f"hyperparameters of the {n} completed trials (choices as categories, in order); each bar is a "
        "hyperparameter's share of the forest's mean decrease in impurity, summing to 100%."
        f"{fit} With few trials, or values that moved together, this is a hint, not a measurement."
    )
    return Section("importance", title, text, fig)


def _outcome_counts(trials: Sequence[TrialResult]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOME_NAMES, 0)
    for t in trials:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    if not counts["pruned"]:
        del counts["pruned"]  # a search without pruning has no such outcome to show
    return counts


def outcomes_section(results: SearchResults) -> Section:
    title = "Durations and outcomes"
    if not results.trials:
        return Section("outcomes", title, "The leaderboard lists no trial: the search ran none.")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    counts = _outcome_counts(results.trials)
    timed = sorted((t for t in results.trials if t.seconds is not None), key=lambda t: _order(t.trial_id))
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.25, 0.75],
        subplot_titles=("trials by outcome", "each trial's duration"),
        horizontal_spacing=0.1,
    )
    fig.add_trace(
        go.Bar(
            x=[OUTCOME_NAMES.get(o, o) for o in counts],
            y=list(counts.values()),
            marker={"color": [OUTCOME_COLORS[o] for o in counts]},
            showlegend=False,
            hovertemplate="%{x}: %{y}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    for outcome in OUTCOME_NAMES:
        group = [t for t in timed if t.outcome == outcome]
        if not group:
            continue
        fig.add_trace(
            go.Bar(
                x=[t.trial_id for t in group],
                y=[t.seconds for t in group],
                name=OUTCOME_NAMES.get(outcome, outcome),
                showlegend=False,  # the colors are named by the bars on the left
                marker={"color": OUTCOME_COLORS[outcome]},
                text=[duration(t.seconds) for t in group],
                customdata=[last_line(t.error, 120) if t.error else "" for t in group],
                hovertemplate="trial %{x}: %{text}<br>%{customdata}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    _layout(fig, height=400, barmode="overlay")
    fig.update_xaxes(
        type="category",
        row=1,
        col=2,
        title_text="trial",
        categoryorder="array",
        categoryarray=[t.trial_id for t in timed],
    )
    fig.update_yaxes(title_text="trials", row=1, col=1)
    fig.update_yaxes(title_text="seconds", row=1, col=2)
    untimed = len(results.trials) - len(timed)
    requeued = {k: v for k, v in results.losses.items() if v}
    text = (
        "Left, how the trials ended: completed, failed (the trial raised an error), or given up after "
        "its workers stopped responding too often. Right, how long each trial trained."
        + (f" {untimed} trials have no record of their duration (no trial.json)." if untimed else "")
        + (
            f" Workers were lost during {len(requeued)} trials ({sum(requeued.values())} times in all); "
            "each was requeued until it ran out of retries."
            if requeued
            else ""
        )
    )
    return Section("outcomes", title, text, fig, extra=errors_html(results))


def errors_html(results: SearchResults) -> str:
    """The distinct errors of the trials that did not complete, the most frequent first."""
    errors: dict[str, list[str]] = {}
    for t in results.trials:
        if not t.completed:
            errors.setdefault(last_line(t.error, 160), []).append(t.trial_id)
    if not errors:
        return ""
    rows = "".join(
        f"<tr><td class=num>{len(ids)}</td><td>{html.escape(', '.join(ids[:8]))}"
        f"{' …' if len(ids) > 8 else ''}</td><td>{html.escape(text)}</td></tr>"
        for text, ids in sorted(errors.items(), key=lambda item: -len(item[1]))
    )
    return (
        '<table id="errors"><thead><tr><th>trials</th><th>ids</th><th>error (last line)</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
