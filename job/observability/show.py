"""`hptune show URI`: a search's leaderboard and best model, with best/ verified against its manifest.

What a search's output holds is read once into `SearchResults` (`load_results`), which the report
(`job.observability.report`) draws from too. The leaderboard printed for people fits the terminal
(or 80 columns when piped, as plain text): the hyperparameters that vary get a column each, their
names abbreviated when that saves the width, stacked into one column when even that does not fit.
`--wide`, `--json` and `--csv` print everything, the last two with every digit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.text import Text

from job.errors import BadInput, HptuneError, last_line
from job.observability.numbers import duration, hp_text, shorten, significant
from job.storage import Store
from job.storage.layout import (
    LEADERBOARD_KEY,
    MANIFEST_KEY,
    REPORT_KEY,
    SEARCH_STATUS_KEY,
    SNAPSHOT_KEY,
    best_key,
    trial_key,
)

FORMATS = ("table", "wide", "json", "csv")
DEFAULT_TOP = 10
GAP = "  "
ERROR_WANT = 30  # an error column narrower than this makes a narrower layout worth trying
ERROR_LEAST = 12  # narrower than this, the error goes on a line of its own
STACKED_LINES = 2  # stacked hyperparameters taking more lines than this are abbreviated
LOST_WORKER = "lost its worker"  # in the error of a trial the chief gave up on (job/search/coordinator.py)
READERS = 16  # trial records read at once (object stores answer one request at a time, slowly)


def verify_manifest(store: Store) -> list[str]:
    """Problems with best/ (empty when best/ holds exactly the files its manifest lists, intact)."""
    try:
        manifest = json.loads(store.read_text(MANIFEST_KEY))
    except FileNotFoundError:
        return [f"{MANIFEST_KEY} is missing: best/ is incomplete or the search has not finished"]
    except json.JSONDecodeError as err:
        return [f"{MANIFEST_KEY} is not valid JSON ({err})"]
    listed: dict[str, dict[str, object]] = manifest.get("files", {})
    problems = []
    for name, entry in sorted(listed.items()):
        try:
            size, digest = store.checksum(best_key(name))
        except FileNotFoundError:
            problems.append(f"best/{name} is listed in the manifest but missing")
            continue
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            problems.append(f"best/{name} does not match its manifest checksum")
    for key in store.list("best"):
        if key != MANIFEST_KEY and key.removeprefix("best/") not in listed:
            problems.append(f"{key} is not listed in the manifest")
    return problems


class NotVerified(HptuneError):
    """best/ does not match its manifest: the output was changed, or the search did not finish."""


# -- reading a search's output -----------------------------------------------------------------------


@dataclass
class TrialResult:
    """One trial as its output records it: its leaderboard row, and its trial.json when read."""

    trial_id: str
    status: str  # completed | failed (as the leaderboard says)
    rank: int | None
    score: float | None
    best_step: int | None
    hyperparameters: dict[str, Any]
    error: str  # the whole error text where trial.json has it, else the leaderboard's last line
    seconds: float | None = None
    worker: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[list[dict[str, float]]] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.status == "completed" and self.score is not None

    @property
    def outcome(self) -> str:
        """completed, failed (the trial raised), or lost (the chief gave up on its workers)."""
        if self.completed:
            return "completed"
        return "lost" if LOST_WORKER in self.error else self.status


@dataclass
class SearchResults:
    """What a search's output says of it: the leaderboard's trials (best first), the search's own
    record (search.json) and the best model's metrics."""

    uri: str
    name: str
    state: str | None
    reason: str | None
    objective: str
    direction: str  # max | min
    max_trials: int | None
    trials: list[TrialResult]
    definitions: dict[str, dict[str, Any]]  # the spec's hyperparameters by name
    losses: dict[str, int] = field(default_factory=dict)  # worker losses per trial (requeues too)
    best: dict[str, Any] | None = None  # best/metrics.json
    best_values: dict[str, Any] | None = None  # best/hyperparameters.json

    @property
    def completed(self) -> list[TrialResult]:
        return [t for t in self.trials if t.completed]

    def names(self) -> list[str]:
        """Hyperparameter names: the spec's order first, then any a model builder declared."""
        seen = {n for t in self.trials for n in t.hyperparameters}
        ordered = [n for n in self.definitions if n in seen]
        return ordered + sorted(seen - set(ordered))

    def varying(self) -> list[str]:
        """The hyperparameters that took more than one value across the trials."""
        return [n for n in self.names() if len({_key(t.hyperparameters.get(n)) for t in self.trials}) > 1]

    def hp_text(self, name: str, value: Any) -> str:
        """A hyperparameter value for people, to its step's precision where the spec gives one."""
        if value is None:
            return "-"
        definition = self.definitions.get(name, {})
        return hp_text(
            value, definition.get("step"), definition.get("min"), definition.get("sampling") or "linear"
        )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _read_json(store: Store, key: str) -> Any:
    try:
        return json.loads(store.read_text(key))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None


