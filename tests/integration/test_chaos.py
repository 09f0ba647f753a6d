"""Chaos on loopback: workers SIGKILLed or SIGSTOPped, the chief SIGKILLed and started again, the
object store stopped and started again, each at a moment drawn from a fixed seed.

Every run must end with every trial accounted for once, each trial's record and model the ones
the chief counted, best/ intact against its manifest, and no process left behind. A failure names
the seed and every choice made from it (see `chaos.Plan`); rerun it by its test id, which holds
the seed.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.chaos import LEASE_SECONDS, RETRY_SECONDS, START_TIMEOUT, Plan, chaos_run, nth_match
from tests.support.moto_s3 import BUCKET, S3Server

pytestmark = pytest.mark.slow

RUNNING = r": running trial (\w+) \("
# A kill "mid-trial" lands when the trial has logged one of these epochs: with TRAINING's 10
# epochs, at least 7 are still to run, so the kill cannot come after the trial ended.
MID_TRIAL_EPOCHS = [1, 2, 3]


def epoch_done(trial_id: str, epoch: int | str) -> str:
    return rf": trial {trial_id} epoch {epoch} done: "


def upload_of(prefix: str, trial_id: str) -> str:
    """The request path of a trial's model upload (to trials/<id>/, or staged below it)."""
    return rf"^/{BUCKET}/{prefix}/trials/{trial_id}/(\S+/)?model\.keras$"


# -- workers killed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [4, 5, 6, 12, 16])
def test_a_worker_killed_at_a_random_moment_costs_no_trial(seed: int, s3: S3Server, tmp_path: Path) -> None:
    """Killed for good, the other worker takes its trial over once the lease runs out; killed and
    started again under the same index (as Kubernetes restarts a pod), with no other worker to
    finish the search, the new process takes it over."""
    plan = Plan(seed, "worker SIGKILL")
    restart = plan.choose("restart", [False, False, True])
    index = 0 if restart else plan.choose("victim", [0, 1])
    moment = plan.choose("moment", ["mid-trial", "mid-upload", "just after its trial ended"])
    delay = plan.uniform("delay", 0.0, 1.5)
    epoch = plan.choose("epoch", MID_TRIAL_EPOCHS)
    with chaos_run(plan, tmp_path, trials=3, s3=s3) as run:
        run.start(workers=1 if restart else 2)
        victim = run.workers[index]
        trial_id = nth_match(victim, RUNNING, 1, START_TIMEOUT).group(1)
        plan.note("trial", trial_id)
        if moment == "mid-trial":
            victim.wait_for_log(epoch_done(trial_id, epoch), timeout=120)
        elif moment == "mid-upload":
            # The upload of the trial's model is cut off and the store stays down for a while:
            # the worker dies while it retries.
            s3.fail("PUT", upload_of(run.prefix, trial_id), down_seconds=2.5)
            victim.wait_for_log(rf"write \S+/trials/{trial_id}/\S*model\.keras failed", timeout=120)
        else:
            run.wait_for_chief(rf"trial {trial_id} completed: ")
            time.sleep(delay / 10)
        victim.kill(signal.SIGKILL)
        victim.wait(timeout=10)
        codes = {proc.name: 0 for proc in run.search.procs} | {victim.name: -signal.SIGKILL}
        if restart:
            codes[run.restart_worker(index).name] = 0
        run.finish(codes)
        run.assert_all_gone()
        rows = {row["trial_id"]: row for row in run.assert_results()}
        if moment == "just after its trial ended":
            assert run.runs_per_trial()[trial_id] == 1, "a counted trial ran again"
        else:
            # The victim's trial went back to the queue and completed elsewhere (or on its successor).
            assert rows[trial_id]["status"] == "completed"
            requeued = f"trial {trial_id} requeued: worker {victim.name} stopped responding"
            assert requeued in run.chief_log(), run.chief_log()[-3000:]
            assert run.runs_per_trial()[trial_id] == 2
        if moment == "mid-upload":
            assert any(re.match(upload_of(run.prefix, trial_id), path) for _, path in s3.faults())


