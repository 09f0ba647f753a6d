"""Which hyperparameters mattered: a random forest on the completed trials, the method on the page."""

from __future__ import annotations

import html
import math
import warnings
from typing import TYPE_CHECKING

from job.observability.report.plots import Section, layout, natural
from job.output.reading import SearchResults

if TYPE_CHECKING:
    pass


MIN_FOR_IMPORTANCE = 5  # completed trials a random forest needs to say anything at all
FOREST_TREES = 200


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
            labels = sorted({results.hp_text(name, v) for v in values}, key=natural)
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
    layout(fig, height=max(220, 60 + 40 * len(order)), xaxis_title="share of the forest's impurity decrease")
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
