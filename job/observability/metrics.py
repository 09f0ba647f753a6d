"""Prometheus metrics: one registry per process, the search's and the worker's metrics, the exporter.

Names follow Prometheus conventions: an `hptune_` prefix, base units in the name, `_total` on
counters, `_info` for metadata, and bounded labels only (worker id, metric name, status): never a
hyperparameter value or a trial id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    pushadd_to_gateway,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from job.errors import InfrastructureError

log = logging.getLogger(__name__)

TRIAL_STATUSES = ("completed", "pruned", "failed", "retried", "requeued")
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600, 7200)
LAST_SUCCESS = "hptune_last_success_timestamp_seconds"


class MetricsError(InfrastructureError):
    """The metrics exporter cannot start (its port is taken, say)."""


class SearchMetrics:
    """What the chief (or a standalone process) knows about the whole search."""

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        algorithm: str,
        objective: str,
        direction: str,
        max_trials: int | None,
        version: str,
    ) -> None:
        self.info = Info("hptune_search", "The search this process runs.", registry=registry)
        self.info.info(
            {
                "name": name,
                "algorithm": algorithm,
                "objective": objective,
                "direction": direction,
                "version": version,
            }
        )
        self.max_trials = Gauge(
            "hptune_max_trials",
            "Trials the search will run (0 when open-ended).",
            registry=registry,
        )
        self.max_trials.set(max_trials or 0)
        self.trials = Counter("hptune_trials", "Trials ended, by outcome.", ["status"], registry=registry)
        for status in TRIAL_STATUSES:
            self.trials.labels(status)
        self.running = Gauge("hptune_trials_running", "Trials running now.", registry=registry)
        self.epochs_saved = Counter(
            "hptune_pruned_epochs",
            "Epochs not trained because their trials were pruned (spec.tuner.pruning).",
            registry=registry,
        )
        self.best = Gauge(
            "hptune_best_objective",
            "Best objective value so far (NaN before the first completed trial).",
            registry=registry,
        )
        self.best.set(float("nan"))
        self.duration = Histogram(
            "hptune_trial_duration_seconds",
            "Wall time of each ended trial.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.workers_up = Gauge(
            "hptune_worker_up",
            "1 while a worker holds a live lease or asks for work.",
            ["worker"],
            registry=registry,
        )
        self.epoch = Gauge(
            "hptune_trial_epoch",
            "Epoch the worker's running trial last finished (1-based).",
            ["worker"],
            registry=registry,
        )
        self.epoch_metric = Gauge(
            "hptune_epoch_metric",
            "Latest per-epoch metric of the worker's running trial.",
            ["worker", "metric"],
            registry=registry,
        )
        self.started = Gauge(
            "hptune_search_start_timestamp_seconds", "When the search started.", registry=registry
        )
        self.started.set_to_current_time()
        self.finished = Gauge(
            "hptune_search_finished",
            "1 once the search has ended (see hptune_search_failed).",
            registry=registry,
        )
        self.failed = Gauge("hptune_search_failed", "1 if the search ended in failure.", registry=registry)
        self.last_success = Gauge(
            LAST_SUCCESS,
            "When the search last completed successfully.",
            registry=registry,
        )

    def trial_ended(self, status: str, seconds: float | None, epochs_saved: int = 0) -> None:
        self.trials.labels(status).inc()
        self.epochs_saved.inc(epochs_saved)
        if seconds is not None and status in ("completed", "pruned", "failed"):
            self.duration.observe(seconds)

    def worker_seen(self, worker: str, up: bool) -> None:
        """A worker heard from (up) or lost (down)."""
        self.workers_up.labels(worker).set(1 if up else 0)

    def best_so_far(self, score: float) -> None:
        self.best.set(score)

    def trials_running(self, count: int) -> None:
        self.running.set(count)

    def report_epoch(self, worker: str, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.labels(worker).set(epoch)
        for metric, value in logs.items():
            self.epoch_metric.labels(worker, metric).set(value)

    def end(self, failed: bool) -> None:
        self.finished.set(1)
        self.failed.set(1 if failed else 0)
        self.running.set(0)
        if not failed:
            self.last_success.set_to_current_time()


class WorkerMetrics:
    """What a worker knows about its own training."""

    def __init__(
        self, registry: CollectorRegistry, worker: str, gpus: Sequence[tuple[str, str]] = ()
    ) -> None:
        """`gpus`: the (UUID, GPU_I_ID) of each GPU this process trains on, as the DCGM exporter
        labels its series (a MIG instance: its parent GPU's UUID and its GPU instance id; a whole
        GPU: an empty GPU_I_ID)."""
        self.worker = worker
        self.epoch_metric = Gauge(
            "hptune_worker_epoch_metric",
            "Latest per-epoch metric of this worker's trial.",
            ["worker", "metric"],
            registry=registry,
        )
        self.epochs = Counter(
            "hptune_worker_epochs", "Epochs trained by this worker.", ["worker"], registry=registry
        )
        self.samples = Counter(
            "hptune_worker_samples",
            "Training samples processed by this worker.",
            ["worker"],
            registry=registry,
        )
        self.samples_per_second = Gauge(
            "hptune_worker_samples_per_second",
            "Training throughput of the last epoch.",
            ["worker"],
            registry=registry,
        )
        self.trials = Counter(
            "hptune_worker_trials",
            "Trials this worker finished, by outcome.",
            ["worker", "status"],
            registry=registry,
        )
        self.device_memory = Gauge(
            "hptune_worker_device_memory_bytes",
            "Accelerator memory in use, where the backend tells.",
            ["worker", "device"],
            registry=registry,
        )
        # Which GPU this trial process trains on, to join DCGM's series by (UUID, GPU_I_ID) when a
        # pod has several GPUs (one trial process each) or MIG slices.
        self.gpu_info = Gauge(
            "hptune_worker_gpu_info",
            "1 for each GPU this trial process trains on, labelled as the DCGM exporter labels it.",
            ["worker", "UUID", "GPU_I_ID"],
            registry=registry,
        )
        for uuid, instance in gpus:
            self.gpu_info.labels(worker, uuid, instance).set(1)
        self.epochs.labels(worker)
        self.samples.labels(worker)
        for status in ("completed", "failed"):
            self.trials.labels(worker, status)

    def report_epoch(self, logs: dict[str, float], samples: int, seconds: float) -> None:
        for metric, value in logs.items():
            self.epoch_metric.labels(self.worker, metric).set(value)
        self.epochs.labels(self.worker).inc()
        self.samples.labels(self.worker).inc(samples)
        if seconds > 0:
            self.samples_per_second.labels(self.worker).set(samples / seconds)

    def report_device_memory(self, used: dict[str, int]) -> None:
        for device, value in used.items():
            self.device_memory.labels(self.worker, device).set(value)


def serve(registry: CollectorRegistry, port: int, address: str = "0.0.0.0") -> int | None:
    """Serve /metrics from registry; returns the bound port (None when port is 0: off)."""
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=address, registry=registry)
    except OSError as err:
        raise MetricsError(
            f"cannot serve metrics on {address}:{port}: {err.strerror}; set spec.metrics.port "
            "(0 turns it off) or --metrics-port"
        ) from None
    bound = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", address, bound)
    return bound


def push_summary(registry: CollectorRegistry, url: str, job: str, timeout: float) -> bool:
    """Push the final summary to a Pushgateway. A failure is logged, never raised.

    A search that did not succeed leaves out hptune_last_success_timestamp_seconds, so the
    Pushgateway keeps the time of the last success of a search of this name (push-add replaces
    only the metrics it sends) instead of having it overwritten with 0.
    """
    summary = CollectorRegistry(auto_describe=False)
    summary.register(_WithoutUnsetLastSuccess(registry))
    try:
        pushadd_to_gateway(url, job=job, registry=summary, timeout=timeout)
    except Exception as err:
        log.warning("push to the Pushgateway at %s failed: %s", url, err)
        return False
    log.info("pushed the search summary to %s (job=%s)", url, job)
    return True


class _WithoutUnsetLastSuccess:
    """The registry's metrics, less a last-success timestamp that was never set."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            if family.name == LAST_SUCCESS and not any(sample.value for sample in family.samples):
                continue
            yield family


