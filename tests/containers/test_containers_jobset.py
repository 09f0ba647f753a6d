"""workload: jobset, its pods run as containers: the JobSet's Jobs as the JobSet controller would
create them, the workers started after the chief is up and reaching it by its pod's DNS name in the
JobSet's Service, the set complete when the chief succeeds (workers still running stopped), and a
search that fails for good failing the whole set at once (pod_runner.Release plays the JobSet's
success and failure policies; docs/containers.md).
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

Deploy = Callable[..., Release]
JOBSET = {"workload": "jobset"}


def test_a_jobset_search_completes_with_its_chief_and_stops_its_workers(
    deploy: Deploy,
    s3: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    prefix = "jobset-search"
    release = deploy(search_spec(prefix, {"tuner": {"maxTrials": 3}}), **JOBSET)
    assert release.jobset is not None and sorted(release.jobs) == ["hptune-chief-0", "hptune-worker-0"]
    release.install()
    workers = release.job("worker")
    assert workers.status == "Pending", "workers wait for the chief (dependsOn Ready)"
    release.wait_for_jobs(FINISH)

    assert release.jobset_status == "Completed", release.describe()
    chief = release.job("chief")
    assert chief.status == "Complete" and chief.exit_codes() == [0], release.describe()
    assert workers.status in ("Complete", "Deleted"), release.describe()
    assert all(len(workers.attempts(k)) == 1 for k in (0, 1)), "no worker restarted"
    for pod in workers.pods:  # each reached the chief at hptune-chief-0-0.hptune
        assert re.search(rf"tuner{pod.index}: (running trial|the search is over)", pod.log), pod.log[-2000:]
    check_search(store(s3, prefix), 3)
    assert_nothing_left(release)
    say(request, f"JobSet search (chief + 2 workers, 3 trials): {time.monotonic() - started:.0f} s")


def test_a_jobset_whose_search_fails_for_good_fails_at_once(
    deploy: Deploy,
    s3: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    prefix = "jobset-failed"
    spec, values = failing_search(prefix)
    release = deploy(spec, **values, **JOBSET)
    mount_wrong_model(release)
    release.install()
    release.wait_for_jobs(FINISH)

    assert release.jobset_status == "Failed", release.describe()
    assert release.jobset_reason.startswith("rule searchEnded: "), release.jobset_reason
    # The first exit 3 (a worker's or the chief's) fails the set, which deletes the other Jobs: a
    # chief deleted while writing the failed search's end ignores SIGTERM and finishes it.
    chief = release.job("chief")
    assert chief.exit_codes() == [3], release.describe()
    assert chief.reason.startswith("PodFailurePolicy: exit code 3") or chief.status == "Deleted"
    workers = release.job("worker")
    assert all(len(workers.attempts(k)) <= 1 for k in (0, 1)), "nothing restarted"
    rows = check_search(store(s3, prefix), len(leaderboard(store(s3, prefix))), succeeded=False)
    assert "completed" not in [row["status"] for row in rows]
    assert_nothing_left(release)
    say(request, f"JobSet search failed for good (FailJobSet on exit 3): {time.monotonic() - started:.0f} s")