def _cell(text: str) -> Any:
    """A leaderboard cell as the value it was written from (the CSV holds str() of each)."""
    if text in ("True", "False"):
        return text == "True"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) or text.lower() in ("nan", "inf", "-inf") else text


def load_results(store: Store, records: str | Iterable[str] = "all", uri: str | None = None) -> SearchResults:
    """Read the search at store: leaderboard.csv (required: `BadInput` without it), search.json,
    best/, and the trial.json of `records` ("all", or the ids to read)."""
    uri = uri or store.uri
    try:
        board = store.read_text(LEADERBOARD_KEY)
    except FileNotFoundError:
        raise BadInput(f"{uri}: no leaderboard.csv; is this a search's output (spec.output.uri)?") from None
    rows = list(csv.reader(io.StringIO(board)))
    if not rows or len(rows[0]) < 6:
        raise BadInput(f"{uri}: leaderboard.csv is not a leaderboard hptune wrote")
    header = rows[0]
    objective, names = header[3], header[5:-1]
    trials = []
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        cells = dict(zip(header, row, strict=True))
        trials.append(
            TrialResult(
                trial_id=cells["trial_id"],
                status=cells["status"],
                rank=int(cells["rank"]) if cells["rank"] else None,
                score=float(cells[objective]) if cells[objective] else None,
                best_step=int(cells["best_step"]) if cells["best_step"] else None,
                hyperparameters={n: _cell(cells[n]) for n in names if cells[n] != ""},
                error=cells["error"],
            )
        )
    status = _read_json(store, SEARCH_STATUS_KEY) or {}
    spec = (status.get("spec") or {}).get("spec") or {}
    best = _read_json(store, best_key("metrics.json"))
    declared = spec.get("tuner", {}).get("objective", {}).get("direction")
    direction = declared or (best or {}).get("objective", {}).get("direction") or _direction(trials)
    results = SearchResults(
        uri=uri,
        name=status.get("name") or (status.get("spec") or {}).get("metadata", {}).get("name") or "search",
        state=status.get("state"),
        reason=status.get("reason"),
        objective=objective,
        direction=direction,
        max_trials=status.get("maxTrials"),
        trials=trials,
        definitions={d["name"]: d for d in spec.get("hyperparameters", []) if "name" in d},
        best=best,
        best_values=_read_json(store, best_key("hyperparameters.json")),
    )
    wanted = {t.trial_id for t in trials} if records == "all" else set(records)
    read_records(store, [t for t in trials if t.trial_id in wanted])
    return results


def read_losses(store: Store) -> dict[str, int]:
    """Worker losses per trial, from the chief's snapshot (requeued trials that went on to finish
    are counted here; the leaderboard shows only the trials given up on)."""
    snapshot = _read_json(store, SNAPSHOT_KEY) or {}
    state = snapshot.get("state") if isinstance(snapshot, dict) else None
    losses = state.get("losses", {}) if isinstance(state, dict) else {}
    return {str(k): int(v) for k, v in losses.items() if isinstance(v, int | float)}


