"""The report's page: its HTML around the sections, the summary, the leaderboard table and the
errors, and the policy that it fetches nothing."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING

from job import __version__
from job.errors import last_line
from job.numbers import duration, significant
from job.observability.report.importance import importance_section
from job.observability.report.plots import (
    OUTCOME_NAMES,
    PLOT_CONFIG,
    curves_section,
    objective_section,
    outcome_counts,
    outcomes_section,
    parallel_section,
)
from job.output.reading import SearchResults

if TYPE_CHECKING:
    pass


TABLE_ROWS = 20

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
    counts = outcome_counts(results.trials)
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
    if results.stopped_early:
        lines.append(f'<p class="note">Stopped early: {html.escape(results.stopped_early)}.</p>')
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
