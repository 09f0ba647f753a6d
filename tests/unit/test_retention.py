"""Which trial models are kept: the models workers decide to save and those the chief keeps agree,
so the best keepModels trials each have their model, whatever order they end in and however many
tie."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from job.kt_adapter import Status, Trial
from job.output.layout import trial_key
from job.output.leaderboard import ranked
from job.retry import Backoff
from job.search.retention import ModelRetention, worth_saving
from job.spec.objective import Direction
from job.storage import Store


def trial(trial_id: str, score: float | None = None) -> Trial:
    t = Trial(
        hyperparameters=None,
        trial_id=trial_id,
        status=Status.COMPLETED if score is not None else Status.RUNNING,
    )
    t.score = score
    return t


def run_search(
    scores: dict[str, float], order: list[str], keep: int, direction: Direction, root: Path
) -> set[str]:
    """Trials end in `order`: each worker saves its model when `worth_saving` says so (asking for
    the best `keep` so far, as it asks the chief), the chief's retention runs after each end.
    Returns the trial ids whose model is left."""
    store = Store(str(root), Backoff(seconds=0))
    retention = ModelRetention(store, keep)
    ended: dict[str, Trial] = {}
    for trial_id in order:
        best = ranked(list(ended.values()), direction)[:keep]
        if worth_saving(scores[trial_id], trial_id, best, keep, direction):
            store.write_text(trial_key(trial_id, "model.keras"), "weights")
        ended[trial_id] = trial(trial_id, scores[trial_id])
        retention.after_end(trial_id, list(ended.values()), direction)
    return {key.split("/")[1] for key in store.list("trials") if key.endswith("/model.keras")}


@pytest.mark.parametrize("direction", ["max", "min"])
def test_the_best_trials_keep_their_models_when_scores_tie(direction: Direction, tmp_path: Path) -> None:
    # Three trials, two models kept; trial 0 ends last with the same score as trial 2: it ranks
    # ahead of trial 2 (a tie goes by trial id), so its worker must save it.
    scores = {"0": 0.95, "1": 0.98 if direction == "max" else 0.90, "2": 0.95}
    kept = run_search(scores, ["1", "2", "0"], keep=2, direction=direction, root=tmp_path)
    assert kept == {"0", "1"}


def test_every_order_of_tied_scores_leaves_the_top_k_models(tmp_path: Path) -> None:
    rng = random.Random(0)
    for case in range(40):
        n, keep = rng.randint(2, 6), rng.randint(1, 3)
        scores = {str(i): rng.choice([0.9, 0.95, 0.97]) for i in range(n)}  # many ties
        direction: Direction = rng.choice(["max", "min"])
        expected = {t.trial_id for t in ranked([trial(i, s) for i, s in scores.items()], direction)[:keep]}
        for number, order in enumerate(itertools.islice(itertools.permutations(scores), 24)):
            kept = run_search(scores, list(order), keep, direction, tmp_path / f"{case}-{number}")
            assert kept == expected, f"scores {scores}, ended in order {order}, keep {keep}, {direction}"


def test_a_result_behind_the_kth_best_is_not_saved() -> None:
    best = [trial("3", 0.98), trial("4", 0.96)]
    assert not worth_saving(0.96, "5", best, keep=2, direction="max")  # tied, but ranks behind "4"
    assert not worth_saving(0.90, "0", best, keep=2, direction="max")
    assert worth_saving(0.90, "0", best[:1], keep=2, direction="max")  # fewer than k so far
