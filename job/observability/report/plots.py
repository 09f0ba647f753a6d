"""The report's plots: the objective by trial, the hyperparameters against it, the learning curves
and each trial's duration and outcome; each a `Section`, or a sentence saying why it is empty."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from job.errors import last_line
from job.numbers import duration, significant
from job.output.reading import SearchResults, TrialResult

if TYPE_CHECKING:
    import plotly.graph_objects as go


TOP_CURVES = 5  # learning curves drawn: the best trials' only, or the plot is a tangle
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


def layout(fig: go.Figure, height: int = 420, **extra: Any) -> go.Figure:
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
    layout(fig, xaxis_title="trial (in the order they were created)", yaxis_title=results.objective)
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
    labels = sorted({results.hp_text(name, v) for v in values}, key=natural)
    index = {label: i for i, label in enumerate(labels)}
    return {
        "label": name,
        "values": [index[results.hp_text(name, v)] for v in values],
        "tickvals": list(range(len(labels))),
        "ticktext": labels,
        "range": [-0.5, len(labels) - 0.5] if len(labels) == 1 else [0, len(labels) - 1],
    }


def natural(text: str) -> tuple[int, float, str]:
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
    layout(fig, height=460, margin={"l": 70, "r": 70, "t": 60, "b": 30})
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
    layout(fig, xaxis_title="epoch", yaxis_title=objective)
    fig.update_xaxes(dtick=1 if max(len(_epoch_series(t, objective)) for t in top) <= 20 else None)
    fig.update_yaxes(tickformat=".4~g")
    dotted = f"; dotted, the same trial's {html.escape(train)} on its training data" if train else ""
    text = (
        f"{html.escape(objective)} after each epoch for the best {len(top)} trials (solid{dotted}), "
        "averaged over a trial's executions where it had several."
    )
    return Section("curves", title, text, fig)


def outcome_counts(trials: Sequence[TrialResult]) -> dict[str, int]:
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

    counts = outcome_counts(results.trials)
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
    layout(fig, height=400, barmode="overlay")
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
