"""The chart's default search, its pods run as containers of the project's image: a chief and two
workers writing to S3 (moto on loopback), the `helm test` pod against the live chief, and a real
Prometheus scraping every container's metrics port from a target list.

One search serves the three tests (module-scoped): what a user checks in the bucket and in the
Jobs' outcomes, what `helm test` says, and what Prometheus saw.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.containers import (
    Image,
    assert_nothing_left,
    check_search,
    completed_trials,
    make_release,
    say,
    search_spec,
    store,
)
from tests.support.moto_s3 import S3Server
from tests.support.pod_runner import Pod, Release
from tests.support.prometheus import Prometheus, file_sd_job

pytestmark = pytest.mark.slow

TRIALS = 4
PREFIX = "default-search"


@dataclass
class Search:
    release: Release
    seconds: float
    helm_test: list[Pod]
    prometheus: Prometheus
    started: float
    ended: float


def targets(path: Path, release: Release, chief_port: int) -> None:
    """The file_sd target list a PodMonitor stands for here: every pod's metrics port."""
    groups: list[dict[str, Any]] = [
        {"targets": [f"127.0.0.1:{chief_port}"], "labels": {"role": "chief", "process": "chief"}}
    ]
    for index, port in enumerate(release.worker_metrics_ports):  # type: ignore[attr-defined]
        groups.append(
            {"targets": [f"127.0.0.1:{port}"], "labels": {"role": "worker", "process": f"tuner{index}"}}
        )
    path.write_text(json.dumps(groups))


@pytest.fixture(scope="module")
def search(
    image: Image,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Any:
    root = tmp_path_factory.mktemp("default-search")
    spec = search_spec(PREFIX, {"tuner": {"maxTrials": TRIALS}})
    release = make_release(image, s3, root / "release", spec)
    target_list = root / "targets.json"
    targets(target_list, release, spec["metrics"]["port"])
    prometheus = Prometheus(root, [file_sd_job("hptune", target_list, {"namespace": "tuning"})])
    try:
        started = time.monotonic()
        wall_start = time.time()
        release.install()
        chief = release.job("chief").pods[0]
        release.wait_for_log(chief, r"metrics on http://", timeout=180)
        helm_test = release.helm_test(timeout=180)
        release.wait_for_jobs(timeout=300)
        seconds = time.monotonic() - started
        say(request, f"default search (chief + 2 workers, {TRIALS} trials) to S3: {seconds:.0f} s")
        yield Search(release, seconds, helm_test, prometheus, wall_start, time.time())
    finally:
        prometheus.stop()
        release.close()


def test_the_default_search_completes_on_s3(search: Search, s3: S3Server) -> None:
    release = search.release
    chief, workers = release.job("chief"), release.job("worker")
    assert chief.status == "Complete", release.describe()
    assert chief.exit_codes() == [0], "the chief ran once and exited 0"
    # Each worker exits 0 once no trial is left for it; the Job completes when every index has.
    assert workers.status == "Complete" and workers.reason == "Completed", release.describe()
    assert all(len(workers.attempts(k)) == 1 for k in (0, 1)), "no worker was restarted"
    assert workers.exit_codes() == [0, 0], "each worker exited 0"
    rows = check_search(store(s3, PREFIX), TRIALS)
    assert sorted(completed_trials(chief.pods[0].log)) == sorted(r["trial_id"] for r in rows)
    ran = {pod.index: pod.log.count("running trial") for pod in workers.pods}
    assert sum(ran.values()) == TRIALS, f"trials run per worker index: {ran}"
    for pod in workers.pods:  # each reached the chief through its Service's name
        assert re.search(rf"tuner{pod.index}: (running trial|the search is over)", pod.log), pod.log[-2000:]
    # The validation hook ran before anything else, in the same image, and passed.
    (hook,) = release.hook_jobs
    assert hook.status == "Complete" and hook.exit_codes() == [0]
    assert "valid TuningJob 'digits-containers'" in hook.pods[0].log
    assert_nothing_left(release)


def test_helm_test_passes_against_the_live_chief(search: Search) -> None:
    (pod,) = search.helm_test
    assert pod.exit_code == 0, pod.log
    assert "ok: hptune_search_info{" in pod.log and 'name="digits-containers"' in pod.log


def test_prometheus_scraped_every_container(search: Search) -> None:
    prometheus = search.prometheus
    window = f"{int(search.ended - search.started) + 30}s"
    up = {
        s["metric"]["process"]: float(s["value"][1])
        for s in prometheus.query(f'max_over_time(up{{job="hptune"}}[{window}])', at=search.ended)
    }
    assert up == {"chief": 1.0, "tuner0": 1.0, "tuner1": 1.0}, f"targets ever up: {up}"
    info = prometheus.query(f'max_over_time(hptune_search_info{{job="hptune"}}[{window}])', at=search.ended)
    assert {s["metric"]["name"] for s in info} == {"digits-containers"}
    assert {s["metric"]["pod"] for s in info} == {"chief"}
    completed = prometheus.query(
        f'max_over_time(hptune_trials_total{{status="completed"}}[{window}])', at=search.ended
    )
    assert completed and float(completed[0]["value"][1]) >= 1, completed
    epochs = prometheus.query(f"max_over_time(hptune_worker_epochs_total[{window}])", at=search.ended)
    assert {s["metric"]["pod"] for s in epochs} == {"tuner0", "tuner1"}, epochs
