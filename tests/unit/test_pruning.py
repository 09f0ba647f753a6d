"""Trial pruning (job/search/pruning.py) on synthetic learning curves: which trial stops at which
epoch, under the median and asha rules, and what the coordinator, the leaderboard, the metrics and
a restarted chief make of it. No training."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from job.errors import BadInput
from job.kt_adapter import Status
from job.observability.metrics import SearchMetrics
from job.output.leaderboard import leaderboard_csv
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.search.pruning import TrialPruner
from job.spec import validate_spec
from job.spec.models import JobSpec
from job.spec.tuner import PruningSpec
from job.training.space import declared_space
from tests.support.coordination import FakeClock, ask, received
from tests.support.specs import BASE_SPEC, merge

OBJECTIVE = "val_accuracy"


def pruner(kind: str, direction: str = "max", **settings: Any) -> TrialPruner:
    return TrialPruner(PruningSpec(type=kind, **settings), OBJECTIVE, direction, epochs=9)


def run(p: TrialPruner, trial_id: str, curve: list[float]) -> int | None:
    """Feed a trial's per-epoch values until it is pruned: the epoch it stopped at, or None."""
    for epoch, value in enumerate(curve, start=1):
        if p.report(trial_id, epoch, value) is not None:
            return epoch
    p.ended(trial_id, completed=True)
    return None


GOOD = [0.6, 0.75, 0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.93]
FAIR = [0.5, 0.65, 0.72, 0.78, 0.8, 0.82, 0.84, 0.85, 0.86]
BAD = [0.1, 0.12, 0.13, 0.15, 0.16, 0.17, 0.18, 0.19, 0.2]


# -- median ------------------------------------------------------------------------------------------


def test_median_stops_a_clearly_worse_trial_after_min_epochs_once_enough_trials_completed() -> None:
    p = pruner("median", min_epochs=2, min_trials=2)
    assert run(p, "0", BAD) is None  # nothing to compare with yet: trains to the end
    assert run(p, "1", GOOD) is None
    assert run(p, "2", GOOD) is None  # above the median of {BAD, GOOD}
    assert run(p, "3", BAD) == 2  # not at epoch 1 (minEpochs 2), then below the median
    decision = p.pruned["3"]
    assert decision.epoch == 2 and "median 0.75 of 3 completed trials after epoch 2" in decision.reason


def test_median_compares_the_best_so_far_and_follows_the_direction() -> None:
    p = pruner("median", direction="min", min_epochs=1, min_trials=1)
    assert run(p, "0", [1.0, 0.5, 0.5]) is None
    # A loss that got worse at epoch 3 still counts its best (0.45): better than the median 0.5.
    assert p.report("1", 1, 0.9) is None
    assert p.report("1", 2, 0.45) is None
    assert p.report("1", 3, 0.7) is None
    assert run(p, "2", [2.0, 1.8]) == 1


def test_pruned_and_unfinished_trials_are_not_the_medians_reference() -> None:
    p = pruner("median", min_epochs=1, min_trials=2)
    assert run(p, "0", GOOD) is None
    p.report("1", 1, 0.9)  # still running: not a reference
    assert run(p, "2", BAD) is None  # one completed trial is fewer than minTrials
    assert run(p, "3", GOOD) is None
    assert run(p, "4", BAD) == 1  # now two completed references: 0 and 3, not the running 1
    assert run(p, "5", FAIR) == 1  # below the median of the completed 0, 2 and 3 (0.6)


# -- asha --------------------------------------------------------------------------------------------


def test_asha_decides_only_at_its_rungs_and_keeps_the_top_third() -> None:
    p = pruner("asha", min_epochs=1, min_trials=2, reduction_factor=3)  # rungs at 1, 3, 9
    assert run(p, "0", GOOD) is None
    assert run(p, "1", FAIR) is None  # rung 1 held one trial: fewer than minTrials
    # Rung 1 holds GOOD and FAIR: the top third's cutoff lies between them.
    assert run(p, "2", [0.55, 0.9, 0.95]) == 1
    assert run(p, "3", [0.52, 0.9, 0.95, 0.96]) == 1
    stopped_at_3 = run(p, "4", [0.7, 0.71, 0.72, 0.99])
    assert stopped_at_3 == 3  # goes past rung 1 (above its cutoff), is not decided at epoch 2
    assert "epoch-3 rung" in p.pruned["4"].reason