def test_a_worker_killed_after_the_others_were_released_is_replaced_and_no_trial_is_lost(
    tmp_path: Path,
) -> None:
    """No spare workers: once no trial is left to hand out, an idle worker is released at once
    (its GPU freed). The last busy worker then dies mid-trial: its trial comes back to the queue
    and the worker the Job starts again in its place runs it; every trial ends once."""
    plan = Plan(0, "worker SIGKILL in the tail")
    with chaos_run(plan, tmp_path, trials=3, spares=0) as run:
        run.start(workers=2)
        released = run.wait_for_chief(r"(tuner\d) released: no trial left to hand out").group(1)
        victim = next(w for w in run.workers if w.name != released)
        trial_id = re.findall(r"trial (\w+) started on " + victim.name, run.chief.log)[-1]
        # Killed after an epoch that ends once the other worker was released (of TRAINING's 10,
        # its trial has just started then: it began when the other worker's first trial ended).
        done = len(re.findall(epoch_done(trial_id, r"\d+"), victim.log))
        victim.wait_for_log(epoch_done(trial_id, done + 1), timeout=120)
        victim.kill(signal.SIGKILL)
        victim.wait(timeout=10)
        index = int(victim.name.removeprefix("tuner"))
        successor = run.restart_worker(index)
        run.finish({"chief": 0, released: 0, victim.name: -signal.SIGKILL, successor.name: 0})
        run.assert_all_gone()
        rows = {row["trial_id"]: row for row in run.assert_results()}
        assert rows[trial_id]["status"] == "completed"
        assert f"trial {trial_id} requeued: worker {victim.name} stopped responding" in run.chief_log()
        assert run.runs_per_trial()[trial_id] == 2, "run by the victim, then by its successor"


# -- the chief killed and started again -------------------------------------------------------------


@pytest.mark.parametrize("seed", [2, 7, 24])
def test_a_chief_killed_and_started_again_resumes_the_search(seed: int, tmp_path: Path) -> None:
    """The chief comes back on the same port and output and resumes from its snapshot: trials it
    had counted are never run again, trials in flight are finished or requeued, and every worker
    is told the search is over, even one that was waiting when the old chief died."""
    plan = Plan(seed, "chief SIGKILL")
    moment = plan.choose(
        "moment",
        ["just after a trial started", "mid-trial", "just after a trial ended", "after the last trial"],
    )
    nth = plan.choose("nth", [1, 2])
    delay = plan.uniform("delay", 0.0, 1.5)
    down = plan.uniform("down", 0.5, 3.0)
    with chaos_run(plan, tmp_path, trials=3) as run:
        run.start(workers=2)
        if moment == "just after a trial started":
            run.wait_for_chief(r"trial \w+ started on tuner\d", count=nth)
            time.sleep(delay / 10)
        elif moment == "mid-trial":
            started = run.wait_for_chief(r"trial (\w+) started on (tuner\d)", count=nth)
            worker = next(w for w in run.workers if w.name == started.group(2))
            worker.wait_for_log(epoch_done(started.group(1), 1 + nth), timeout=120)
        elif moment == "just after a trial ended":
            run.wait_for_chief(r"trial \w+ completed: ", count=nth)
            time.sleep(delay / 10)
        else:
            run.wait_for_chief(rf"{run.trials} of {run.trials} done")
        first = run.chief
        first.kill(signal.SIGKILL)
        first.wait(timeout=10)
        counted = set(re.findall(r"trial (\w+) completed: ", first.log))
        plan.note("completed before the kill", sorted(counted))
        time.sleep(down)
        second = run.start_chief()
        run.finish({"chief": -signal.SIGKILL, second.name: 0, "tuner0": 0, "tuner1": 0})
        run.assert_all_gone()
        run.assert_results()
        if counted:
            assert "resumed: " in second.log
        runs = run.runs_per_trial()
        assert all(runs[trial_id] == 1 for trial_id in counted), f"a finished trial ran again: {runs}"


# -- the object store stopped and started again ------------------------------------------------------


