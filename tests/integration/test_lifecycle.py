"""A search's life as the Job controller sees it: an ended search is never run again, a stopped
chief keeps what is done, deadlines end a search that cannot start, workers leave when their chief
is gone for good, and nothing is written outside HOME, TMPDIR and the output (a pod's working
directory and root are read-only)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from job.output.layout import OWNER_KEY
from job.output.manifest import verify_manifest
from job.storage import Store
from tests.support.commands import hptune, hptune_env
from tests.support.mounts import tmpfs
from tests.support.processes import search
from tests.support.specs import WRONG_MODEL

pytestmark = pytest.mark.slow

LEASES = {
    "distribution": {"leaseSeconds": 6, "heartbeatSeconds": 1, "chiefWaitSeconds": 60, "lingerSeconds": 10}
}
SLOW_TRIALS = {"training": {"epochs": 12, "batchSize": 16}}


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write to, root included."""
    with tmpfs(tmp_path / "readonly", 2**20, read_only=True) as path:
        yield path


def test_a_completed_search_is_not_run_again(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": {"tuner": {"maxTrials": 1}, "training": {"epochs": 1}}})
    assert hptune("run", str(spec)).returncode == 0
    before = (tmp_path / "out/search.json").read_text()
    again = hptune("run", str(spec))
    assert again.returncode == 0, again.stderr
    assert "the search had already completed" in again.stdout
    assert "running trial" not in again.stderr
    assert (tmp_path / "out/search.json").read_text() == before


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_the_end_of_a_search_from_a_read_only_working_directory(
    outcome: str, read_only_dir: Path, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    changes: dict[str, object] = {"tuner": {"maxTrials": 2}, "training": {"epochs": 1}}
    if outcome == "failed":  # every trial fails in training: the end of a failed search
        (tmp_path / "wrong.py").write_text(WRONG_MODEL)
        changes["model"] = {
            "type": "custom",
            "builder": "wrong:build_model",
            "hidden": None,
            "learningRate": None,
        }
        changes["hyperparameters"] = []
        changes["tuner"] = {"maxTrials": 4, "maxConsecutiveFailedTrials": 2}
    spec = write_spec({"spec": changes})
    home = tmp_path / "home"
    home.mkdir()
    result = hptune("run", str(spec), env=hptune_env(HOME=str(home), TMPDIR=str(tmp_path)), cwd=read_only_dir)
    output = result.stdout + result.stderr
    # (a failed trial's traceback is data, in the log; the process itself raises nothing)
    for error in ("Read-only file system", "OSError", "PermissionError"):
        assert error not in output, output[-3000:]
    status = json.loads((tmp_path / "out/search.json").read_text())
    if outcome == "succeeded":
        assert result.returncode == 0, output[-3000:]
        assert status["state"] == "succeeded"
    else:
        assert result.returncode == 3, output[-3000:]
        assert status["state"] == "failed"
        assert (tmp_path / "out/leaderboard.csv").exists()


def test_a_chief_stopped_by_sigterm_keeps_what_is_done(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec({"spec": {"tuner": {"maxTrials": 6}, **LEASES, **SLOW_TRIALS}})
    with search(spec, tmp_path) as s:
        chief = s.chief()
        s.worker(0)
        chief.wait_for_log(r"trial \w+ completed: ", timeout=120)
        stopped_at = time.monotonic()
        chief.kill(signal.SIGTERM)  # what the kubelet sends at activeDeadlineSeconds
        assert chief.wait(timeout=60) == 130, chief.log[-3000:]
        assert time.monotonic() - stopped_at < 60, "within the chief's terminationGracePeriodSeconds"
    out = tmp_path / "out"
    assert json.loads((out / "search.json").read_text())["state"] == "stopped"
    assert verify_manifest(Store(str(out))) == [], "best/ holds the best trial completed so far"
    assert (out / "leaderboard.csv").exists()
    assert "writing best/ from the trials completed so far" in chief.log
    assert "Traceback" not in chief.log


def test_a_chief_that_no_worker_reaches_fails_at_its_startup_deadline(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec({"spec": {"distribution": {**LEASES["distribution"], "startupTimeoutSeconds": 4}}})
    with search(spec, tmp_path) as s:
        chief = s.chief()
        assert chief.wait(timeout=90) == 3, chief.log[-3000:]
    assert "no worker reached the chief within 4 s (spec.distribution.startupTimeoutSeconds)" in chief.log
    assert json.loads((tmp_path / "out/search.json").read_text())["state"] == "failed"


def test_a_worker_whose_chief_is_gone_for_good_leaves(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec(
        {
            "spec": {
                "distribution": {
                    "chiefWaitSeconds": 30,
                    "chiefGoneSeconds": 5,
                    "heartbeatSeconds": 1,
                    "leaseSeconds": 6,
                }
            }
        }
    )
    out = tmp_path / "out"
    (out / "state").mkdir(parents=True)
    renewed = time.time() - 600  # a chief Job that died ten minutes ago
    record = {
        "holder": "job tuning/hptune-chief",
        "token": "t",
        "host": "gone",
        "pid": 1,
        "started": renewed,
        "renewed": renewed,
        "lease_seconds": 6,
    }
    (out / OWNER_KEY).write_text(json.dumps(record))
    result = hptune(
        "run",
        str(spec),
        env=hptune_env(
            KERASTUNER_TUNER_ID="tuner0", KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT="1"
        ),
        timeout=120,
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "no chief has renewed its lease" in " ".join(result.stderr.split())
    assert "spec.distribution.chiefGoneSeconds" in result.stderr


def _worker_pid(tuner_id: str, oracle_port: str) -> int | None:
    """The pid of the process started as worker `tuner_id` of the chief on `oracle_port`."""
    wanted = {f"KERASTUNER_TUNER_ID={tuner_id}".encode(), f"KERASTUNER_ORACLE_PORT={oracle_port}".encode()}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = set(environ.read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= variables:
            return int(environ.parent.name)
    return None


def test_hptune_local_starts_a_worker_that_died_again_so_no_trial_is_left_behind(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """No spare workers: the first worker with nothing left to run is released. The other one is
    killed mid-trial; `hptune local` starts it again (as the Job restarts a pod), and the new
    process runs the trial its predecessor lost: the search completes."""
    # Trials of a few seconds: the last one still runs when the other worker has been released.
    spec = write_spec(
        {"spec": {"tuner": {"maxTrials": 3}, "training": {"epochs": 60, "batchSize": 16}, **LEASES}}
    )
    log = tmp_path / "local.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "job", "local", str(spec), "--workers", "2"],
            env=hptune_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        released = _wait_for(log, r"\[chief\] .* (tuner\d) released: no trial left", process)
        victim = "tuner1" if released.group(1) == "tuner0" else "tuner0"
        port = _wait_for(log, r"chief on 127\.0\.0\.1:(\d+)", process).group(1)
        pid = _worker_pid(victim, port)
        assert pid is not None, f"no process of {victim}"
        os.kill(pid, signal.SIGKILL)
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert f"{victim} exited with status -9; starting it again (1 of 3), as the Job would" in text
    # The new process, under the same id, is handed the trial its predecessor was running (or
    # takes it from the queue, if the lease ran out first).
    again = rf"trial \w+ (handed again to {victim} \(it restarted\)|requeued: worker {victim} stopped)"
    assert re.search(again, text), text[-3000:]
    board = (tmp_path / "out" / "leaderboard.csv").read_text().splitlines()[1:]
    assert len(board) == 3 and all(",completed," in row for row in board), board


def _wait_for(
    log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float = 240
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the log:\n{log.read_text(errors='replace')[-3000:]}")
