"""Preemption: the same search with workers killed at random, with and without resuming trials.

A chief and two workers run as separate processes on loopback (as pods would). Every `--every`
seconds one worker, drawn from a fixed seed, is SIGKILLed (a spot node reclaimed with no notice)
and started again under the same id (the replacement pod). One side writes epoch checkpoints
(`checkpointSeconds: 0`, so a lost trial continues from its last epoch); the other writes none
(`checkpointSeconds: null`, a lost trial starts over). Both sides get the same kill schedule.
Prints, per side: wall time, worker-seconds (the workers' processes alive, summed), epochs trained,
epochs trained again (trained minus the epochs the trials' records keep), kills and the best
objective; and the ratio of worker-seconds. Also the checkpoint's cost: one side without kills, with
and without checkpoints.

    python -m benchmarks.preemption --trials 6 --epochs 15 --every 20     # digits, offline
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.child import RoleProcess
from job.supervision.processes import free_port

REPO = Path(__file__).resolve().parents[1]
EPOCH_DONE = re.compile(r": trial \w+ epoch \d+ done: ")


def _spec(root: Path, trials: int, epochs: int, checkpoint: float | None) -> Path:
    doc = yaml.safe_load((REPO / "examples" / "digits.yaml").read_text())
    spec = doc["spec"]
    spec["tuner"].update(maxTrials=trials, seed=3)
    spec["training"].update(epochs=epochs, batchSize=8, checkpointSeconds=checkpoint)
    spec["distribution"] = {
        "heartbeatSeconds": 1,
        "leaseSeconds": 4,
        "lingerSeconds": 5,
        "maxWorkerLosses": 50,
    }
    spec["output"] = {"uri": str(root / "out")}
    spec["metrics"] = {"port": 0}
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_side(trials: int, epochs: int, checkpoint: float | None, every: float, seed: int) -> dict[str, Any]:
    """One search; `every` 0: no kills."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="hptune-preemption-") as tmp:
        root = Path(tmp)
        spec = _spec(root, trials, epochs, checkpoint)
        port = free_port()
        started = time.monotonic()
        chief = RoleProcess(spec, "chief", port, root / "chief.log")
        workers = {i: RoleProcess(spec, f"tuner{i}", port, root / f"tuner{i}.log") for i in range(2)}
        worker_seconds, kills = 0.0, 0
        next_kill = started + every if every else float("inf")
        while chief.process.poll() is None:
            time.sleep(0.2)
            if time.monotonic() >= next_kill:
                index = rng.choice(sorted(workers))
                victim = workers[index]
                if victim.process.poll() is None:
                    victim.process.send_signal(signal.SIGKILL)
                    victim.process.wait()
                    kills += 1
                worker_seconds += victim.alive_seconds()
                workers[index] = RoleProcess(spec, f"tuner{index}", port, root / f"tuner{index}.log")
                next_kill += every
        wall = time.monotonic() - started
        for worker in workers.values():
            try:
                worker.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.process.kill()
            worker_seconds += worker.alive_seconds()
        if chief.process.returncode != 0:
            raise RuntimeError(f"the chief failed:\n{(root / 'chief.log').read_text()[-3000:]}")
        trained = sum(len(EPOCH_DONE.findall((root / f"tuner{i}.log").read_text())) for i in range(2))
        records = [json.loads(p.read_text()) for p in (root / "out" / "trials").glob("*/trial.json")]
        kept = sum(len(r["history"][0]) for r in records if r["history"])
        resumed = sum(1 for r in records if r.get("resumed"))
        best = max(
            (r["metrics"].get("val_accuracy", 0.0) for r in records if r["status"] == "completed"),
            default=0.0,
        )
    return {
        "wall_seconds": round(wall, 1),
        "worker_seconds": round(worker_seconds, 1),
        "epochs_trained": trained,
        "epochs_retrained": trained - kept,
        "kills": kills,
        "trials_resumed": resumed,
        "best_val_accuracy": round(best, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sides = {
        "resume (checkpointSeconds 0)": (0.0, args.every),
        "start over (checkpointSeconds null)": (None, args.every),
        "no kills, checkpoints every epoch": (0.0, 0.0),
        "no kills, no checkpoints": (None, 0.0),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, (checkpoint, every) in sides.items():
        results[name] = run_side(args.trials, args.epochs, checkpoint, every, args.seed)
        print(f"{name:38}: {json.dumps(results[name])}", flush=True)
    names = list(sides)
    resume, over = results[names[0]], results[names[1]]
    print()
    print(
        f"preemption: digits MLP, {args.trials} trials x {args.epochs} epochs, 2 workers, a worker killed "
        f"every {args.every:g} s (seed {args.seed})"
    )
    print(
        f"  worker-seconds: {resume['worker_seconds']} resuming against {over['worker_seconds']} "
        f"starting over ({over['worker_seconds'] / resume['worker_seconds']:.2f}x); epochs trained again: "
        f"{resume['epochs_retrained']} against {over['epochs_retrained']}; best val_accuracy "
        f"{resume['best_val_accuracy']} against {over['best_val_accuracy']}"
    )
    quiet, plain = results[names[2]], results[names[3]]
    cost = (quiet["wall_seconds"] - plain["wall_seconds"]) / plain["wall_seconds"]
    print(f"  checkpoints every epoch, no kills: {cost:+.1%} wall time against none")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
