"""Idle workers in a search's tail: the GPU-seconds held by workers with nothing left to run.

A chief and four workers run as separate processes on loopback (as pods would, each holding a
GPU). Once the search has no trial left to hand out, the last trials still run; the other workers
either wait for one to come back (`spareWorkers: 3`, every idle worker kept: what every worker did
before spareWorkers existed) or are released at once (`spareWorkers: 0`, the default). Trials
differ in size (hidden1 from 16 to 512 units), so the tail is uneven, as in a real search.

Prints, per side: wall time, worker-seconds (each worker's process alive, summed: what a GPU per
worker is held for), busy worker-seconds (the trials' own seconds, from their records), and idle
worker-seconds in the tail (from each worker's last trial end to its exit). Both sides run the
same trials (same seed) and must reach the same best trial.

    python -m benchmarks.tail_idle --trials 6 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.child import RoleProcess
from job.supervision.processes import free_port

REPO = Path(__file__).resolve().parents[1]
WORKERS = 4


def _spec(root: Path, trials: int, epochs: int, spares: int) -> Path:
    doc = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    spec = doc["spec"]
    spec["hyperparameters"] = [
        {"name": "hidden1", "type": "choice", "values": [16, 64, 256, 512]},
        {"name": "dropout1", "type": "choice", "values": [0.1, 0.2]},
        {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
    ]
    spec["model"] = {
        "type": "mlp",
        "hidden": [{"units": "hidden1", "dropout": "dropout1"}],
        "learningRate": "learning_rate",
    }
    spec["tuner"].update(maxTrials=trials, seed=3)
    spec["training"].update(epochs=epochs, batchSize=8)
    spec["distribution"] = {
        "heartbeatSeconds": 1,
        "leaseSeconds": 4,
        "lingerSeconds": 5,
        "spareWorkers": spares,
    }
    spec["output"] = {"uri": str(root / "out")}
    spec["metrics"] = {"port": 0}
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_side(trials: int, epochs: int, spares: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hptune-tail-") as tmp:
        root = Path(tmp)
        spec = _spec(root, trials, epochs, spares)
        port = free_port()
        started = time.monotonic()
        chief = RoleProcess(spec, "chief", port, root / "chief.log")
        workers = [RoleProcess(spec, f"tuner{i}", port, root / f"tuner{i}.log") for i in range(WORKERS)]
        exited: dict[int, float] = {}
        ended = _TrialEnds(root / "chief.log")
        while len(exited) < WORKERS or chief.process.poll() is None:
            ended.read()
            for index, worker in enumerate(workers):
                if index not in exited and worker.process.poll() is not None:
                    exited[index] = time.monotonic()
            if time.monotonic() - started > 1800:
                raise RuntimeError("the search did not end within 30 minutes")
            time.sleep(0.05)
        wall = time.monotonic() - started
        if chief.process.returncode != 0:
            raise RuntimeError(f"the chief failed:\n{(root / 'chief.log').read_text()[-3000:]}")
        records = [json.loads(p.read_text()) for p in (root / "out" / "trials").glob("*/trial.json")]
        alive = {i: exited[i] - workers[i].started for i in range(WORKERS)}
        busy = {i: sum(r["seconds"] for r in records if r["worker"] == f"tuner{i}") for i in range(WORKERS)}
        ended.read()
        last_end = {i: ended.last(f"tuner{i}") for i in range(WORKERS)}
        tail = {i: exited[i] - end for i, end in last_end.items() if end is not None}
        board = (root / "out" / "leaderboard.csv").read_text().splitlines()
    return {
        "wall_seconds": round(wall, 1),
        "worker_seconds": round(sum(alive.values()), 1),
        "busy_worker_seconds": round(sum(busy.values()), 1),
        "tail_idle_worker_seconds": round(sum(tail.values()), 1),
        "trials_per_worker": {
            f"tuner{i}": sum(1 for r in records if r["worker"] == f"tuner{i}") for i in range(WORKERS)
        },
        "best_trial": board[1].split(",")[1] if len(board) > 1 else None,
    }


class _TrialEnds:
    """When each worker's trials ended, as the chief logs them: read as the log grows."""

    STARTED = re.compile(r"trial (\w+) started on (tuner\d+)")
    COMPLETED = re.compile(r"trial (\w+) (completed|failed)")

    def __init__(self, log: Path) -> None:
        self.log = log
        self.seen = 0
        self.owner: dict[str, str] = {}
        self.ends: dict[str, list[float]] = {}

    def read(self) -> None:
        if not self.log.exists():
            return
        lines = self.log.read_text(errors="replace").splitlines()
        now = time.monotonic()
        for line in lines[self.seen :]:
            if found := self.STARTED.search(line):
                self.owner[found.group(1)] = found.group(2)
            elif (found := self.COMPLETED.search(line)) and found.group(1) in self.owner:
                self.ends.setdefault(self.owner[found.group(1)], []).append(now)
        self.seen = len(lines)

    def last(self, worker: str) -> float | None:
        return max(self.ends.get(worker, []), default=None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sides = {"every idle worker waits (spareWorkers 3)": 3, "idle workers released (spareWorkers 0)": 0}
    results: dict[str, dict[str, Any]] = {}
    for name, spares in sides.items():
        results[name] = run_side(args.trials, args.epochs, spares)
        print(f"{name:42}: {json.dumps(results[name])}", flush=True)
    before, after = (results[name] for name in sides)
    idle_before = before["worker_seconds"] - before["busy_worker_seconds"]
    idle_after = after["worker_seconds"] - after["busy_worker_seconds"]
    print()
    print(f"tail idle: digits MLP, {args.trials} trials x {args.epochs} epochs, {WORKERS} workers")
    print(
        f"  worker-seconds not training: {idle_before:.1f} waiting against {idle_after:.1f} released "
        f"({idle_before - idle_after:.1f} GPU-seconds freed); wall {before['wall_seconds']} against "
        f"{after['wall_seconds']} s; same best trial: {before['best_trial'] == after['best_trial']}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