@dataclass
class Progress:
    """The numbers a person watches, read from the same samples the exporter serves."""

    name: str = ""
    objective: str = ""
    done: int = 0
    failed: int = 0
    max_trials: int = 0
    running: int = 0
    best: float | None = None
    epochs: dict[str, int] = field(default_factory=dict)
    workers_up: int = 0
    started: float = 0.0
    finished: bool = False

    @property
    def elapsed(self) -> float:
        return max(0.0, time.time() - self.started) if self.started else 0.0


def read_progress(families: Iterable[Metric]) -> Progress:
    p = Progress()
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "hptune_search_info":
                p.name, p.objective = labels.get("name", ""), labels.get("objective", "")
            elif name == "hptune_trials_total":
                if labels.get("status") == "completed":
                    p.done += int(value)
                elif labels.get("status") == "failed":
                    p.failed += int(value)
            elif name == "hptune_max_trials":
                p.max_trials = int(value)
            elif name == "hptune_trials_running":
                p.running = int(value)
            elif name == "hptune_best_objective":
                p.best = None if value != value else value
            elif name == "hptune_trial_epoch":
                p.epochs[labels.get("worker", "")] = int(value)
            elif name == "hptune_worker_up":
                p.workers_up += int(value)
            elif name == "hptune_search_start_timestamp_seconds":
                p.started = value
            elif name == "hptune_search_finished":
                p.finished = value == 1
    return p


def progress_from_text(text: str) -> Progress:
    return read_progress(text_string_to_metric_families(text))
