"""The exporter, the CLI's progress and the Pushgateway summary, in process, over real HTTP; and
the dashboard JSON against its generator."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from job.observability.metrics import (
    SearchMetrics,
    WorkerMetrics,
    progress_from_text,
    push_summary,
    read_progress,
)
from job.supervision.processes import free_port
from scripts import dashboard
from tests.support.prometheus import Pushgateway, promtool_check, pushed_values
from tests.support.specs import REPO

NAME = "digits-test"


def scenario() -> tuple[CollectorRegistry, SearchMetrics]:
    """A chief after 2 completed trials and 1 failed one, with tuner0 in epoch 2 of the next."""
    registry = CollectorRegistry()
    search = SearchMetrics(registry, NAME, "random", "val_accuracy", "max", 10, "0.1.0")
    search.workers_up.labels("tuner0").set(1)
    search.trial_ended("completed", 3.5)
    search.best.set(0.875)
    search.trial_ended("completed", 12.0)
    search.trial_ended("failed", 0.5)
    search.running.set(1)
    search.report_epoch("tuner0", 2, {"loss": 0.25, "val_accuracy": 0.8125})
    return registry, search


@pytest.fixture
def served() -> Iterator[tuple[CollectorRegistry, SearchMetrics, str]]:
    """The scenario's registry behind a real HTTP server on a free port."""
    registry, search = scenario()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield registry, search, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode("utf-8")


def test_the_exporter_serves_the_scenario(served: tuple[CollectorRegistry, SearchMetrics, str]) -> None:
    _, _, url = served
    lines = fetch(url).splitlines()
    expected = [
        "# TYPE hptune_trials_total counter",
        'hptune_trials_total{status="completed"} 2.0',
        'hptune_trials_total{status="pruned"} 0.0',
        'hptune_trials_total{status="failed"} 1.0',
        'hptune_trials_total{status="retried"} 0.0',
        'hptune_trials_total{status="requeued"} 0.0',
        'hptune_search_info{algorithm="random",direction="max",name="digits-test",'
        'objective="val_accuracy",version="0.1.0"} 1.0',
        "hptune_max_trials 10.0",
        "hptune_trials_running 1.0",
        "hptune_pruned_epochs_total 0.0",
        "hptune_best_objective 0.875",
        "# TYPE hptune_trial_duration_seconds histogram",
        'hptune_trial_duration_seconds_bucket{le="1.0"} 1.0',
        'hptune_trial_duration_seconds_bucket{le="2.0"} 1.0',
        'hptune_trial_duration_seconds_bucket{le="5.0"} 2.0',
        'hptune_trial_duration_seconds_bucket{le="10.0"} 2.0',
        'hptune_trial_duration_seconds_bucket{le="20.0"} 3.0',
        'hptune_trial_duration_seconds_bucket{le="+Inf"} 3.0',
        "hptune_trial_duration_seconds_count 3.0",
        "hptune_trial_duration_seconds_sum 16.0",
        'hptune_worker_up{worker="tuner0"} 1.0',
        'hptune_trial_epoch{worker="tuner0"} 2.0',
        'hptune_epoch_metric{metric="loss",worker="tuner0"} 0.25',
        'hptune_epoch_metric{metric="val_accuracy",worker="tuner0"} 0.8125',
        "hptune_search_finished 0.0",
        "hptune_search_failed 0.0",
        "hptune_last_success_timestamp_seconds 0.0",
    ]
    missing = [line for line in expected if line not in lines]
    assert not missing, "\n".join(missing)
    trials = [line for line in lines if line.startswith("hptune_trials_total")]
    assert len(trials) == 5  # one per outcome, zeros included: rate() sees the first trial end
    started = next(line for line in lines if line.startswith("hptune_search_start_timestamp_seconds "))
    assert abs(float(started.split()[1]) - time.time()) < 60


def test_the_progress_line_reads_what_the_exporter_serves(
    served: tuple[CollectorRegistry, SearchMetrics, str],
) -> None:
    registry, search, url = served
    progress = progress_from_text(fetch(url))
    assert (progress.name, progress.objective) == (NAME, "val_accuracy")
    assert (progress.done, progress.failed, progress.max_trials) == (2, 1, 10)
    assert (progress.running, progress.workers_up, progress.best) == (1, 1, 0.875)
    assert progress.epochs == {"tuner0": 2}
    assert not progress.finished
    assert 0 <= progress.elapsed < 60
    # `hptune run` reads its own registry, `hptune local` the chief's /metrics: the same numbers.
    assert read_progress(registry.collect()) == progress

    search.end(failed=False)
    ended = progress_from_text(fetch(url))
    assert ended.finished and ended.running == 0 and ended.done == 2


def test_no_best_score_before_the_first_completed_trial() -> None:
    registry = CollectorRegistry()
    SearchMetrics(registry, NAME, "bayesian", "val_loss", "min", None, "0.1.0")
    text = generate_latest(registry).decode()
    assert "hptune_best_objective NaN" in text.splitlines()
    assert "hptune_max_trials 0.0" in text.splitlines()
    progress = progress_from_text(text)
    assert progress.best is None and progress.max_trials == 0 and progress.done == 0