def test_asha_follows_the_direction() -> None:
    p = pruner("asha", direction="min", min_epochs=2, min_trials=1, reduction_factor=2)  # rungs 2, 4, 8
    assert run(p, "0", [0.9, 0.5, 0.4, 0.3]) is None
    assert run(p, "1", [0.9, 0.8]) == 2


# -- the pruner's bookkeeping ------------------------------------------------------------------------


def test_repeated_or_lost_reports_and_nan_change_nothing() -> None:
    p = pruner("median", min_epochs=1, min_trials=1)
    assert run(p, "0", GOOD) is None
    assert p.report("1", 1, math.nan) is None
    assert p.report("1", 3, 0.1) is not None  # epochs 1-2 lost (a chief restart): 0.1 carried
    first = p.pruned["1"]
    assert p.report("1", 3, 0.1) == first and p.report("1", 4, 0.99) == first


def test_a_trial_at_its_last_epoch_is_not_pruned() -> None:
    p = pruner("median", min_epochs=1, min_trials=1)
    run(p, "0", GOOD)
    assert p.report("1", 1, 0.1, planned=9) is not None  # early: stopped
    assert p.report("2", 9, 0.1, planned=9) is None  # lost reports up to its last epoch: done anyway
    assert "2" not in p.pruned


def test_a_trial_that_runs_again_starts_a_new_curve() -> None:
    p = pruner("median", min_epochs=1, min_trials=1)
    run(p, "0", GOOD)
    assert run(p, "1", BAD) == 1
    p.forget("1")
    assert "1" not in p.pruned and run(p, "1", GOOD) is None


def test_state_round_trips_through_json() -> None:
    p = pruner("asha", min_epochs=1, min_trials=1, reduction_factor=3)
    run(p, "0", GOOD)
    run(p, "1", BAD)
    restored = pruner("asha", min_epochs=1, min_trials=1, reduction_factor=3)
    restored.restore(json.loads(json.dumps(p.state())))
    assert restored.state() == p.state()
    assert run(restored, "2", BAD) == run(p, "2", BAD) == 1


def test_epochs_saved_uses_the_trials_own_epochs_when_they_are_tuned() -> None:
    p = TrialPruner(PruningSpec(type="median", min_trials=1), OBJECTIVE, "max", epochs="epochs")
    run(p, "0", GOOD)
    assert run(p, "1", BAD) == 1
    assert p.epochs_saved("1", {"epochs": 12}) == 11 and p.epochs_saved("0", {"epochs": 12}) == 0


# -- in the coordinator ------------------------------------------------------------------------------


def search(tmp_path: Path, **pruning: Any) -> tuple[JobSpec, Coordinator, CollectorRegistry, FakeClock]:
    doc = merge(
        BASE_SPEC,
        {
            "spec": {
                "output": {"uri": str(tmp_path / "out")},
                "tuner": {"maxTrials": 6, "pruning": {"type": "median", "minTrials": 1, **pruning}},
                "training": {"epochs": 5},
            }
        },
    )
    job = validate_spec(doc)
    registry, clock = CollectorRegistry(), FakeClock()
    tuner = job.spec.tuner
    metrics = SearchMetrics(registry, job.name, "random", OBJECTIVE, "max", 6, "test")
    assert tuner.pruning is not None
    coordinator = Coordinator(
        make_oracle(job, declared_space(job)),
        lease_seconds=60,
        max_worker_losses=3,
        metrics=metrics,
        clock=clock,
        trial_pruner=TrialPruner(tuner.pruning, OBJECTIVE, "max", job.spec.training.epochs),
    )
    return job, coordinator, registry, clock


def train(coordinator: Coordinator, tuner_id: str, curve: list[float]) -> str:
    """A worker's trial: an epoch per heartbeat until the chief prunes it, then its end."""
    trial = ask(coordinator, tuner_id)
    epoch = 0
    for epoch, value in enumerate(curve, start=1):
        assert coordinator.heartbeat(tuner_id, trial.trial_id, epoch, {OBJECTIVE: value})
        if coordinator.pruned(trial.trial_id) is not None:
            break
    best = max(curve[:epoch])
    coordinator.update_trial(tuner_id, trial.trial_id, {OBJECTIVE: best}, step=epoch - 1)
    trial.metrics.update(OBJECTIVE, best, step=epoch - 1)
    trial.status = Status.COMPLETED  # a pruned trial informs the oracle with its score so far
    assert coordinator.end_trial(tuner_id, trial)
    return trial.trial_id


