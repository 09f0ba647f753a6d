"""hptune and plain, unmodified Keras Tuner in one search, as real processes on loopback.

tests/support/plain_keras_tuner.py is an ordinary Keras Tuner script: as a worker of hptune's chief, its
trials outlive the heartbeat lease (it sends none), its failures are recorded, its trials get
records and a best/ the chief writes, and a plain worker that dies loses its trial after the plain
lease; as the chief of an hptune worker, a failed trial ends FAILED through the plain protocol.
The chief's CPU with an idle plain worker asking for trials is measured and printed.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from job.kt_adapter import Status, service, service_grpc, trial_from_proto
from job.wire.protocol import TUNER_ID_KEY
from tests.support.commands import hptune
from tests.support.processes import search

pytestmark = pytest.mark.slow

# Heartbeat leases far shorter than a plain worker's trial.
SHORT_LEASES = {
    "distribution": {"leaseSeconds": 2, "heartbeatSeconds": 1, "chiefWaitSeconds": 60, "lingerSeconds": 5}
}


def records(out: Path) -> dict[str, dict[str, object]]:
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "trials").glob("*/trial.json")}


def test_plain_workers_trials_outlive_the_lease_fail_with_an_explanation_and_reach_best(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec({"spec": {"tuner": {"maxTrials": 3}, **SHORT_LEASES}})
    out = tmp_path / "out"
    with search(spec, tmp_path) as s:
        chief = s.chief()
        # Each trial: 3 epochs with 1.5 s after each, well past the 2 s lease; the first one raises.
        plain = s.plain("tuner0", PLAIN_EPOCHS="3", PLAIN_EPOCH_SLEEP="1.5", PLAIN_FAIL_FIRST="1")
        assert chief.wait(timeout=240) == 0, chief.log[-3000:]
        assert plain.wait(timeout=60) == 0, plain.log[-3000:]
    assert "requeued" not in chief.log
    assert "tuner0 is a plain Keras Tuner worker" in chief.log
    assert set(s.runs_per_trial().values()) == {1}  # every trial ran once
    found = records(out)
    assert len(found) == 3 and {r["worker"] for r in found.values()} == {"tuner0"}
    failed = [r for r in found.values() if r["status"] == "failed"]
    assert len(failed) == 1
    assert "a plain Keras Tuner worker" in str(failed[0]["error"])
    assert "carries no error text" in str(failed[0]["error"])
    completed = [r for r in found.values() if r["status"] == "completed"]
    assert all("trial_" in str(r["modelLocation"]) and r["metrics"] for r in completed)

    assert json.loads((out / "search.json").read_text())["state"] == "succeeded"
    best = json.loads((out / "best/metrics.json").read_text())
    assert "plain Keras Tuner worker" in best["modelLocation"]
    assert not (out / "best/model.keras").exists()
    assert "plain Keras Tuner worker" in (out / "best/README.md").read_text()
    shown = hptune("show", str(out))
    assert shown.returncode == 0, shown.stderr
    printed = " ".join(shown.stdout.split())  # prose wraps at the terminal's width
    assert "model: not in best/" in printed and "tuner0, a plain Keras Tuner worker" in printed


def test_a_mixed_fleet_loses_no_trial_when_its_plain_worker_dies(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec(
        {
            "spec": {
                "tuner": {"maxTrials": 6},
                # The plain worker dies for good: the hptune worker waits as a spare for its trial.
                "distribution": {
                    **SHORT_LEASES["distribution"],
                    "plainWorkerLeaseSeconds": 8,
                    "spareWorkers": 1,
                },
                "training": {"epochs": 6, "batchSize": 16},
            }
        }
    )
    out = tmp_path / "out"
    with search(spec, tmp_path) as s:
        chief = s.chief()
        plain = s.plain("tuner1", PLAIN_EPOCHS="6", PLAIN_EPOCH_SLEEP="1")
        found = plain.wait_for_log(r"plain: running trial (\w+)", timeout=120)
        plain.kill(signal.SIGKILL)  # a plain worker dies mid-trial: its trial must come back
        worker = s.worker(0)
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
        assert worker.wait(timeout=30) == 0, worker.log[-3000:]
    lost = found.group(1)
    assert f"trial {lost} requeued: worker tuner1 stopped responding (a plain Keras Tuner worker" in chief.log
    found_records = records(out)
    assert len(found_records) == 6
    assert {r["status"] for r in found_records.values()} == {"completed"}
    assert found_records[lost]["worker"] == "tuner0"
    runs = s.runs_per_trial()
    assert runs.pop(lost) == 2 and set(runs.values()) == {1}


def test_an_hptune_worker_of_a_plain_chief_reports_a_failed_trial_and_finishes(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    # A builder that fails once, at the first trial (its first call is hptune's check at start-up).
    (tmp_path / "failing_model.py").write_text(
        textwrap.dedent(
            """
            import keras

            calls = 0


            def build_model(hp):
                global calls
                calls += 1
                if calls == 2:
                    raise RuntimeError("deliberate failure of the first trial")
                model = keras.Sequential(
                    [
                        keras.Input(shape=(64,)),
                        keras.layers.Dense(hp.get("hidden1"), activation="relu"),
                        keras.layers.Dense(10, activation="softmax"),
                    ]
                )
                model.compile(
                    optimizer=keras.optimizers.Adam(hp.get("learning_rate")),
                    loss="categorical_crossentropy",
                    metrics=["accuracy"],
                )
                return model
            """
        )
    )
    model = {"type": "custom", "builder": "failing_model:build_model", "hidden": None, "learningRate": None}
    spec = write_spec({"spec": {"model": model}})
    out = tmp_path / "out"
    with search(spec, tmp_path) as s:
        chief = s.plain("chief", PLAIN_MAX_TRIALS="3")
        worker = s.worker(0)
        assert worker.wait(timeout=240) == 0, worker.log[-3000:]
        assert chief.wait(timeout=60) == 0, chief.log[-3000:]
    assert "is a plain Keras Tuner chief" in worker.log
    ended = [json.loads(p.read_text()) for p in (tmp_path / "plain-chief/plain").glob("trial_*/trial.json")]
    assert sorted(t["status"] for t in ended) == ["COMPLETED", "COMPLETED", "FAILED"]
    # The worker published its own records: the plain chief does not.
    found = records(out)
    assert sorted(r["status"] for r in found.values()) == ["completed", "completed", "failed"]
    assert "deliberate failure of the first trial" in str(
        next(r for r in found.values() if r["status"] == "failed")["error"]
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_plain_worker_costs_the_chief_little_cpu(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """Every trial handed out, one still running: a plain worker kept as a spare (spareWorkers)
    asks again the moment it hears IDLE (Keras Tuner's loop has no pause), so the chief holds IDLE
    answers back."""
    from keras_tuner.src.distribute.oracle_client import OracleClient

    spare = {"lingerSeconds": 1, "spareWorkers": 1}
    spec = write_spec({"spec": {"tuner": {"maxTrials": 1}, "distribution": spare}})
    with search(spec, tmp_path) as s:
        chief = s.chief()
        chief.wait_for_log(r"oracle listening", timeout=60)
        channel = grpc.insecure_channel(f"127.0.0.1:{s.port}")
        holder = service_grpc.OracleStub(channel)  # an hptune-like worker holding the only trial
        held = holder.CreateTrial(
            service.CreateTrialRequest(tuner_id="tuner0"), metadata=((TUNER_ID_KEY, "tuner0"),)
        )
        assert trial_from_proto(held.trial).status == Status.RUNNING
        os.environ.update(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(s.port))
        os.environ["KERASTUNER_TUNER_ID"] = "tuner1"
        try:
            client = OracleClient(oracle=None)  # Keras Tuner's own client, as a plain worker has
        finally:
            for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
                os.environ.pop(name)
        answers = 0
        before, started = cpu_seconds(chief.process.pid), time.monotonic()
        while time.monotonic() - started < 6:
            assert client.create_trial("tuner1").status == Status.IDLE
            answers += 1
        share = (cpu_seconds(chief.process.pid) - before) / (time.monotonic() - started)
        print(f"\n[plain keras tuner] idle worker: {answers} IDLE answers in 6 s; chief {share:.1%} of a CPU")
        assert answers <= 8  # held back about a second each, not answered at once
        assert share < 0.05
        channel.close()
