"""Fused trials end to end: every optimizer on TensorFlow and JAX learns what its trials learn
alone; a standalone search and a chief with two workers over gRPC run fused groups whose trials are
each recorded once, under their own member ids, with models that load in plain Keras and score what
was recorded."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import keras
import pytest
from prometheus_client import CollectorRegistry

from job.roles.common import prepare_model
from job.roles.coordination import build_search
from job.search.worker import LocalAccess, TrialLoop
from job.spec import load_spec
from job.storage import Store
from job.training import fused
from job.training.data import load_dataset
from job.training.fused import train_group
from job.training.space import make_builder
from job.training.trial import Outcome, run_trial
from tests.support.commands import child_result, hptune, hptune_env
from tests.support.fused import MEMBERS, OPTIMIZERS, fused_against_alone, group_job, in_order, values
from tests.support.processes import search

FUSED = {"distribution": {"fuseTrials": 3}, "tuner": {"maxTrials": 5}, "output": {"keepModels": 5}}


def _close(found: dict[str, float], what: str) -> None:
    assert found["moved"] > 2e-5, f"{what}: training moved nothing, so nothing was compared"
    assert found["weights"] <= 1e-6, f"{what}: weights differ by {found['weights']}"
    assert found["metrics"] <= 1e-6, f"{what}: metrics differ by {found['metrics']}"


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_fused_groups_learn_what_their_trials_learn_alone_on_tensorflow(optimizer: str) -> None:
    for member, found in zip(MEMBERS, fused_against_alone(optimizer), strict=True):
        _close(found, f"{member} with {optimizer}")


def test_fused_groups_learn_what_their_trials_learn_alone_on_jax() -> None:
    for optimizer, members in child_result("tests.support.fused", timeout=600).items():
        for member, found in zip(MEMBERS, members, strict=True):
            _close(found, f"{member} with {optimizer} on JAX")


def test_early_stopping_stops_each_member_where_keras_stops_it_alone() -> None:
    stop = {"monitor": "val_loss", "patience": 0, "minDelta": 0.02}
    job = group_job(epochs=6, earlyStopping=stop)
    data = in_order()
    build = make_builder(job, data.output_units, data.input_shape, None)
    initial: dict[str, list] = {}

    def recording(hp):
        model = build(hp)
        initial[json.dumps(hp.values)] = model.get_weights()
        return model

    def replaying(hp):  # alone, from the same initial weights
        model = build(hp)
        model.set_weights(initial[json.dumps(hp.values)])
        return model

    hps = [values(m) for m in MEMBERS]
    together = train_group(hps, recording, job.spec.model, data, job.spec.training, job.spec.tuner.objective)  # type: ignore[arg-type]
    alone = [run_trial(hp, replaying, data, job.spec.training, job.spec.tuner.objective) for hp in hps]
    assert [len(o.history[0]) for o in together] == [len(a.history[0]) for a in alone]


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "trials").glob("*/trial.json"))]


def _scores_what_was_recorded(spec: Path, out: Path, records: list[dict]) -> None:
    data = load_dataset(load_spec(spec).spec.data)
    saved = [r for r in records if r["modelSaved"]]
    assert saved, "no trial kept its model"
    for record in saved:
        model = keras.models.load_model(out / "trials" / record["trialId"] / "model.keras")
        _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
        assert abs(accuracy - record["metrics"]["val_accuracy"]) < 1e-3, record["trialId"]


def test_a_standalone_search_runs_fused_groups(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": FUSED})
    done = hptune("run", str(spec))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train fused, as one program" in done.stderr
    records = _records(tmp_path / "out")
    assert [r["status"] for r in records] == ["completed"] * 5
    assert Counter(r["worker"] for r in records) == {"tuner0": 2, "tuner0-f1": 2, "tuner0-f2": 1}
    _scores_what_was_recorded(spec, tmp_path / "out", records)
    assert (tmp_path / "out/best/model.keras").exists()


def test_workers_run_fused_groups_through_a_chief_over_grpc(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    fast = {"heartbeatSeconds": 0.5, "leaseSeconds": 3, "lingerSeconds": 10, "fuseTrials": 2}
    spec = write_spec(
        {"spec": {**FUSED, "distribution": fast, "output": {"viaChief": True, "keepModels": 5}}}
    )
    with search(spec, tmp_path) as s:
        chief = s.chief()
        workers = [s.worker(0), s.worker(1)]
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
        for worker in workers:
            assert worker.wait(timeout=60) == 0, worker.log[-3000:]
        runs = s.runs_per_trial()
    records = _records(tmp_path / "out")
    assert [r["status"] for r in records] == ["completed"] * 5
    assert sorted(runs.values()) == [1] * 5, "no trial lost or run twice"
    assert {r["worker"] for r in records} <= {"tuner0", "tuner0-f1", "tuner1", "tuner1-f1"}
    assert any(r["worker"].endswith("-f1") for r in records), "a member wrote through the chief as itself"
    assert not list((tmp_path / "out").glob("trials/*/attempts/*")), "every staged attempt was published"
    _scores_what_was_recorded(spec, tmp_path / "out", records)


def test_the_jax_backend_runs_a_fused_search(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": FUSED})
    done = hptune("run", str(spec), env=hptune_env(KERAS_BACKEND="jax"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["status"] for r in _records(tmp_path / "out")] == ["completed"] * 5


def test_a_group_that_runs_out_of_device_memory_is_halved_not_failed(
    write_spec: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A device that holds at most two members: larger groups fail as XLA fails out of memory.
    job = load_spec(write_spec({"spec": {**FUSED, "distribution": {"fuseTrials": 4}}}))
    data = load_dataset(job.spec.data)
    build_model, space = prepare_model(job, data, None)
    store = Store(str(tmp_path / "out"))
    built = build_search(job, space, store, CollectorRegistry())
    real, sizes = fused.train_group, []

    def small_device(hps, *args, **kwargs):
        sizes.append(len(hps))
        if len(hps) > 2:
            return [Outcome(error="RESOURCE_EXHAUSTED: Out of memory while trying to allocate") for _ in hps]
        return real(hps, *args, **kwargs)

    monkeypatch.setattr(fused, "train_group", small_device)
    loop = TrialLoop("tuner0", LocalAccess(built.coordinator, "tuner0"), job, build_model, data, store)
    with caplog.at_level(logging.WARNING, logger="job.search.worker"):
        assert loop.run() == 5
    assert sizes == [4, 2, 2, 1], "halved, and later groups no larger"
    assert "a fused group of 4 ran out of device memory; trying groups of 2" in caplog.text
    assert [t.status for t in built.coordinator.trials()] == ["COMPLETED"] * 5


def test_auto_fusion_runs_a_search_to_its_end(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    # How large the groups grow depends on this machine's timings; what must hold does not.
    spec = write_spec({"spec": {**FUSED, "distribution": {"fuseTrials": "auto"}, "tuner": {"maxTrials": 6}}})
    done = hptune("run", str(spec))
    assert done.returncode == 0, done.stderr[-3000:]
    records = _records(tmp_path / "out")
    assert [r["status"] for r in records] == ["completed"] * 6
    assert len({r["trialId"] for r in records}) == 6