@pytest.mark.parametrize("seed", [2, 20])
def test_a_storage_outage_within_the_retry_budget_is_ridden_out(
    seed: int, s3: S3Server, tmp_path: Path
) -> None:
    """The store goes down when a chosen request arrives (or at a chosen moment) and comes back
    within spec.output.retrySeconds: every process retries, nothing is lost or half-written."""
    plan = Plan(seed, "S3 outage")
    cut = plan.choose(
        "cut",
        [
            r"state/snapshot\.json",
            r"trials/\w+/trial\.json",
            r"trials/\w+/model\.keras",
            r"leaderboard\.csv",
            r"best/model\.keras",
            "a random moment",
        ],
    )
    down = plan.uniform("down", 2.0, 6.0)
    nth = plan.choose("nth", [1, 2])
    assert down < RETRY_SECONDS / 2
    with chaos_run(plan, tmp_path, trials=3, s3=s3) as run:
        if cut != "a random moment":
            s3.fail("PUT", rf"^/{BUCKET}/{run.prefix}/{cut}$", down_seconds=down)
        run.start(workers=2)
        if cut == "a random moment":
            run.wait_for_chief(r"trial \w+ completed: ", count=nth)
            s3.stop()
            time.sleep(down)
            s3.start()
        run.finish({"chief": 0, "tuner0": 0, "tuner1": 0})
        run.assert_all_gone()
        run.assert_results()
        if cut != "a random moment":
            faults = [path for method, path in s3.faults() if f"/{run.prefix}/" in path]
            assert len(faults) == 1 and re.fullmatch(rf"/{BUCKET}/{run.prefix}/{cut}", faults[0]), faults
        logs = "\n".join(proc.log for proc in run.search.procs)
        assert re.search(r"(write|read|list|delete|stat) s3://\S+ failed \(.*\); retrying in", logs), (
            "no process met the outage"
        )


# -- a worker stopped (alive but silent) ------------------------------------------------------------


@pytest.mark.parametrize("seed", [5, 7])
def test_a_silent_worker_loses_its_trial_and_its_late_result_is_ignored(
    seed: int, s3: S3Server, tmp_path: Path
) -> None:
    """SIGSTOP mid-training or mid-upload: the lease runs out, another worker redoes the trial;
    SIGCONT once that result is counted: whatever the stopped worker sends or writes then is stale
    and must change nothing. Told the search is over, it exits 0."""
    plan = Plan(seed, "worker SIGSTOP")
    index = plan.choose("victim", [0, 1])
    moment = plan.choose("moment", ["mid-training", "mid-upload"])
    epoch = plan.choose("epoch", MID_TRIAL_EPOCHS)
    # Five trials: the search still runs when the redone trial ends, so the chief is there to
    # answer the woken worker.
    with chaos_run(plan, tmp_path, trials=5, s3=s3) as run:
        run.start(workers=2)
        victim = run.workers[index]
        trial_id = nth_match(victim, RUNNING, 1, START_TIMEOUT).group(1)
        plan.note("trial", trial_id)
        if moment == "mid-training":
            victim.wait_for_log(epoch_done(trial_id, epoch), timeout=120)
        else:
            s3.fail("PUT", upload_of(run.prefix, trial_id), down_seconds=2)
            victim.wait_for_log(rf"write \S+/trials/{trial_id}/\S*model\.keras failed", timeout=120)
        victim.kill(signal.SIGSTOP)
        stopped = time.monotonic()
        run.wait_for_chief(rf"trial {trial_id} requeued: worker {victim.name} stopped responding", timeout=60)
        assert time.monotonic() - stopped < LEASE_SECONDS + 5
        run.wait_for_chief(rf"trial {trial_id} completed: ", timeout=120)
        victim.kill(signal.SIGCONT)
        run.finish({"chief": 0, "tuner0": 0, "tuner1": 0})
        run.assert_all_gone()
        rows = {row["trial_id"]: row for row in run.assert_results()}
        assert rows[trial_id]["status"] == "completed"
        assert run.runs_per_trial()[trial_id] == 2
        assert "the search is over" in victim.log
        if moment == "mid-training":
            discarded = f"trial {trial_id} was taken back by the chief (lease lost); result discarded"
            assert discarded in victim.log
