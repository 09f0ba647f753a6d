"""`hptune show URI`: a search's leaderboard and best model, with best/ verified against its manifest.

What a search's output holds is read once into `SearchResults` (`load_results`), which the report
(`job.observability.report`) draws from too. The leaderboard printed for people fits the terminal
(or 80 columns when piped, as plain text): the hyperparameters that vary get a column each, their
names abbreviated when that saves the width, stacked into one column when even that does not fit.
`--wide`, `--json` and `--csv` print everything, the last two with every digit.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from job.errors import EXIT_SEARCH_FAILED, BadInput, HptuneError, last_line
from job.numbers import duration, shorten, significant
from job.output.layout import (
    LEADERBOARD_KEY,
    MANIFEST_KEY,
    REPORT_KEY,
    best_key,
)
from job.output.manifest import verify_manifest
from job.output.reading import SearchResults, load_results, read_records
from job.storage import Store

FORMATS = ("table", "wide", "json", "csv")
DEFAULT_TOP = 10
GAP = "  "
ERROR_WANT = 30  # an error column narrower than this makes a narrower layout worth trying
ERROR_LEAST = 12  # narrower than this, the error goes on a line of its own
STACKED_LINES = 2  # stacked hyperparameters taking more lines than this are abbreviated


class NotVerified(HptuneError):
    """best/ does not match its manifest: the output was changed, or the search did not finish."""


class NoTrialCompleted(HptuneError):
    """The search ended with no completed trial: there is no best model to show."""

    exit_code = EXIT_SEARCH_FAILED


ENDED = ("succeeded", "failed")  # search.json states no chief resumes


# -- the leaderboard for people ----------------------------------------------------------------------


@dataclass
class Column:
    header: str
    cells: list[str]
    right: bool = False  # numbers line up on the right

    @property
    def width(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])


@dataclass
class Table:
    """The leaderboard laid out for people: columns, lines under each row (the stacked
    hyperparameters, an error that has no room in its column), and notes to print after it."""

    columns: list[Column]
    below: list[list[str]]
    notes: list[str]
    indent: int = 0

    def lines(self, statuses: Sequence[str], highlight: int | None) -> list[Text]:
        """A bold header, the best trial's row in green, a trial that did not complete in red."""
        widths = [c.width for c in self.columns]
        header = GAP.join(_pad(c.header, w, c.right) for c, w in zip(self.columns, widths, strict=True))
        out = [Text(header.rstrip(), style="bold")]
        for i, status in enumerate(statuses):
            line = Text(style="green" if i == highlight else "")
            for j, (column, width) in enumerate(zip(self.columns, widths, strict=True)):
                if j:
                    line.append(GAP)
                style = "red" if column.header == "status" and status not in ("completed", "pruned") else ""
                line.append(_pad(column.cells[i], width, column.right), style=style)
            line.rstrip()
            out.append(line)
            out.extend(Text(" " * self.indent + extra, style="dim") for extra in self.below[i])
        return out