def read_records(store: Store, trials: Sequence[TrialResult]) -> None:
    """Fill in each trial's duration, worker, metrics, history and full error from its trial.json
    (a trial given up on for lost workers has none)."""
    if not trials:
        return
    with ThreadPoolExecutor(max_workers=min(READERS, len(trials))) as pool:
        records = list(pool.map(lambda t: _read_json(store, trial_key(t.trial_id, "trial.json")), trials))
    for trial, record in zip(trials, records, strict=True):
        if not isinstance(record, dict):
            continue
        trial.seconds = record.get("seconds")
        trial.worker = record.get("worker")
        trial.metrics = {k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, int | float)}
        trial.history = record.get("history") or []
        if record.get("error") and not trial.completed:
            trial.error = record["error"]
        recorded = record.get("hyperparameters")
        if isinstance(recorded, dict):  # typed values, where the CSV has text
            trial.hyperparameters = recorded


def _direction(trials: Sequence[TrialResult]) -> str:
    """The objective's direction from the ranking itself, when nothing records it."""
    scores = [t.score for t in sorted((t for t in trials if t.completed), key=lambda t: t.rank or 0)]
    return (
        "min"
        if len(scores) > 1 and scores[0] is not None and scores[-1] is not None and scores[0] < scores[-1]
        else "max"
    )


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
    raises unless best/ verifies against its manifest (`NotVerified`), or when uri holds no search
    (`BadInput`) or cannot be read (`StorageError`)."""
    if output_format not in FORMATS:
        raise BadInput(f"unknown format {output_format!r}: one of {', '.join(FORMATS)}")
    if top is not None and top < 1:
        raise BadInput("--top must be at least 1")
    store = Store(uri, endpoint_url=endpoint_url)
    if output_format == "csv":
        _print_csv(store, uri, out, top)
        _verify(store)
        return
    shown_top = top or (DEFAULT_TOP if output_format == "table" else None)
    if output_format == "json":
        results = load_results(store, "all", uri=uri)
        problems = verify_manifest(store)
        text = json.dumps(_finite(_as_json(results, top, problems)), indent=2)
        out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        _raise_unverified(store, problems)
        return
    with_board = load_results(store, records=(), uri=uri)
    ids = [t.trial_id for t in with_board.trials[: shown_top or len(with_board.trials)]]
    read_records(store, [t for t in with_board.trials if t.trial_id in set(ids)])
    _print_people(with_board, store, out, shown_top or len(with_board.trials), wide=output_format == "wide")
    _verify(store)
    elsewhere = (with_board.best or {}).get("modelLocation")
    model = (
        f"not in best/ (verified against {MANIFEST_KEY}): {elsewhere}"
        if elsewhere
        else f"{store.url(best_key('model.keras'))} (verified against {MANIFEST_KEY})"
    )
    out.print(f"  model: {model}", highlight=False, soft_wrap=True)
    if store.exists(REPORT_KEY):
        out.print(f"  report: {store.url(REPORT_KEY)}", highlight=False, soft_wrap=True)


def _print_people(results: SearchResults, store: Store, out: Console, top: int, wide: bool) -> None:
    width = out.width  # the terminal's; piped, $COLUMNS or 80 (rich's default), and plain text
    out.print(summary_line(results), highlight=False, soft_wrap=True)
    if results.reason:
        out.print(f"  {results.reason}", highlight=False, soft_wrap=True)
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
        out.print(f"({note})", highlight=False, soft_wrap=True, style="dim")
    if results.best is None:
        return
    objective = results.best.get("objective", {})
    step = results.best.get("bestStep")
    epoch = f" (epoch {step + 1})" if isinstance(step, int) else ""
    score = significant(objective.get("value"))
    out.print(
        f"best: trial {results.best.get('trialId')}, {objective.get('name')} = {score}{epoch}",
        highlight=False,
        soft_wrap=True,
    )
    values = results.best_values or {}
    out.print(
        "  hyperparameters: " + ", ".join(f"{k}={results.hp_text(k, v)}" for k, v in values.items()),
        highlight=False,
        soft_wrap=True,
    )
    metrics = results.best.get("metrics") or {}
    out.print(
        "  metrics: " + ", ".join(f"{k}={significant(v)}" for k, v in sorted(metrics.items())),
        highlight=False,
        soft_wrap=True,
    )


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


def _verify(store: Store) -> None:
    _raise_unverified(store, verify_manifest(store))


def _raise_unverified(store: Store, problems: list[str]) -> None:
    if problems:
        raise NotVerified(
            f"{store.url('best')} does not verify against its manifest:\n"
            + "\n".join(f"verification failed: {problem}" for problem in problems)
        )
