"""A real `hptune local` search (a chief and 2 workers on digits) watched by a real Prometheus and
Pushgateway: what Prometheus records is what the search did, every dashboard query works against
it, and every process's exposition passes `promtool check metrics`.

Each process's /metrics goes away when it exits (often less than a scrape after the last trial
ends), so end values are read from the Pushgateway's summary, as the dashboard reads them.
There are no GPUs here: stand-in DCGM exporters (the labels NVIDIA's exporter gives a GPU in use
by a pod) and a GPU worker's device-memory series let the GPU panels' joins be checked too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge

from job.observability.metrics import WorkerMetrics
from job.supervision.processes import free_port
from scripts import dashboard
from tests.support.commands import hptune, hptune_env
from tests.support.prometheus import (
    Exporter,
    Prometheus,
    PromQLError,
    Pushgateway,
    file_sd_job,
    finite,
    http_get,
    promtool_check,
    pushed_values,
    static_job,
    wait_for,
)
from tests.support.specs import BASE_SPEC, merge

pytestmark = pytest.mark.slow

NAME = "digits-metrics"
NAMESPACE = "hptune-test"  # what a PodMonitor's `namespace` label would say; relabelled in here
MAX_TRIALS = 6
EPOCHS = 2
WORKERS = ("tuner0", "tuner1")
RUN_TIMEOUT = 240


@dataclass
class Run:
    """A finished search and what watched it."""

    prometheus: Prometheus
    pushgateway: Pushgateway
    out: Path
    start: float
    end: float  # `hptune local` exited
    after: float  # Prometheus has seen every process gone and scraped the pushed summary
    log: str
    expositions: dict[str, str] = field(default_factory=dict)  # process -> its last /metrics

    @property
    def window(self) -> str:
        """A range selector covering the whole run."""
        return f"{int(self.after - self.start) + 10}s"

    def at_end(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expr, at=self.after)

    def over_run(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query_range(expr, self.start, self.after)

    def leaderboard(self) -> list[dict[str, str]]:
        with (self.out / "leaderboard.csv").open() as f:
            return list(csv.DictReader(f))

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted((self.out / "trials").glob("*/trial.json"))]


def _scrape_every_process(targets: Path, stop: threading.Event, last: dict[str, str]) -> None:
    """Keep the latest /metrics text of every process listed in hptune's targets file."""
    while not stop.is_set() and not targets.exists():
        time.sleep(0.1)
    if stop.is_set():
        return
    addresses = {g["labels"]["process"]: g["targets"][0] for g in json.loads(targets.read_text())}
    while not stop.is_set():
        for process, address in addresses.items():
            with contextlib.suppress(OSError):  # not serving yet, or already gone
                last[process] = http_get(f"http://{address}/metrics", timeout=1)
        time.sleep(0.3)


# What the GPU panels join: NVIDIA DCGM exporters (one scraped with honor_labels, one without: the
# join must not care), and the GPU each trial process trains on as it exports it. Worker pod 0 has
# two GPUs, one trial process on each; worker 1 trains on a MIG instance, which DCGM labels with
# its parent GPU's UUID and GPU_I_ID and reports no DCGM_FI_DEV_GPU_UTIL for (the graphics
# engine's active ratio instead). Only the GPUs of this search's trial processes may show.
# (gpu, UUID, GPU_I_ID, utilisation % or None, engine active ratio or None, frame buffer MiB)
DCGM_HONORED = [
    ("0", "GPU-a0", "", 87.0, 0.86, 1024.0),  # tuner0-0
    ("1", "GPU-a1", "", 55.0, None, 2048.0),  # tuner0-1, the same pod's second GPU
    ("2", "GPU-a2", "", 0.0, None, 0.0),  # idle
]
DCGM_EXPORTED = [
    ("3", "GPU-b3", "2", None, 0.42, 512.0),  # tuner1's MIG instance
    ("0", "GPU-c0", "", 99.0, None, 4096.0),  # another team's job
]
TRIAL_GPUS = {"tuner0-0": ("GPU-a0", ""), "tuner0-1": ("GPU-a1", ""), "tuner1": ("GPU-b3", "2")}
DEVICE_MEMORY = 734_003_200.0