def test_promtool_accepts_a_standalone_process_exposition() -> None:
    """A standalone process serves both the search's and its worker's metrics from one registry."""
    registry, search = scenario()
    worker = WorkerMetrics(registry, "tuner0")
    worker.report_epoch({"loss": 0.25, "accuracy": 0.9, "val_loss": 0.3, "val_accuracy": 0.8125}, 1437, 0.5)
    worker.report_device_memory({"gpu:0": 734_003_200})
    worker.trials.labels("tuner0", "completed").inc()
    search.end(failed=False)
    text = generate_latest(registry).decode()
    assert 'hptune_worker_device_memory_bytes{device="gpu:0",worker="tuner0"} 7.340032e+08' in text
    assert 'hptune_worker_samples_per_second{worker="tuner0"} 2874.0' in text
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


# -- the Pushgateway ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    server = Pushgateway(tmp_path_factory.mktemp("pushgateway"))
    try:
        yield server
    finally:
        server.stop()


def test_the_summary_reaches_the_pushgateway(pushgateway: Pushgateway) -> None:
    registry, search = scenario()
    search.end(failed=False)
    assert push_summary(registry, pushgateway.url, "summary-ok", timeout=5)
    group = pushgateway.group("summary-ok")
    assert group is not None
    assert ({"job": "summary-ok", "status": "completed"}, 2.0) in pushed_values(group, "hptune_trials_total")
    assert pushed_values(group, "hptune_best_objective") == [({"job": "summary-ok"}, 0.875)]
    assert pushed_values(group, "hptune_search_finished") == [({"job": "summary-ok"}, 1.0)]
    [(_, succeeded_at)] = pushed_values(group, "hptune_last_success_timestamp_seconds")
    assert abs(succeeded_at - time.time()) < 60


def test_a_failed_search_keeps_the_last_success_time(pushgateway: Pushgateway) -> None:
    """Nightly searches of one name: a failed night must not erase when the last good one ended."""
    good, search = scenario()
    search.end(failed=False)
    assert push_summary(good, pushgateway.url, "nightly", timeout=5)
    group = pushgateway.group("nightly")
    assert group is not None
    [(_, succeeded_at)] = pushed_values(group, "hptune_last_success_timestamp_seconds")

    bad, search = scenario()
    search.end(failed=True)
    assert push_summary(bad, pushgateway.url, "nightly", timeout=5)
    group = pushgateway.group("nightly")
    assert group is not None
    assert pushed_values(group, "hptune_search_failed") == [({"job": "nightly"}, 1.0)]
    kept = pushed_values(group, "hptune_last_success_timestamp_seconds")
    assert kept == [({"job": "nightly"}, succeeded_at)]


def test_an_unreachable_pushgateway_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    registry, _ = scenario()
    started = time.monotonic()
    assert not push_summary(registry, f"http://127.0.0.1:{free_port()}", NAME, timeout=5)
    assert time.monotonic() - started < 5
    assert "push to the Pushgateway" in caplog.text and "failed" in caplog.text


def test_a_pushgateway_that_never_answers_costs_at_most_the_timeout() -> None:
    registry, _ = scenario()
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        assert not push_summary(registry, f"http://127.0.0.1:{silent.getsockname()[1]}", NAME, timeout=1)
        assert time.monotonic() - started < 4


# -- the dashboard -----------------------------------------------------------------------------


def test_the_committed_dashboard_is_the_generated_one() -> None:
    committed = REPO / "charts" / "dashboards" / "hptune.json"
    assert committed.read_text() == dashboard.render(), (
        "charts/dashboards/hptune.json is stale: run "
        "`.venv/bin/python scripts/dashboard.py --output charts/dashboards/hptune.json`"
    )


def test_the_generator_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "d" / "hptune.json"
    assert dashboard.main(["--output", str(out)]) == 0
    assert json.loads(out.read_text()) == dashboard.build()


def test_the_dashboard_is_portable_between_grafanas() -> None:
    """Every panel takes its data source from the `datasource` variable (no instance's uid), and
    the variables a user picks a search with exist."""
    board = dashboard.build()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "search"} <= set(variables)
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for item in panel["targets"]:
            assert item["datasource"] == panel["datasource"], panel["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_the_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard.build()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_hptune_metric_the_dashboard_queries_is_exported() -> None:
    """A misspelt metric name shows an empty panel, not an error: catch it here."""
    registry, _ = scenario()
    worker = WorkerMetrics(registry, "tuner0", [("GPU-8932f937", "")])  # as on a GPU
    worker.report_epoch({"loss": 0.5}, 100, 1.0)
    worker.report_device_memory({"gpu:0": 1})
    exported = {sample.name for family in registry.collect() for sample in family.samples}
    for title, expr in dashboard.queries(dashboard.build()):
        for name in re.findall(r"\bhptune_\w+", expr):
            if name != "hptune_search":  # the target label naming the search
                assert name in exported, f"panel {title!r} queries {name}, which no process exports"


def test_a_trial_process_names_its_gpus_as_the_dcgm_exporter_labels_them() -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry, "tuner0-1", [("GPU-8932f937", ""), ("GPU-1b4e62c0", "3")])
    sample = registry.get_sample_value
    assert (
        sample("hptune_worker_gpu_info", {"worker": "tuner0-1", "UUID": "GPU-8932f937", "GPU_I_ID": ""}) == 1
    )
    assert (
        sample("hptune_worker_gpu_info", {"worker": "tuner0-1", "UUID": "GPU-1b4e62c0", "GPU_I_ID": "3"}) == 1
    )
