"""Pruning in a real distributed search: a chief and two workers on loopback, where trials with a
learning rate far too small to learn are stopped early and the one that learns is not."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.commands import hptune

pytestmark = pytest.mark.slow

GOOD_RATE = 0.01
BAD_RATES = [1e-6, 2e-6, 3e-6, 4e-6]


def test_a_distributed_search_prunes_the_trials_that_do_not_learn(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec(
        {
            "spec": {
                "hyperparameters": [
                    {"name": "hidden1", "type": "fixed", "value": 32},
                    {"name": "dropout1", "type": "fixed", "value": 0.1},
                    {"name": "learning_rate", "type": "choice", "values": [GOOD_RATE, *BAD_RATES]},
                ],
                "tuner": {
                    "algorithm": "grid",
                    "maxTrials": None,
                    "pruning": {"type": "median", "minEpochs": 1, "minTrials": 1},
                },
                "training": {"epochs": 8, "batchSize": 16},
            }
        }
    )
    result = hptune("local", str(spec), "--workers", "2", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    records = [json.loads(p.read_text()) for p in (out / "trials").glob("*/trial.json")]
    by_rate = {r["hyperparameters"]["learning_rate"]: r for r in records}
    assert sorted(by_rate) == sorted([GOOD_RATE, *BAD_RATES])

    good = by_rate[GOOD_RATE]
    assert good["status"] == "completed" and len(good["history"][0]) == 8
    pruned = [r for rate, r in by_rate.items() if rate in BAD_RATES and r["status"] == "pruned"]
    # Bad trials that started before any trial completed have nothing to be compared with; the
    # rest are stopped early, with the epoch and the reason recorded.
    assert len(pruned) >= 2, [(r["hyperparameters"], r["status"]) for r in records]
    for record in pruned:
        assert len(record["history"][0]) == record["pruned"]["epoch"] < 8  # stopped at that epoch
        assert "median" in record["pruned"]["reason"] and not record["modelSaved"]

    board = {row["trial_id"]: row for row in csv.DictReader((out / "leaderboard.csv").open())}
    assert board[good["trialId"]]["rank"] == "1"
    assert {board[r["trialId"]]["status"] for r in pruned} == {"pruned"}
    assert json.loads((out / "best/metrics.json").read_text())["trialId"] == good["trialId"]

    shown = hptune("show", str(out), "--wide")
    assert shown.returncode == 0, shown.stderr
    assert f"{len(pruned)} pruned" in " ".join(shown.stdout.split())  # prose wraps at the width
    assert "pruned after epoch" in shown.stdout