def dcgm_exporter(gpus: list[tuple[str, str, str, float | None, float | None, float]]) -> Exporter:
    registry = CollectorRegistry()
    labels = ["gpu", "UUID", "GPU_I_ID", "modelName", "Hostname", "container", "namespace", "pod"]
    util = Gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", labels, registry=registry)
    active = Gauge(
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "Ratio of time the graphics engine is active.",
        labels,
        registry=registry,
    )
    used = Gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels, registry=registry)
    for gpu, uuid, instance, percent, ratio, mib in gpus:
        values = [gpu, uuid, instance, "NVIDIA H100 80GB HBM3", "gpu-node-1", "", NAMESPACE, "worker-pod"]
        if percent is not None:
            util.labels(*values).set(percent)
        if ratio is not None:
            active.labels(*values).set(ratio)
        used.labels(*values).set(mib)
    return Exporter(registry)


def gpu_worker(worker: str) -> Exporter:
    """A trial process on a GPU, as WorkerMetrics exports it: which GPU, and its device memory."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, worker, [TRIAL_GPUS[worker]])
    if worker == "tuner0-0":
        metrics.report_device_memory({"gpu:0": int(DEVICE_MEMORY)})
    names = ["hptune_worker_device_memory_bytes", "hptune_worker_gpu_info"]
    return Exporter(registry.restricted_registry(names))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("prometheus")
    targets = root / "targets.json"
    with contextlib.ExitStack() as servers:
        pushgateway = Pushgateway(root)
        servers.callback(pushgateway.stop)
        gpu_workers = [gpu_worker(worker) for worker in TRIAL_GPUS]
        exporters = [dcgm_exporter(DCGM_HONORED), dcgm_exporter(DCGM_EXPORTED), *gpu_workers]
        for exporter in exporters:
            servers.callback(exporter.stop)
        dcgm_pod = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x7k2p"}
        prometheus = Prometheus(
            root,
            [
                file_sd_job("hptune", targets, {"namespace": NAMESPACE}),
                static_job("pushgateway", f"127.0.0.1:{pushgateway.port}", honor_labels=True),
                static_job("dcgm-honored", exporters[0].address, dcgm_pod, honor_labels=True),
                static_job("dcgm", exporters[1].address, dcgm_pod),
                *(
                    static_job(
                        f"gpu-worker-{worker}",
                        exporter.address,
                        {"hptune_search": NAME, "namespace": NAMESPACE, "pod": worker.split("-")[0]},
                    )
                    for worker, exporter in zip(TRIAL_GPUS, gpu_workers, strict=True)
                ),
            ],
        )
        servers.callback(prometheus.stop)
        yield search(root, targets, prometheus, pushgateway)


def search(root: Path, targets: Path, prometheus: Prometheus, pushgateway: Pushgateway) -> Run:
    """Run the search, keeping each process's last exposition; wait until Prometheus has seen it
    end (the processes down, the Pushgateway's summary scraped)."""
    spec = root / "spec.yaml"
    doc = merge(
        BASE_SPEC,
        {
            "metadata": {"name": NAME},
            "spec": {
                "tuner": {"maxTrials": MAX_TRIALS},
                "training": {"epochs": EPOCHS},
                "output": {"uri": str(root / "out")},
                "distribution": {"heartbeatSeconds": 1, "leaseSeconds": 10},
                "metrics": {"port": 9090, "pushgateway": {"url": pushgateway.url, "timeoutSeconds": 5}},
            },
        },
    )
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    expositions: dict[str, str] = {}
    stop = threading.Event()
    scraper = threading.Thread(
        target=_scrape_every_process, args=(targets, stop, expositions), name="scraper", daemon=True
    )
    start = time.time()
    scraper.start()
    command = [sys.executable, "-m", "job", "local", str(spec), "--workers", str(len(WORKERS))]
    command += ["--prometheus-targets", str(targets)]
    try:
        result = subprocess.run(
            command, env=hptune_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    finally:
        stop.set()
        scraper.join(timeout=5)
    end = time.time()
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    wait_for(
        "Prometheus to see the search's processes gone",
        lambda: None if prometheus.query(f'up{{hptune_search="{NAME}", job="hptune"}} == 1') else True,
        timeout=15,
    )
    wait_for(
        "Prometheus to scrape the pushed summary",
        lambda: prometheus.query(f'push_time_seconds{{job="{NAME}"}}') or None,
        timeout=15,
    )
    # Range queries step every second up to `after`: their last step must come after the summary's
    # first scrape, which may have happened a moment ago.
    time.sleep(1.5)
    after = time.time()
    time.sleep(1.0)  # `after` is now in the past: queries at it read what is stored, nothing newer
    window = f"{int(after - start) + 10}s"
    scraped = prometheus.query(f'sum_over_time(up{{job="hptune"}}[{window}])', at=after)
    scrapes = {r["metric"]["process"]: float(r["value"][1]) for r in scraped}
    assert sorted(scrapes) == ["chief", *WORKERS] and min(scrapes.values()) >= 2, (
        f"successful scrapes per process: {scrapes}; a busy process answers slowly (scrape timeout "
        "1 s): on a loaded machine, raise MAX_TRIALS so the search outlasts it"
    )
    return Run(prometheus, pushgateway, root / "out", start, end, after, log, expositions)


def value(result: list[dict[str, Any]]) -> float:
    """The value of a one-sample instant query result."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])


# -- what Prometheus recorded is what the search did --------------------------------------------


def series_values(result: list[dict[str, Any]]) -> list[float]:
    """The finite values of a one-series query_range result, in time order."""
    assert len(result) == 1, [r["metric"] for r in result]
    return finite(result[0]["values"])


def test_prometheus_counts_every_trial_of_the_search(run: Run) -> None:
    live = f'hptune_search="{NAME}", namespace="{NAMESPACE}"'
    # While the chief runs: a count that only grows, one trial at a time, up to maxTrials. (The
    # last trial usually ends less than a scrape before the chief exits: the live series may
    # stop one short.)
    counted = series_values(run.over_run(f'hptune_trials_total{{{live}, status="completed"}}'))
    assert counted == sorted(counted) and 0 < counted[-1] <= MAX_TRIALS, counted
    assert set(counted) <= set(range(MAX_TRIALS + 1))
    assert set(series_values(run.over_run(f"hptune_max_trials{{{live}}}"))) == {MAX_TRIALS}
    assert set(series_values(run.over_run(f'hptune_trials_total{{{live}, status="failed"}}'))) == {0}
    ended = series_values(run.over_run(f"hptune_trial_duration_seconds_count{{{live}}}"))
    assert ended == sorted(ended) and ended[-1] <= MAX_TRIALS
    # The end values, from the summary the chief pushed as it finished.
    pushed = f'job="{NAME}"'
    assert value(run.at_end(f'hptune_trials_total{{{pushed}, status="completed"}}')) == MAX_TRIALS
    assert value(run.at_end(f"hptune_trial_duration_seconds_count{{{pushed}}}")) == MAX_TRIALS
    assert value(run.at_end(f'hptune_trials_total{{{pushed}, status="failed"}}')) == 0
    assert value(run.at_end(f"hptune_trials_running{{{pushed}}}")) == 0


def test_prometheus_best_objective_is_the_leaderboards_best(run: Run) -> None:
    board = run.leaderboard()
    scores = {float(row["val_accuracy"]) for row in board if row["status"] == "completed"}
    best = float(board[0]["val_accuracy"])
    # Live: NaN until the first trial completes, then each new best is some trial's score.
    seen = series_values(run.over_run(f'hptune_best_objective{{hptune_search="{NAME}"}}'))
    assert seen and set(seen) <= scores and seen == sorted(seen)  # objective direction: max
    assert value(run.at_end(f'hptune_best_objective{{job="{NAME}"}}')) == best


def test_the_dashboard_shows_the_final_numbers_after_the_search(run: Run) -> None:
    """After the chief has exited, the Search row's stats show the search's end, not its last scrape."""
    chosen = grafana(run, namespace=NAMESPACE, search=NAME)
    stats = {
        (title, target["legendFormat"]): interpolate(target["expr"], chosen)
        for panel in dashboard.build()["panels"]
        if panel["type"] in ("stat", "gauge")
        for title in [panel["title"]]
        for target in panel["targets"]
    }
    assert not run.at_end('up{job="hptune"} == 1'), "the search's processes are still up"
    best = float(run.leaderboard()[0]["val_accuracy"])
    assert value(run.at_end(stats["Trials completed", "completed"])) == MAX_TRIALS
    assert value(run.at_end(stats["Trials completed", "of max"])) == MAX_TRIALS
    assert value(run.at_end(stats["Progress", "done"])) == 1
    [objective] = run.at_end(stats["Best objective", "{{objective}} ({{direction}})"])
    assert objective["metric"] == {"objective": "val_accuracy", "direction": "max"}
    assert float(objective["value"][1]) == best
    assert value(run.at_end(stats["Failed trials", "failed"])) == 0
    assert value(run.at_end(stats["Pruned trials", "pruned"])) == 0  # no spec.tuner.pruning here
    assert value(run.at_end(stats["Pruned trials", "epochs saved"])) == 0
    assert value(run.at_end(stats["Running", "trials"])) == 0
    assert value(run.at_end(stats["Outcome", "outcome"])) == 0  # succeeded
    assert run.start * 1000 <= value(run.at_end(stats["Last success", "last success"])) <= run.end * 1000


def test_prometheus_sees_each_worker(run: Run) -> None:
    heard = run.at_end(f'max_over_time(hptune_worker_up{{hptune_search="{NAME}"}}[{run.window}])')
    assert {r["metric"]["worker"]: float(r["value"][1]) for r in heard} == dict.fromkeys(WORKERS, 1.0)
    own = run.at_end(f'max_over_time(hptune_worker_epochs_total{{hptune_search="{NAME}"}}[{run.window}])')
    assert sorted((r["metric"]["worker"], r["metric"]["pod"]) for r in own) == [(w, w) for w in WORKERS]


def test_prometheus_per_epoch_values_are_the_recorded_ones(run: Run) -> None:
    """Every per-epoch value Prometheus saw, from the worker and from the chief (heartbeats), is one
    that the trial records hold for that worker; every worker that ran trials has such series."""
    recorded: dict[tuple[str, str], set[float]] = {}
    for record in run.records():
        for execution in record["history"]:
            for epoch in execution:
                for metric, number in epoch.items():
                    recorded.setdefault((record["worker"], metric), set()).add(number)
    busy = {worker for worker, _ in recorded}
    assert busy, "no trial records"
    for exported in ("hptune_worker_epoch_metric", "hptune_epoch_metric"):
        seen: dict[tuple[str, str], set[float]] = {}
        for series in run.over_run(f'{exported}{{hptune_search="{NAME}"}}'):
            key = (series["metric"]["worker"], series["metric"]["metric"])
            seen.setdefault(key, set()).update(finite(series["values"]))
        assert {w for w, _ in seen} == busy, exported
        assert {m for _, m in seen} == {"loss", "accuracy", "val_loss", "val_accuracy"}, exported
        for key, values in seen.items():
            assert values <= recorded[key], f"{exported}{key}: {values - recorded[key]} not in any trial"
    epochs = run.at_end(f'max_over_time(hptune_trial_epoch{{hptune_search="{NAME}"}}[{run.window}])')
    assert {r["metric"]["worker"]: float(r["value"][1]) for r in epochs} == dict.fromkeys(busy, EPOCHS)


def test_the_pushgateway_holds_the_final_summary(run: Run) -> None:
    group = run.pushgateway.group(NAME)
    assert group is not None, [g["labels"] for g in run.pushgateway.groups()]
    job = {"job": NAME}
    assert ({**job, "status": "completed"}, MAX_TRIALS) in pushed_values(group, "hptune_trials_total")
    best = float(run.leaderboard()[0]["val_accuracy"])
    assert pushed_values(group, "hptune_best_objective") == [(job, best)]
    assert pushed_values(group, "hptune_search_finished") == [(job, 1.0)]
    assert pushed_values(group, "hptune_search_failed") == [(job, 0.0)]
    [(_, succeeded_at)] = pushed_values(group, "hptune_last_success_timestamp_seconds")
    assert run.start <= succeeded_at <= run.end
    # ... and Prometheus scraped it from there, labelled job=<the search's name>.
    assert value(run.at_end(f'hptune_search_finished{{job="{NAME}"}}')) == 1


def test_promtool_accepts_every_process_exposition(run: Run) -> None:
    assert sorted(run.expositions) == ["chief", *WORKERS]
    for process, text in run.expositions.items():
        family = "hptune_trials_total" if process == "chief" else "hptune_worker_epochs_total"
        assert f"# TYPE {family} counter" in text, process
        result = promtool_check(text)
        assert result.returncode == 0, f"{process}: {result.stdout}{result.stderr}"


# -- the dashboard's queries against what the search exported -----------------------------------


def interpolate(expr: str, variables: dict[str, str]) -> str:
    """Substitute Grafana variables ($name, ${name}); others (label_replace's $1) stay."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), expr)


def grafana(run: Run, **chosen: str) -> dict[str, str]:
    """The variables Grafana would substitute for this run."""
    # $__rate_interval: Grafana's, for a data source whose scrape interval is left at 15 s.
    return {"__rate_interval": "1m", "__interval": "1s", "__range": run.window, **chosen}


def panel_query(title: str) -> str:
    [expr] = [expr for name, expr in dashboard.queries(dashboard.build()) if name == title]
    return expr


def test_the_dashboard_variables_offer_this_search(run: Run) -> None:
    variables = {v["name"]: v for v in dashboard.build()["templating"]["list"] if v["type"] == "query"}

    def offered(name: str, **chosen: str) -> set[str]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", interpolate(variables[name]["query"], chosen))
        assert match, variables[name]["query"]
        return run.prometheus.label_values(match.group(1), match.group(2), run.start, run.after)

    assert NAMESPACE in offered("namespace")
    assert NAME in offered("search", namespace=NAMESPACE)
    assert NAME in offered("search", namespace=".*")
    assert offered("metric", namespace=NAMESPACE, search=NAME) == {"loss", "accuracy"}


@pytest.mark.parametrize("namespace", [NAMESPACE, ".*"], ids=["namespace", "all-namespaces"])
def test_every_dashboard_query_returns_this_search(run: Run, namespace: str) -> None:
    failures: list[str] = []
    for title, expr in dashboard.queries(dashboard.build()):
        for metric in ("loss", "accuracy") if "$metric" in expr else ("",):
            query = interpolate(expr, grafana(run, namespace=namespace, search=NAME, metric=metric))
            try:
                result = run.over_run(query)
            except PromQLError as err:
                failures.append(f"{title}: {err}")
                continue
            if not any(finite(series["values"]) for series in result):
                failures.append(f"{title}: no data from {query}")
            elif metric:
                names = {series["metric"].get("metric") for series in result}
                workers = {series["metric"].get("worker") for series in result}
                if names != {metric, f"val_{metric}"} or not workers <= set(WORKERS):
                    failures.append(f"{title}: series {names} of {workers} for $metric={metric}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("GPU utilisation (DCGM)", {("tuner0-0", "0", 87.0), ("tuner0-1", "1", 55.0), ("tuner1", "3", 42.0)}),
        (
            "GPU memory used (DCGM)",
            {("tuner0-0", "0", 1024.0), ("tuner0-1", "1", 2048.0), ("tuner1", "3", 512.0)},
        ),
        ("Device memory in use (hptune)", {("tuner0-0", "gpu:0", DEVICE_MEMORY)}),
    ],
)
def test_the_gpu_panels_show_the_gpus_of_this_searchs_workers(
    run: Run, title: str, expected: set[tuple[str, str, float]]
) -> None:
    """Each trial process's own GPU, two in one pod and a MIG instance (its engine's active ratio
    as a percentage: MIG has no utilisation series), whichever way the DCGM exporter was scraped;
    not another job's GPU, not an idle one; values as the exporter gave them."""
    query = interpolate(panel_query(title), grafana(run, namespace=NAMESPACE, search=NAME))
    shown = {
        (series["metric"]["worker"], series["metric"].get("gpu", series["metric"].get("device")), number)
        for series in run.over_run(query)
        for number in finite(series["values"])
    }
    assert shown == expected


@pytest.mark.parametrize(
    "other",
    [{"search": "another-search", "namespace": NAMESPACE}, {"search": NAME, "namespace": "elsewhere"}],
    ids=["another-search", "another-namespace"],
)
def test_no_dashboard_query_shows_another_search(run: Run, other: dict[str, str]) -> None:
    """Every query filters on the chosen search and namespace: pick another, and the panels are
    empty. (The Pushgateway's copy is keyed by the search's name only: it has no namespace.)"""
    end = run.after + 1
    if other["namespace"] != NAMESPACE:
        # Until the summary was pushed, every series shown came from the live processes.
        group = run.pushgateway.group(NAME)
        assert group is not None
        [(_, end)] = pushed_values(group, "push_time_seconds")
    leaks: list[str] = []
    for title, expr in dashboard.queries(dashboard.build()):
        query = interpolate(expr, grafana(run, metric="loss", **other))
        if run.prometheus.query_range(query, run.start, end - 1):
            leaks.append(f"{title}: {query}")
    assert not leaks, "\n".join(leaks)


# -- a missing Pushgateway does not fail a search ----------------------------------------------


def test_a_search_succeeds_with_the_pushgateway_down(write_spec: Any) -> None:
    closed = free_port()
    spec = write_spec(
        {
            "spec": {
                "tuner": {"maxTrials": 1},
                "training": {"epochs": 1},
                "data": {"maxTrainSamples": 300},
                "metrics": {"pushgateway": {"url": f"http://127.0.0.1:{closed}", "timeoutSeconds": 3}},
            }
        }
    )
    started = time.monotonic()
    result = hptune("run", str(spec), timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"push to the Pushgateway at http://127.0.0.1:{closed} failed" in result.stderr
    assert "1 trials completed" in result.stdout + result.stderr
    assert time.monotonic() - started < 180
