"""The chief under load: 32 simulated workers finishing 2,000 instant trials over real gRPC.

The chief's coordinator, snapshot writer and gRPC server run in this process as `hptune run`
builds them; each worker is a thread with its own channel (`RemoteOracle`). The search must end
in bounded time with every trial handed out once and recorded once, durably, while the process's
memory stays bounded. create_trial and end_trial latencies are printed and recorded as properties.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from job.kt_adapter import Status
from job.output.layout import SNAPSHOT_KEY
from job.roles.coordination import build_search
from job.spec import load_spec
from job.storage import Store
from job.supervision.recycle import resident_bytes
from job.training.space import declared_space
from job.wire.chief import start_server
from job.wire.remote import RemoteOracle
from tests.support.specs import REPO

pytestmark = pytest.mark.slow

WORKERS = 32
TRIALS = 2000
DEADLINE_SECONDS = 300  # far above the ~40-60 s this takes on two busy cores: only a hang reaches it
RSS_BOUND_MIB = 200


def rss_mib() -> float:
    """This process's resident memory now (not its peak: ru_maxrss would carry earlier tests')."""
    resident = resident_bytes()
    assert resident, "no /proc/self/statm to read resident memory from"
    return resident / 2**20


class RssSampler:
    """The highest resident memory seen while the load runs, sampled every 0.1 s."""

    def __init__(self) -> None:
        self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Load:
    """What the simulated workers saw."""

    creates: list[tuple[int, float]] = field(default_factory=list)  # (trial number, seconds)
    ends: list[float] = field(default_factory=list)
    handed: Counter[str] = field(default_factory=Counter)  # trial id -> times handed to a worker
    stopped: set[str] = field(default_factory=set)  # workers told the search is over
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def simulated_worker(target: str, tuner_id: str, load: Load) -> Callable[[], None]:
    """A worker whose trials finish at once with a made-up score."""

    def run() -> None:
        remote = RemoteOracle(target, tuner_id, wait_seconds=30, heartbeat_seconds=5)
        try:
            while True:
                started = time.perf_counter()
                trial = remote.create_trial(tuner_id)
                elapsed = time.perf_counter() - started
                if trial.status == Status.STOPPED:
                    with load.lock:
                        load.stopped.add(tuner_id)
                    return
                if trial.status != Status.RUNNING:
                    time.sleep(0.01)
                    continue
                score = (int(trial.trial_id) * 7919 % 1000) / 1000
                remote.update_trial(trial.trial_id, {"val_accuracy": score}, 0)
                trial.metrics.update("val_accuracy", score, step=0)
                trial.status = Status.COMPLETED
                began_end = time.perf_counter()
                remote.end_trial(trial)
                with load.lock:
                    load.creates.append((int(trial.trial_id), elapsed))
                    load.ends.append(time.perf_counter() - began_end)
                    load.handed[trial.trial_id] += 1
        except Exception as err:
            with load.lock:
                load.errors.append(f"{tuner_id}: {type(err).__name__}: {err}")
        finally:
            remote.close()

    return run


def test_32_workers_and_2000_instant_trials_lose_nothing_and_stay_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
) -> None:
    job = load_spec(REPO / "examples" / "mnist.yaml")
    tuner = job.spec.tuner.model_copy(update={"max_trials": TRIALS, "seed": 1})
    job = job.model_copy(update={"spec": job.spec.model_copy(update={"tuner": tuner})})
    store = Store(str(tmp_path / "out"))
    # The chief's own coordinator: every trial's end made durable (snapshots), metrics, retention.
    built = build_search(job, declared_space(job), store, CollectorRegistry())
    coordinator = built.coordinator
    built.snapshots.start(coordinator)
    server, port = start_server(coordinator, "127.0.0.1", 0)
    load = Load()
    threads = [
        threading.Thread(target=simulated_worker(f"127.0.0.1:{port}", f"tuner{i}", load), name=f"tuner{i}")
        for i in range(WORKERS)
    ]
    before = rss_mib()
    began = time.monotonic()
    try:
        with RssSampler() as rss:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=max(0.0, began + DEADLINE_SECONDS - time.monotonic()))
            seconds = time.monotonic() - began
    finally:
        server.stop(0)
        built.snapshots.stop()
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert not hung, f"workers still running after {DEADLINE_SECONDS} s: the oracle hung ({hung})"
    assert load.errors == []

    creates = [seconds for _, seconds in sorted(load.creates)]
    report = {
        "seconds": round(seconds, 1),
        "trials_per_second": round(TRIALS / seconds, 1),
        "create_p50_ms": round(percentile_ms(creates, 0.50), 1),
        "create_p99_ms": round(percentile_ms(creates, 0.99), 1),
        "create_p99_first_100_ms": round(percentile_ms(creates[:100], 0.99), 1),
        "create_p99_last_100_ms": round(percentile_ms(creates[-100:], 0.99), 1),
        "end_p99_ms": round(percentile_ms(load.ends, 0.99), 1),
        "rss_growth_mib": round(rss.peak - before, 1),
    }
    for name, value in report.items():
        record_property(name, value)
    with capsys.disabled():
        print(f"\noracle load, {WORKERS} workers, {TRIALS} instant trials: {json.dumps(report)}")

    # Nothing lost, nothing twice: each trial handed out once, completed once, and durable.
    assert len(load.handed) == TRIALS and set(load.handed.values()) == {1}, load.handed.most_common(3)
    trials = coordinator.trials()
    assert len(trials) == TRIALS
    assert all(trial.status == Status.COMPLETED for trial in trials)
    assert coordinator.finished and not coordinator.oracle.ongoing_trials
    assert load.stopped == {f"tuner{i}" for i in range(WORKERS)}, "a worker was never told to stop"
    saved = json.loads(store.read_text(SNAPSHOT_KEY))["state"]["trials"]
    assert len(saved) == TRIALS and {state["status"] for state in saved.values()} == {Status.COMPLETED}

    assert seconds < DEADLINE_SECONDS
    assert report["rss_growth_mib"] < RSS_BOUND_MIB, report
