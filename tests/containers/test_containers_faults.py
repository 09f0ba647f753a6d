"""What the chart's Jobs do with hptune's exit codes, played out on containers: a worker killed
mid-trial, a chief killed mid-search, a search that fails for good, workers whose chief is late.

Each test renders the chart for its own search (digits, short leases), runs its pods through the
harness (pod_runner.Release: the rendered podFailurePolicy, backoffLimit, backoffLimitPerIndex and
successPolicy decide what is restarted), injects its fault with `docker kill` or by holding the
chief back, then checks what a user would: the trials in the bucket, best/ against its manifest,
each Job's outcome and which containers ran again, and that no container is left running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.support.containers import (
    FINISH,
    assert_nothing_left,
    check_search,
    completed_trials,
    failing_search,
    leaderboard,
    mount_wrong_model,
    say,
    search_spec,
    store,
)
from tests.support.moto_s3 import S3Server
from tests.support.pod_runner import Release

pytestmark = pytest.mark.slow

# Trials of a few seconds on the digits data, long enough to be killed in the middle.
SLOW = {"training": {"epochs": 40, "batchSize": 16}}
START = 180.0  # a container's first log line of interest: TensorFlow's import on two busy cores

Deploy = Callable[..., Release]


def chief_log(release: Release) -> str:
    return "".join(release.logs(p) if p.running else p.log for p in release.job("chief").pods)


def test_a_worker_killed_mid_trial_is_restarted_under_its_index(
    deploy: Deploy,
    s3: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    prefix = "worker-killed"
    release = deploy(search_spec(prefix, {"tuner": {"maxTrials": 4}, **SLOW}))
    release.install()
    workers = release.job("worker")
    victim = workers.attempts(1)[0]
    trial = release.wait_for_log(victim, r"tuner1: running trial (\w+)", START)[1]
    release.wait_for_log(victim, rf"tuner1: trial {trial} epoch 2 done", START)  # 38 of 40 to go
    release.kill(victim)  # SIGKILL: exit code 137, as the kubelet reports an OOM kill or a crash
    assert f"trial {trial} completed" not in chief_log(release), "the trial ended before the kill"
    release.wait_for_jobs(FINISH)

    assert victim.exit_code == 137
    assert workers.status == "Complete", release.describe()
    assert workers.failures == {1: 1}, "one counted failure, within backoffLimitPerIndex"
    assert len(workers.attempts(1)) == 2 and len(workers.attempts(0)) == 1, release.describe()
    assert "tuner1" in workers.attempts(1)[1].log, "the new pod runs as tuner1 again"
    assert release.job("chief").exit_codes() == [0]
    rows = check_search(store(s3, prefix), 4)
    assert completed_trials(chief_log(release)).count(trial) == 1
    assert trial in {row["trial_id"] for row in rows}
    log = chief_log(release)
    assert re.search(rf"trial {trial} (handed again to tuner1|requeued)", log), log[-3000:]
    assert_nothing_left(release)
    say(request, f"worker killed mid-trial, restarted as tuner1: {time.monotonic() - started:.0f} s")


def test_a_killed_chief_is_restarted_and_resumes(
    deploy: Deploy,
    s3: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    prefix = "chief-killed"
    release = deploy(search_spec(prefix, {"tuner": {"maxTrials": 5}, **SLOW}))
    release.install()
    chief = release.job("chief")
    first = chief.pods[0]
    release.wait_for_log(first, r"trial \w+ completed: ", START)
    release.kill(first)
    done_before = completed_trials(first.log or release.logs(first))
    assert done_before, "a trial had completed before the chief was killed"
    release.wait_for_jobs(FINISH)

    assert chief.status == "Complete", release.describe()
    assert chief.exit_codes() == [137, 0], "killed once (a counted failure), then exited 0"
    assert chief.failures == {0: 1}
    second = chief.pods[1].log
    assert re.search(r"resumed: \d+ trials recorded \(\d+ completed\)", second), second[-3000:]
    handed = re.findall(r"trial (\w+) (?:started on|handed again to) ", second)
    assert not set(handed) & set(done_before), f"completed trials {done_before} handed out again: {handed}"
    worker_logs = "".join(p.log for p in release.job("worker").pods)
    for trial in done_before:
        assert len(re.findall(rf"running trial {trial} ", worker_logs)) == 1, f"trial {trial} ran twice"
    assert release.job("worker").status == "Complete"
    assert all(len(release.job("worker").attempts(k)) == 1 for k in (0, 1)), "workers waited, not restarted"
    check_search(store(s3, prefix), 5)
    assert_nothing_left(release)
    say(request, f"chief killed and restarted, resumed: {time.monotonic() - started:.0f} s")


def test_a_search_that_fails_for_good_is_not_brought_back(
    deploy: Deploy,
    s3: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    prefix = "failed-for-good"
    spec, values = failing_search(prefix)
    release = deploy(spec, **values)
    mount_wrong_model(release)
    release.install()
    release.wait_for_jobs(FINISH)

    chief, workers = release.job("chief"), release.job("worker")
    assert chief.exit_codes() == [3], "the chief exits 3 once and is not restarted"
    assert chief.status == "Failed" and chief.reason.startswith("PodFailurePolicy: exit code 3"), chief.reason
    assert workers.status == "Failed" and "exit code 3" in workers.reason, release.describe()
    ended = [p for p in workers.pods if not p.terminated]
    assert ended and {p.exit_code for p in ended} == {3}, release.describe()
    assert all(len(workers.attempts(k)) == 1 for k in (0, 1)), "no worker restarted"
    log = chief.pods[0].log
    assert "2 trials failed in a row (spec.tuner.maxConsecutiveFailedTrials)" in log, log[-3000:]
    rows = check_search(store(s3, prefix), len(leaderboard(store(s3, prefix))), succeeded=False)
    statuses = [row["status"] for row in rows]
    assert statuses.count("failed") >= 2 and "completed" not in statuses, statuses

    # A chief started again on it (the Job re-created, a retry by hand) leaves at once with 3.
    again = release.start_pod(chief)
    release.wait(lambda: not again.running, START, "the chief started again")
    assert again.exit_code == 3, again.log[-3000:]
    assert "started on" not in again.log, "the failed search was brought back"
    assert len(leaderboard(store(s3, prefix))) == len(rows)
    assert_nothing_left(release)
    say(
        request,
        f"search failed for good (exit 3, not restarted; trials {', '.join(statuses)}): "
        f"{time.monotonic() - started:.0f} s",
    )


def test_workers_outlive_a_late_chief_without_using_up_their_index(
    deploy: Deploy,
    s3: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    prefix = "late-chief"
    spec = search_spec(prefix, {"tuner": {"maxTrials": 3}, "distribution": {"chiefWaitSeconds": 4}})
    # No counted failure allowed at all: only the Ignore rule for exit code 4 keeps them going.
    release = deploy(spec, worker={"backoffLimitPerIndex": 0})
    release.install(hold=["chief"])
    workers = release.job("worker")
    release.wait(
        lambda: all(4 in workers.exit_codes(k) for k in (0, 1)),
        START,
        "every worker to give up on the absent chief (exit 4)",
    )
    assert workers.status == "Running", release.describe()
    release.start("chief")
    release.wait_for_jobs(FINISH)

    assert workers.status == "Complete", release.describe()
    assert workers.failures == {}, "exit code 4 is not counted against the index"
    for k in (0, 1):
        codes = workers.exit_codes(k)
        assert codes[0] == 4 and len(codes) >= 2, codes
        first = workers.attempts(k)[0].log
        assert "cannot reach the chief at hptune-chief:" in first, first[-2000:]
        assert "(spec.distribution.chiefWaitSeconds)" in first
    assert release.job("chief").exit_codes() == [0]
    check_search(store(s3, prefix), 3)
    assert_nothing_left(release)
    say(
        request,
        f"chief late past chiefWaitSeconds, workers restarted on exit 4: {time.monotonic() - started:.0f} s",
    )