def test_the_chief_prunes_through_heartbeats_and_counts_it(tmp_path: Path) -> None:
    _, coordinator, registry, _ = search(tmp_path)
    good = train(coordinator, "w0", GOOD[:5])
    bad = train(coordinator, "w0", BAD[:5])
    assert coordinator.pruned(good) is None
    assert coordinator.pruned(bad) is not None and coordinator.pruned(bad).epoch == 1  # type: ignore[union-attr]
    count = registry.get_sample_value
    assert count("hptune_trials_total", {"status": "pruned"}) == 1
    assert count("hptune_trials_total", {"status": "completed"}) == 1
    assert count("hptune_pruned_epochs_total") == 4  # 5 planned, 1 trained
    assert coordinator.trial_pruner is not None
    board = list(
        csv.DictReader(
            io.StringIO(
                leaderboard_csv(coordinator.trials(), OBJECTIVE, "max", coordinator.trial_pruner.pruned)
            )
        )
    )
    rows = {row["trial_id"]: row for row in board}
    assert rows[good]["status"] == "completed" and rows[good]["rank"] == "1"
    assert rows[bad]["status"] == "pruned" and rows[bad]["error"].startswith("pruned after epoch 1: ")


def test_a_restarted_chief_keeps_its_pruning_decisions_and_references(tmp_path: Path) -> None:
    _, coordinator, _, _ = search(tmp_path)
    train(coordinator, "w0", GOOD[:5])
    running = ask(coordinator, "w1")
    coordinator.heartbeat("w1", running.trial_id, 1, {OBJECTIVE: 0.05})  # pruned, then the chief dies
    assert coordinator.pruned(running.trial_id) is not None
    text = coordinator.snapshot_text()

    _, resumed, registry, _ = search(tmp_path)
    resumed.restore(json.loads(text))
    assert resumed.pruned(running.trial_id) == coordinator.pruned(running.trial_id)
    again = received(running)
    again.metrics.update(OBJECTIVE, 0.05, step=0)
    again.status = Status.COMPLETED
    assert resumed.end_trial("w1", again)
    assert registry.get_sample_value("hptune_trials_total", {"status": "pruned"}) == 1
    assert train(resumed, "w0", BAD[:5]) in resumed.trial_pruner.pruned  # type: ignore[union-attr]


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"tuner": {"pruning": {"type": "median", "minEpochs": 2}}},
            "spec.tuner.pruning.minEpochs: is 2, but trials train training.epochs (2)",
        ),
        (
            {"tuner": {"pruning": {"type": "asha", "reductionFactor": 1}}},
            "spec.tuner.pruning.reductionFactor",
        ),
        ({"tuner": {"pruning": {"type": "hyperbolic"}}}, "spec.tuner.pruning.type"),
        (
            {
                "tuner": {
                    "algorithm": "hyperband",
                    "maxTrials": None,
                    "hyperband": {"maxEpochs": 4},
                    "pruning": {"type": "median"},
                }
            },
            "spec.tuner.pruning: does not apply to algorithm: hyperband",
        ),
        (
            {"tuner": {"executionsPerTrial": 2, "pruning": {"type": "median"}}, "training": {"epochs": 5}},
            "spec.tuner.pruning: needs executionsPerTrial 1",
        ),
        (
            {
                "tuner": {"objective": {"name": "val_auc"}, "pruning": {"type": "median"}},
                "training": {"epochs": 5},
            },
            "spec.tuner.objective.name: 'val_auc' is not a metric this model reports",
        ),
        ({"tuner": {"pruning": {"type": "median", "minEpochs": 4}}, "training": {"epochs": 5}}, ""),
    ],
)
def test_pruning_that_cannot_work_is_refused_naming_the_field(changes: dict[str, Any], says: str) -> None:
    doc = merge(BASE_SPEC, {"spec": changes})
    if not says:
        validate_spec(doc)  # a valid neighbour of the refused cases
        return
    with pytest.raises(BadInput) as caught:
        validate_spec(doc)
    assert says in str(caught.value)
