"""Oracle load: many simulated workers finishing trials instantly against a real chief over gRPC.

Measures create_trial latency (p50, p99) over the first and the last 100 trials, end_trial latency
(which includes making the trial's end durable), and the chief's memory, for hptune's chief and
for a stock Keras Tuner oracle that rewrites its growing `oracle.json` on every call.

    python -m benchmarks.oracle_load --workers 16 --trials 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras_tuner as kt
from prometheus_client import CollectorRegistry

from job.kt_adapter import Status
from job.roles.coordination import build_search
from job.search.oracles import ORACLES
from job.spec import load_spec
from job.storage import Store
from job.supervision.recycle import resident_bytes
from job.training.space import declared_space
from job.wire.chief import start_server
from job.wire.remote import RemoteOracle

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Report:
    mode: str
    workers: int
    trials: int
    completed: int
    distinct: int
    seconds: float
    create_p50_first_ms: float
    create_p99_first_ms: float
    create_p50_last_ms: float
    create_p99_last_ms: float
    end_p50_ms: float
    end_p99_ms: float
    chief_rss_growth_mib: float


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _rss_mib() -> float:
    return resident_bytes() / 2**20


def run_load(workers: int, trials: int, stock: bool = False) -> Report:
    """Run `trials` instant trials on `workers` threads, each a worker with its own gRPC channel."""
    job = load_spec(REPO / "examples" / "mnist.yaml")
    job = job.model_copy(
        update={
            "spec": job.spec.model_copy(
                update={"tuner": job.spec.tuner.model_copy(update={"max_trials": trials, "seed": 1})}
            )
        }
    )
    with tempfile.TemporaryDirectory(prefix="hptune-load-") as tmp:
        space = declared_space(job)
        if stock:  # Keras Tuner's own oracle: rewrites oracle.json and a trial file on every call
            oracle = ORACLES["random"](
                objective=kt.Objective("val_accuracy", "max"),
                max_trials=trials,
                hyperparameters=space,
                seed=1,
            )
            oracle.verbose = 0
            oracle._set_project_dir(tmp, "stock")
        else:
            oracle = None  # spec.tuner's, as the chief makes it
        store = Store(str(Path(tmp) / "out"))
        # The chief's own coordinator: every trial's end made durable (snapshots), metrics, retention.
        search = build_search(job, space, store, CollectorRegistry(), oracle=oracle)
        coordinator = search.coordinator
        search.snapshots.start(coordinator)
        server, port = start_server(coordinator, "127.0.0.1", 0)
        creates: list[tuple[int, float]] = []
        ends: list[float] = []
        seen: list[str] = []
        lock = threading.Lock()
        rss_before = _rss_mib()

        def worker(index: int) -> None:
            tuner_id = f"tuner{index}"
            remote = RemoteOracle(f"127.0.0.1:{port}", tuner_id, wait_seconds=30, heartbeat_seconds=5)
            try:
                while True:
                    started = time.perf_counter()
                    trial = remote.create_trial(tuner_id)
                    elapsed = time.perf_counter() - started
                    if trial.status == Status.STOPPED:
                        return
                    if trial.status != Status.RUNNING:
                        time.sleep(0.01)
                        continue
                    score = (hash(trial.trial_id) % 1000) / 1000
                    remote.update_trial(trial.trial_id, {"val_accuracy": score}, 0)
                    trial.metrics.update("val_accuracy", score, step=0)
                    trial.status = Status.COMPLETED
                    started_end = time.perf_counter()
                    remote.end_trial(trial)
                    with lock:
                        creates.append((int(trial.trial_id), elapsed))
                        ends.append(time.perf_counter() - started_end)
                        seen.append(trial.trial_id)
            finally:
                remote.close()

        began = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        seconds = time.perf_counter() - began
        hung = any(thread.is_alive() for thread in threads)
        server.stop(0)
        search.snapshots.stop()
        if hung:
            raise RuntimeError("workers still running after 600 s: the oracle hung")
        creates.sort()
        first = [t for _, t in creates[:100]]
        last = [t for _, t in creates[-100:]]
        completed = sum(1 for t in coordinator.trials() if t.status == Status.COMPLETED)
        return Report(
            mode="keras-tuner stock oracle" if stock else "hptune chief",
            workers=workers,
            trials=trials,
            completed=completed,
            distinct=len(set(seen)),
            seconds=round(seconds, 2),
            create_p50_first_ms=round(_percentile(first, 0.5), 3),
            create_p99_first_ms=round(_percentile(first, 0.99), 3),
            create_p50_last_ms=round(_percentile(last, 0.5), 3),
            create_p99_last_ms=round(_percentile(last, 0.99), 3),
            end_p50_ms=round(_percentile(ends, 0.5), 3),
            end_p99_ms=round(_percentile(ends, 0.99), 3),
            chief_rss_growth_mib=round(_rss_mib() - rss_before, 1),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    reports = [run_load(args.workers, args.trials, stock=stock) for stock in (False, True)]
    header = (
        f"{'':28} {'trials/s':>9} {'create p50/p99 first':>22} {'create p50/p99 last':>21} "
        f"{'end p50/p99':>14}"
    )
    print(f"oracle load: {args.workers} workers, {args.trials} instant trials, gRPC on loopback")
    print(header)
    for r in reports:
        print(
            f"{r.mode:28} {r.trials / r.seconds:9.0f} "
            f"{r.create_p50_first_ms:9.2f}/{r.create_p99_first_ms:6.2f} ms "
            f"{r.create_p50_last_ms:9.2f}/{r.create_p99_last_ms:6.2f} ms "
            f"{r.end_p50_ms:6.2f}/{r.end_p99_ms:6.2f} ms"
        )
        assert r.completed == r.trials == r.distinct, f"{r.mode}: lost or duplicated trials: {r}"
    ours, stock = reports
    growth = ours.create_p99_last_ms / max(ours.create_p99_first_ms, 1e-6)
    stock_growth = stock.create_p99_last_ms / max(stock.create_p99_first_ms, 1e-6)
    print(f"create_trial p99 last/first: hptune {growth:.2f}x, stock Keras Tuner {stock_growth:.2f}x")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2))


if __name__ == "__main__":
    main()
