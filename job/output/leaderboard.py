"""leaderboard.csv: one row per trial, completed trials best first, written by the chief and read
back by column name (`read_leaderboard`).

Columns: rank, trial_id, status, <the objective's name>, best_step, one per hyperparameter (sorted),
error. The objective's column is the one after `status`; the hyperparameters are those between
`best_step` and `error`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from job.errors import last_line
from job.output.records import COMPLETED, Pruned, public_values
from job.spec.objective import Direction, sort_key

if TYPE_CHECKING:
    from job.kt_adapter import Trial

FIXED = ("rank", "trial_id", "status", "best_step", "error")


def rank_key(score: float, trial_id: str, direction: Direction) -> tuple[float, str]:
    """Where a completed trial ranks (smaller is better): by score, a tie by trial id. The one
    order for the leaderboard, the models kept, and a worker deciding whether to save a model."""
    return sort_key(score, direction), trial_id


def ranked(trials: Sequence[Trial], direction: Direction) -> list[Trial]:
    """Completed trials best first, then the rest in id order."""
    done = [t for t in trials if t.status == COMPLETED and t.score is not None]
    done.sort(key=lambda t: rank_key(t.score or 0.0, t.trial_id, direction))
    counted = {t.trial_id for t in done}  # a set: `t not in done` made this O(n^2) per call
    rest = sorted((t for t in trials if t.trial_id not in counted), key=lambda t: t.trial_id)
    return done + rest


def leaderboard_csv(
    trials: Sequence[Trial], objective: str, direction: Direction, pruned: Mapping[str, Pruned] | None = None
) -> str:
    """The leaderboard: completed trials best first (a pruned one ranked by its score so far, its
    status `pruned` and why in the error column), then the rest."""
    pruned = pruned or {}
    rows = ranked(trials, direction)
    names = sorted({k for t in rows for k in public_values(t.hyperparameters)})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "trial_id", "status", objective, "best_step", *names, "error"])
    rank = 0
    for t in rows:
        completed = t.status == COMPLETED and t.score is not None
        rank += completed
        values = public_values(t.hyperparameters)
        stopped = pruned.get(t.trial_id) if completed else None
        note = f"pruned after epoch {stopped.epoch}: {stopped.reason}" if stopped else last_line(t.message)
        writer.writerow(
            [
                rank if completed else "",
                t.trial_id,
                "pruned" if stopped else str(t.status).lower(),
                t.score if completed else "",
                t.best_step if completed else "",
                *[values.get(n, "") for n in names],
                note if (stopped or t.message) else "",
            ]
        )
    return out.getvalue()


@dataclass(frozen=True)
class LeaderboardRow:
    """One row of leaderboard.csv, its cells as text (hyperparameters: those the row has)."""

    trial_id: str
    status: str
    rank: int | None
    score: float | None
    best_step: int | None
    hyperparameters: dict[str, str]
    error: str


@dataclass(frozen=True)
class Leaderboard:
    objective: str
    hyperparameters: list[str]
    rows: list[LeaderboardRow]


def read_leaderboard(text: str) -> Leaderboard | None:
    """leaderboard.csv read by column name; None when it is not a leaderboard hptune wrote."""
    lines = list(csv.reader(io.StringIO(text)))
    header = lines[0] if lines else []
    if not all(name in header for name in FIXED) or header.index("status") + 1 >= header.index("best_step"):
        return None
    objective = header[header.index("status") + 1]
    names = header[header.index("best_step") + 1 : header.index("error")]
    rows = []
    for line in lines[1:]:
        if len(line) != len(header):
            continue
        cells: dict[str, Any] = dict(zip(header, line, strict=True))
        rows.append(
            LeaderboardRow(
                trial_id=cells["trial_id"],
                status=cells["status"],
                rank=int(cells["rank"]) if cells["rank"] else None,
                score=float(cells[objective]) if cells[objective] else None,
                best_step=int(cells["best_step"]) if cells["best_step"] else None,
                hyperparameters={n: cells[n] for n in names if cells[n] != ""},
                error=cells["error"],
            )
        )
    return Leaderboard(objective, names, rows)