def abbreviate(names: Sequence[str], widths: dict[str, int]) -> dict[str, str]:
    """Short headers for hyperparameter names longer than their values, distinct from each other:
    learning_rate -> lr, dropout1 -> drop1, hidden_units_2 -> hu2."""
    short: dict[str, str] = {}
    for name in names:
        width = widths.get(name, 1)
        if len(name) <= max(width, 5):
            short[name] = name
            continue
        digits = re.search(r"\d+$", name)
        tail = digits.group() if digits else ""
        stem = name[: len(name) - len(tail)]
        parts = [p for p in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", stem) if p]
        base = "".join(p[0] for p in parts).lower() if len(parts) > 1 else stem[:4]
        candidate = base + tail
        grow = len(base)
        while candidate in short.values() and grow < len(stem):
            grow += 1
            candidate = stem[:grow] + tail
        short[name] = candidate if len(candidate) < len(name) and candidate not in short.values() else name
    return short


def leaderboard_table(results: SearchResults, top: int, width: int, wide: bool = False) -> Table:
    """The leaderboard for people, fitted to width characters (unless wide): a column per
    hyperparameter that varies; their names abbreviated if that makes it fit; else stacked on a
    line under each row. The error gets what room is left, cut short, or a line of its own."""
    rows = results.trials[:top]
    names = results.names() if wide else results.varying()
    notes: list[str] = []
    constant = [n for n in results.names() if n not in names]
    if constant and results.trials:
        first = results.trials[0].hyperparameters
        notes.append(
            "same in every trial: " + ", ".join(f"{n}={results.hp_text(n, first.get(n))}" for n in constant)
        )
    lead = [
        Column("rank", [str(t.rank) if t.rank else "-" for t in rows], right=True),
        Column("trial", [t.trial_id for t in rows]),
        Column("status", ["lost" if t.outcome == "lost" else t.status for t in rows]),
    ]
    if wide or any(t.completed for t in rows):
        lead.append(Column(results.objective, [significant(t.score) for t in rows], right=True))
    if wide:
        lead.append(
            Column(
                "epoch", [str(t.best_step + 1) if t.best_step is not None else "-" for t in rows], right=True
            )
        )
    hps = {n: [results.hp_text(n, t.hyperparameters.get(n)) for t in rows] for n in names}
    tail = [Column("time", [duration(t.seconds) for t in rows], right=True)]
    if wide:
        tail.append(Column("worker", [t.worker or "-" for t in rows]))
        if any(t.gpus for t in rows):
            tail.append(Column("gpu", [",".join(t.gpus) or "-" for t in rows]))
    errors = [last_line(t.error) if t.error else "" for t in rows]
    has_errors = any(errors)
    no_lines: list[list[str]] = [[] for _ in rows]
    plain = [Column(n, cells, right=_numeric(cells)) for n, cells in hps.items()]
    if wide:
        error_column = [Column("error", errors)] if has_errors else []
        return Table([*lead, *plain, *tail, *error_column], no_lines, notes)
    longest = max((len(e) for e in errors), default=0)
    want, least = min(longest, ERROR_WANT), min(longest, ERROR_LEAST)

    def room(columns: Sequence[Column]) -> int:
        used = sum(c.width for c in columns) + len(GAP) * len(columns)  # a gap before the error
        return width - used

    def with_error(columns: list[Column], space: int) -> list[Column]:
        return [*columns, Column("error", [shorten(e, space) for e in errors])] if has_errors else columns

    short = abbreviate(names, {n: max((len(c) for c in cells), default=1) for n, cells in hps.items()})
    renamed = [Column(short[c.header], c.cells, c.right) for c in plain]
    legend = [f"{short[n]}={n}" for n in names if short[n] != n]
    abbreviated = ["abbreviated: " + ", ".join(legend)] if legend else []
    for columns, extra in (([*lead, *plain, *tail], []), ([*lead, *renamed, *tail], abbreviated)):
        if not has_errors and room(columns) >= -len(GAP):
            return Table(columns, no_lines, [*notes, *extra])
        if has_errors and room(columns) >= want:
            return Table(with_error(columns, room(columns)), no_lines, [*notes, *extra])
    for columns, extra in (([*lead, *plain, *tail], []), ([*lead, *renamed, *tail], abbreviated)):
        if has_errors and room(columns) >= least:
            return Table(with_error(columns, room(columns)), no_lines, [*notes, *extra])
    # Stacked: each row's hyperparameters on lines of their own under it, in full where they fit.
    indent = sum(c.width for c in lead[:2]) + len(GAP) * 2
    span = max(width - indent, 20)

    def stacked(label: dict[str, str]) -> list[list[str]]:
        return [
            _stack([f"{label[n]}={hps[n][i]}" for n in names if hps[n][i] != "-"], span).split("\n")
            if names
            else []
            for i in range(len(rows))
        ]

    below = stacked({n: n for n in names})
    full = max((len(lines) for lines in below), default=0) <= STACKED_LINES  # else abbreviated
    if not full:
        below = stacked(short)
    columns = [*lead, *tail]
    if has_errors and room(columns) >= least:
        columns = with_error(columns, room(columns))
    elif has_errors:
        for i, error in enumerate(errors):
            if error:
                below[i].append(shorten(f"error: {error}", span))
    stacked_notes = [*notes, *([] if full else abbreviated)]
    return Table(columns, below, stacked_notes, indent=indent)


def _numeric(cells: Sequence[str]) -> bool:
    return all(re.fullmatch(r"-?[\d.e+\-]+|-", c) for c in cells) and any(c != "-" for c in cells)


def _stack(items: Sequence[str], width: int) -> str:
    """items joined by two spaces, on as many lines of at most width characters as it takes."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += "  " + item
        else:
            lines.append(item)
    return "\n".join(lines)


def _pad(text: str, width: int, right: bool) -> str:
    return text.rjust(width) if right else text.ljust(width)


def summary_line(results: SearchResults) -> str:
    counts: dict[str, int] = {}
    for t in results.trials:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    parts = [f"{counts.get('completed', 0)} completed"]
    if counts.get("pruned"):
        parts.append(f"{counts['pruned']} pruned")
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    if counts.get("lost"):
        parts.append(f"{counts['lost']} given up after lost workers")
    state = f"{results.state}, " if results.state else ""
    planned = f" of {results.max_trials}" if results.max_trials else ""
    return (
        f"{results.name}: {state}{len(results.trials)}{planned} trials ({', '.join(parts)}); "
        f"objective {results.objective} ({results.direction}imize)"
    )


# -- `hptune show` -------------------------------------------------------------------------------------


def show(
    uri: str,
    out: Console,
    top: int | None = None,
    endpoint_url: str | None = None,
    output_format: str = "table",
) -> None:
    """Print the leaderboard and best model at uri (`output_format`: table, wide, json or csv);
    raises unless best/ verifies against its manifest (`NotVerified`; `NoTrialCompleted` when the
    search ended without a completed trial, so without best/), or when uri holds no search
    (`BadInput`) or cannot be read (`StorageError`)."""
    if output_format not in FORMATS:
        raise BadInput(f"unknown format {output_format!r}: one of {', '.join(FORMATS)}")
    if top is not None and top < 1:
        raise BadInput("--top must be at least 1")
    store = Store(uri, endpoint_url=endpoint_url)
    if output_format == "csv":
        _print_csv(store, uri, out, top)
        _verify(store, load_results(store, records=(), uri=uri))
        return
    shown_top = top or (DEFAULT_TOP if output_format == "table" else None)
    if output_format == "json":
        results = load_results(store, "all", uri=uri)
        problems = verify_manifest(store)
        text = json.dumps(_finite(_as_json(results, top, problems)), indent=2)
        out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        _raise_unverified(store, problems, results)
        return
    with_board = load_results(store, records=(), uri=uri)
    ids = [t.trial_id for t in with_board.trials[: shown_top or len(with_board.trials)]]
    read_records(store, [t for t in with_board.trials if t.trial_id in set(ids)])
    _print_people(with_board, store, out, shown_top or len(with_board.trials), wide=output_format == "wide")
    _verify(store, with_board)
    elsewhere = (with_board.best or {}).get("modelLocation")
    model = (
        f"not in best/ (verified against {MANIFEST_KEY}): {elsewhere}"
        if elsewhere
        else f"{store.url(best_key('model.keras'))} (verified against {MANIFEST_KEY})"
    )
    _prose(out, f"  model: {model}", "    ")
    if store.exists(REPORT_KEY):
        _prose(out, f"  report: {store.url(REPORT_KEY)}", "    ")


def _print_people(results: SearchResults, store: Store, out: Console, top: int, wide: bool) -> None:
    width = out.width  # the terminal's; piped, $COLUMNS or 80 (rich's default), and plain text
    _prose(out, summary_line(results), "  ")
    if results.reason:
        _prose(out, f"  {results.reason}", "  ")
    if results.stopped_early:
        _prose(out, f"  stopped early: {results.stopped_early}", "  ")
    rows = results.trials[:top]
    table = leaderboard_table(results, top, width, wide=wide)
    notes = table.notes
    best = next((i for i, t in enumerate(rows) if t.completed), None)
    for line in table.lines([t.outcome for t in rows], best):
        out.print(line, highlight=False, soft_wrap=True)
    if len(results.trials) > len(rows):
        notes.append(
            f"{len(rows)} of {len(results.trials)} trials shown: --top N for more; "
            "--wide, --json or --csv for everything"
        )
    for note in notes:
        _prose(out, f"({note})", " ", style="dim")
    if results.best is None:
        return
    objective = results.best.get("objective", {})
    step = results.best.get("bestStep")
    epoch = f" (epoch {step + 1})" if isinstance(step, int) else ""
    score = significant(objective.get("value"))
    _prose(out, f"best: trial {results.best.get('trialId')}, {objective.get('name')} = {score}{epoch}", "  ")
    values = results.best_values or {}
    hyperparameters = ", ".join(f"{k}={results.hp_text(k, v)}" for k, v in values.items())
    _prose(out, f"  hyperparameters: {hyperparameters}", "    ")
    metrics = results.best.get("metrics") or {}
    _prose(
        out, "  metrics: " + ", ".join(f"{k}={significant(v)}" for k, v in sorted(metrics.items())), "    "
    )


def _prose(out: Console, text: str, indent: str, style: str | None = None) -> None:
    """A line of prose, wrapped at the console's width between words (a URI is never cut), its
    continuation lines indented under it."""
    wrapped = textwrap.fill(
        text, width=out.width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
    out.print(wrapped, highlight=False, soft_wrap=True, style=style)


def _print_csv(store: Store, uri: str, out: Console, top: int | None) -> None:
    try:
        board = store.read_text(LEADERBOARD_KEY)
    except FileNotFoundError:
        raise BadInput(f"{uri}: no leaderboard.csv; is this a search's output (spec.output.uri)?") from None
    lines = board.splitlines()
    if top is not None:
        lines = lines[: top + 1]
    text = "\n".join(lines) + "\n"
    out.print(text, end="", markup=False, highlight=False, emoji=False, soft_wrap=True)


def _as_json(results: SearchResults, top: int | None, problems: list[str]) -> dict[str, Any]:
    trials = results.trials[:top] if top else results.trials
    return {
        "uri": results.uri,
        "name": results.name,
        "state": results.state,
        "reason": results.reason,
        "stoppedEarly": results.stopped_early,
        "objective": {"name": results.objective, "direction": results.direction},
        "trials": [
            {
                "rank": t.rank,
                "trialId": t.trial_id,
                "status": t.status,
                "outcome": t.outcome,
                "objective": t.score,
                "bestStep": t.best_step,
                "hyperparameters": t.hyperparameters,
                "metrics": t.metrics,
                "seconds": t.seconds,
                "worker": t.worker,
                **({"gpus": t.gpus} if t.gpus else {}),
                "error": t.error or None,
            }
            for t in trials
        ],
        "best": None if results.best is None else {**results.best, "hyperparameters": results.best_values},
        "verified": not problems,
        "problems": problems,
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: null for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _verify(store: Store, results: SearchResults | None = None) -> None:
    _raise_unverified(store, verify_manifest(store), results)


def _raise_unverified(store: Store, problems: list[str], results: SearchResults | None = None) -> None:
    if not problems:
        return
    if results is not None and not results.completed and not store.list("best"):
        raise _nothing_to_show(store, results)
    raise NotVerified(
        f"{store.url('best')} does not verify against its manifest:\n"
        + "\n".join(f"verification failed: {problem}" for problem in problems)
    )


def _nothing_to_show(store: Store, results: SearchResults) -> HptuneError:
    """No trial completed and there is no best/ at all: say so, and where the failures are."""
    failed = [t for t in results.trials if t.outcome != "completed"]
    where = (
        f"; the errors are in {store.url('trials')}/<id>/trial.json "
        f"(trial {failed[0].trial_id}: {store.url(f'trials/{failed[0].trial_id}/trial.json')}), "
        f"and `hptune show {results.uri} --wide` lists each one"
        if failed
        else ""
    )
    if results.state in ENDED:
        return NoTrialCompleted(
            f"no trial of {results.uri} completed ({len(failed)} failed), so it has no best model{where}"
        )
    return NotVerified(f"no trial of {results.uri} has completed yet, so it has no best model yet{where}")
