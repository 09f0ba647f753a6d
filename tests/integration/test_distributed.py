"""Chief and workers as real processes talking gRPC on loopback: dead workers, a restarted chief,
an absent chief and failing trials never hang the search or lose a trial."""

from __future__ import annotations

import csv
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.commands import hptune, hptune_env
from tests.support.processes import search

pytestmark = pytest.mark.slow

FAST_LEASES = {
    "distribution": {"leaseSeconds": 6, "heartbeatSeconds": 1, "chiefWaitSeconds": 60, "lingerSeconds": 10}
}
# Trials of a few seconds each, so a test can act while one is running.
SLOW_TRIALS = {"training": {"epochs": 12, "batchSize": 16}}


def leaderboard(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "leaderboard.csv").open()))


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_a_two_worker_search_completes_with_every_trial_once(
    write_spec: Callable[..., Path], tmp_path: Path, algorithm: str
) -> None:
    # tpe: Optuna's sampler behind the same oracle interface, its first trials at random.
    tuner = {"maxTrials": 6, "algorithm": algorithm}
    if algorithm == "tpe":
        tuner["sampler"] = {"startupTrials": 3}
    spec = write_spec({"spec": {"tuner": tuner, **FAST_LEASES}})
    result = hptune("local", str(spec), "--workers", "2", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = leaderboard(tmp_path / "out")
    assert len(rows) == 6
    assert len({row["trial_id"] for row in rows}) == 6
    assert {row["status"] for row in rows} == {"completed"}
    workers = {json.loads(p.read_text())["worker"] for p in (tmp_path / "out/trials").glob("*/trial.json")}
    assert workers == {"tuner0", "tuner1"}
    assert "[tuner0]" in result.stderr and "[tuner1]" in result.stderr and "[chief]" in result.stderr
    assert "search complete" in result.stdout


def test_a_worker_killed_mid_trial_loses_its_trial_to_the_queue(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    # Killed for good: one spare worker waits in the tail for the trial to come back.
    spare = {"distribution": {**FAST_LEASES["distribution"], "spareWorkers": 1}}
    spec = write_spec({"spec": {"tuner": {"maxTrials": 4}, **spare, **SLOW_TRIALS}})
    with search(spec, tmp_path) as s:
        chief = s.chief()
        w0, w1 = s.worker(0), s.worker(1)
        started = chief.wait_for_log(r"trial (\w+) started on tuner1", timeout=120)
        w1.wait_for_log(rf"running trial {started.group(1)} ", timeout=30)
        w1.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        assert chief.wait(timeout=6 + 120) == 0, chief.log[-3000:]
        finished_in = time.monotonic() - killed_at
        assert w0.wait(timeout=30) == 0
    rows = {row["trial_id"]: row for row in leaderboard(tmp_path / "out")}
    assert len(rows) == 4
    lost = started.group(1)
    assert rows[lost]["status"] == "completed"  # retried on tuner0, never lost
    assert f"trial {lost} requeued: worker tuner1 stopped responding" in chief.log
    assert s.runs_per_trial()[lost] == 2
    assert finished_in < 6 + 120


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_a_restarted_chief_resumes_without_rerunning_finished_trials(
    write_spec: Callable[..., Path], tmp_path: Path, algorithm: str
) -> None:
    # tpe: the sampler's study comes back from the snapshot with the trials.
    tuner = {"maxTrials": 5, "algorithm": algorithm}
    spec = write_spec({"spec": {"tuner": tuner, **FAST_LEASES, **SLOW_TRIALS}})
    with search(spec, tmp_path) as s:
        first = s.chief()
        workers = [s.worker(0), s.worker(1)]
        first.wait_for_log(r"trial \w+ completed: ", timeout=120)
        first.kill(signal.SIGKILL)
        first.wait(timeout=10)
        done_before = set(__import__("re").findall(r"trial (\w+) completed: ", first.log))
        # The chief comes back only once a worker has met its absence (a worker in the middle of
        # a trial meets it when the trial ends).
        deadline = time.monotonic() + 120
        while not any("not reachable" in w.log for w in workers):
            assert time.monotonic() < deadline, "no worker met the chief's absence"
            time.sleep(0.1)
        second = s.chief()
        assert second.wait(timeout=180) == 0, second.log[-3000:]
        for worker in workers:
            assert worker.wait(timeout=30) == 0, worker.log[-2000:]
        assert "resumed: " in second.log
    rows = leaderboard(tmp_path / "out")
    assert sorted(row["trial_id"] for row in rows) == sorted({row["trial_id"] for row in rows})
    assert len(rows) == 5 and {row["status"] for row in rows} == {"completed"}
    runs = s.runs_per_trial()
    assert all(runs[trial_id] == 1 for trial_id in done_before), runs
    assert any("not reachable" in w.log for w in workers)


def test_a_changed_spec_on_the_same_output_is_refused(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec({"spec": {"tuner": {"maxTrials": 1}, "training": {"epochs": 1}}})
    assert hptune("run", str(spec)).returncode == 0
    changed = write_spec({"spec": {"tuner": {"maxTrials": 2}, "training": {"epochs": 1}}})
    result = hptune("run", str(changed))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "holds a search started from a different spec" in message
    assert f"To start fresh, delete {tmp_path / 'out'}/state" in message


def test_a_worker_without_a_chief_gives_up_naming_the_address(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec(
        {"spec": {"distribution": {"chiefWaitSeconds": 3, "heartbeatSeconds": 1, "leaseSeconds": 6}}}
    )
    started = time.monotonic()
    result = hptune(
        "run",
        str(spec),
        env=hptune_env(
            KERASTUNER_TUNER_ID="tuner0", KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT="1"
        ),
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 4, "the contract's code for a worker without a chief (its index is kept)"
    assert "error: cannot reach the chief at 127.0.0.1:1" in " ".join(result.stderr.split())
    assert "(spec.distribution.chiefWaitSeconds)" in result.stderr
    assert elapsed < 60  # start-up plus the 3 s wait, never Keras Tuner's hour


def test_trials_that_always_fail_end_the_whole_search_with_the_reason(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "wrong.py").write_text(
        "import keras\n"
        "def build_model(hp):\n"
        "    model = keras.Sequential([keras.Input((64,)),\n"
        "                              keras.layers.Dense(hp.Int('units', 4, 64), activation='relu'),\n"
        "                              keras.layers.Dense(3, activation='softmax')])\n"
        "    model.compile('adam', 'categorical_crossentropy', metrics=['accuracy'])\n"
        "    return model\n"
    )
    spec = write_spec(
        {
            "spec": {
                "model": {
                    "type": "custom",
                    "builder": "wrong:build_model",
                    "hidden": None,
                    "learningRate": None,
                },
                "hyperparameters": [],
                "tuner": {"maxTrials": 10, "maxConsecutiveFailedTrials": 2},
                # A worker still starting when the search fails is told too, within the linger.
                "distribution": {**FAST_LEASES["distribution"], "lingerSeconds": 60},
            }
        }
    )
    with search(spec, tmp_path) as s:
        chief = s.chief()
        workers = [s.worker(0), s.worker(1)]
        assert chief.wait(timeout=120) == 3, "the search failed for good: the Job fails, no retry"
        codes = [w.wait(timeout=60) for w in workers]
        assert codes == [3, 3]
        status = json.loads((tmp_path / "out/search.json").read_text())
        assert status["state"] == "failed" and "2 trials failed in a row" in status["reason"]
        # The Job controller retrying the chief, or a late worker: neither brings the search back.
        again = s.chief()
        assert again.wait(timeout=60) == 3
        late = s.worker(2)
        assert late.wait(timeout=60) == 3
    for ended in (again, late):
        assert "it had already failed before this process started (2 trials failed in a row" in " ".join(
            ended.log.split()
        )
    assert "resumed" not in again.log and "oracle listening" not in again.log
    assert json.loads((tmp_path / "out/search.json").read_text()) == status, "nothing written again"
    assert "2 trials failed in a row (spec.tuner.maxConsecutiveFailedTrials)" in chief.log
    assert "Traceback" in chief.log and "ValueError" in chief.log  # the worker's traceback
    for worker in workers:
        assert "the search failed: 2 trials failed in a row" in " ".join(worker.log.split())
    assert not (tmp_path / "out/best/manifest.json").exists()
    failed = [json.loads(p.read_text()) for p in (tmp_path / "out/trials").glob("*/trial.json")]
    assert failed and all(r["status"] == "failed" and "Traceback" in r["error"] for r in failed)


def test_trials_packed_on_one_gpu_run_as_separate_processes(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    packed = {"distribution": {**FAST_LEASES["distribution"], "trialsPerGpu": 2}}
    spec = write_spec({"spec": {"tuner": {"maxTrials": 4}, **packed}})
    targets = tmp_path / "targets.json"
    result = hptune("local", str(spec), "--workers", "1", "--prometheus-targets", str(targets), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    workers = {json.loads(p.read_text())["worker"] for p in (tmp_path / "out/trials").glob("*/trial.json")}
    assert workers == {"tuner0-0", "tuner0-1"}
    assert "tuner0: 2 trial processes: tuner0-0 on CPU; tuner0-1 on CPU" in result.stderr
    processes = {group["labels"]["process"] for group in json.loads(targets.read_text())}
    assert processes == {"chief", "tuner0-0", "tuner0-1"}
    assert len(leaderboard(tmp_path / "out")) == 4


def test_a_worker_that_outgrows_its_memory_restarts_itself_between_trials(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    # Any growth at all after the first trial restarts the worker: TensorFlow grows every trial.
    restarting = {"distribution": {**FAST_LEASES["distribution"], "restartOnMemoryGrowth": 1e-6}}
    spec = write_spec({"spec": {"tuner": {"maxTrials": 4}, **restarting}})
    with search(spec, tmp_path) as s:
        # One process from start to end (os.execv keeps its pid), both lives in one log.
        chief, worker = s.chief(), s.worker(0)
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
        assert worker.wait(timeout=60) == 0, worker.log[-3000:]
        log = worker.log
    assert re.search(r"tuner0: resident memory grew from \d+ to \d+ MiB over \d+ trials; restarting", log)
    assert "tuner0: restarted (1) with its memory released" in log
    rows = leaderboard(tmp_path / "out")
    assert sorted(row["status"] for row in rows) == ["completed"] * 4
    assert all(count == 1 for count in s.runs_per_trial().values())
    assert len(s.runs_per_trial()) == 4


def test_a_trial_out_of_memory_is_an_outcome_not_the_end_of_the_search(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """Half the space is a model no machine here can hold (a 2**30-unit layer: 256 GiB of weights,
    more than this machine has, so TensorFlow's allocator refuses it). With one failed trial in a
    row enough to end a search, the search still succeeds: each such trial is recorded as failed
    for memory, naming its hyperparameters, run once, and the worker replaces its process before
    its next trial."""
    space = [
        {"name": "hidden1", "type": "choice", "values": [16, 2**30]},
        {"name": "dropout1", "type": "choice", "values": [0.1]},
        {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
    ]
    tuner = {"maxTrials": 4, "maxConsecutiveFailedTrials": 1}
    spec = write_spec({"spec": {"hyperparameters": space, "tuner": tuner, **FAST_LEASES}})
    with search(spec, tmp_path) as s:
        chief, worker = s.chief(), s.worker(0)
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
        assert worker.wait(timeout=60) == 0, worker.log[-3000:]
        log = worker.log
    rows = leaderboard(tmp_path / "out")
    assert sorted(row["status"] for row in rows) == ["completed", "completed", "failed", "failed"]
    for row in rows:
        if row["status"] == "failed":
            assert row["hidden1"] == str(2**30)
            oom = f"out of memory: the model of this trial (hidden1={2**30}, dropout1=0.1, learning_rate="
            assert row["error"].startswith(oom), row["error"]
            record = json.loads((tmp_path / "out" / "trials" / row["trial_id"] / "trial.json").read_text())
            assert "OOM when allocating" in record["error"], record["error"][-2000:]
    assert all(count == 1 for count in s.runs_per_trial().values()), "an out-of-memory trial was retried"
    assert "tuner0: a trial ran out of memory; restarting this worker" in log
    assert "tuner0: restarted (1) with its memory released" in log
    assert json.loads((tmp_path / "out" / "search.json").read_text())["state"] == "succeeded"


def test_a_worker_that_arrives_after_the_search_ended_leaves_at_once(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    lingering = {"distribution": {**FAST_LEASES["distribution"], "lingerSeconds": 1}}
    spec = write_spec({"spec": {"tuner": {"maxTrials": 2}, **lingering}})
    with search(spec, tmp_path) as s:
        chief, first = s.chief(), s.worker(0)
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
        assert first.wait(timeout=60) == 0
        late = s.worker(1)  # chiefWaitSeconds is 60: without search.json it would wait that long
        assert late.wait(timeout=45) == 0, late.log[-3000:]
    assert "tuner1: this search has already completed" in late.log
