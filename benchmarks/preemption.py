"""Preemption: the same search with workers killed at random, with and without resuming trials.

A chief and two workers run as separate processes on loopback (as pods would). At random times
(exponential gaps with mean `--every` seconds: preemptions as a Poisson process) one worker, drawn
at random, is SIGKILLed (a spot node reclaimed with no notice) and started again under the same id
(the replacement pod); the kill schedule comes from the seed, and both sides of a seed get the same
one. One side writes epoch checkpoints (`checkpointSeconds: 0`, so a lost trial continues from its
last epoch); the other writes none (`checkpointSeconds: null`, a lost trial starts over). Each seed
is one run of each side, run one after the other.

Prints, per side and seed: wall time, worker-seconds (the workers' processes alive, summed), epochs
trained, epochs trained again (trained minus the epochs the trials' records keep), kills and the
best objective; then, over the seeds, the ratio of worker-seconds (mean, min, max) and the epochs
trained again. With `--cost`, also the checkpoints' own cost: one search without kills, with and
without checkpoints.

With `--stop term`, a worker is told to stop instead (SIGTERM: a spot reclaim notice, a drain), and
the seconds from the signal to its exit are printed too (the chart's terminationGracePeriodSeconds
must hold them); with `--checkpoint-seconds 3600`, what the resumed trials continue from is the
checkpoint the signal wrote (mid-epoch, where the training call in progress ended).

    python -m benchmarks.preemption --data mnist --trials 4 --epochs 10 --every 30 --seeds 3
    python -m benchmarks.preemption --trials 6 --epochs 15 --every 20     # digits
    python -m benchmarks.preemption --data mnist --stop term --checkpoint-seconds 3600 --trials 3
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import statistics
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


def _spec(root: Path, data: str, trials: int, epochs: int, checkpoint: float | None, samples: int) -> Path:
    doc = yaml.safe_load((REPO / "examples" / f"{data}.yaml").read_text())
    spec = doc["spec"]
    spec["tuner"].update(maxTrials=trials, seed=3)
    spec["training"].update(epochs=epochs, checkpointSeconds=checkpoint)
    spec["training"].pop("earlyStopping", None)  # every trial trains all its epochs
    if data == "digits":
        spec["training"]["batchSize"] = 8
    elif samples:
        spec["data"]["maxTrainSamples"] = samples
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


def run_side(args: argparse.Namespace, checkpoint: float | None, every: float, seed: int) -> dict[str, Any]:
    """One search; `every` 0: no kills."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="hptune-preemption-") as tmp:
        root = Path(tmp)
        spec = _spec(root, args.data, args.trials, args.epochs, checkpoint, args.samples)
        port = free_port()
        started = time.monotonic()
        chief = RoleProcess(spec, "chief", port, root / "chief.log")
        workers = {i: RoleProcess(spec, f"tuner{i}", port, root / f"tuner{i}.log") for i in range(2)}
        worker_seconds, kills, stop_seconds = 0.0, 0, []
        next_kill = started + rng.expovariate(1 / every) if every else float("inf")
        while chief.process.poll() is None:
            time.sleep(0.2)
            if time.monotonic() >= next_kill:
                index = rng.choice(sorted(workers))
                victim = workers[index]
                if victim.process.poll() is None:
                    told = time.monotonic()
                    victim.process.send_signal(signal.SIGTERM if args.stop == "term" else signal.SIGKILL)
                    victim.process.wait()
                    stop_seconds.append(time.monotonic() - told)
                    kills += 1
                worker_seconds += victim.alive_seconds()
                workers[index] = RoleProcess(spec, f"tuner{index}", port, root / f"tuner{index}.log")
                next_kill += rng.expovariate(1 / every)
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
        mid_epoch = sum(1 for r in records if (r.get("resumed") or {}).get("steps"))
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
        "resumed_mid_epoch": mid_epoch,
        "stop_seconds": [round(t, 2) for t in stop_seconds],
        "best_val_accuracy": round(best, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--samples", type=int, default=0, help="MNIST: train on the first N (0: all)")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=float, default=20.0, help="mean seconds between kills")
    parser.add_argument("--seed", type=int, default=7, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds (one run of each side each)")
    parser.add_argument("--stop", choices=["kill", "term"], default="kill", help="SIGKILL or SIGTERM")
    parser.add_argument(
        "--checkpoint-seconds", type=float, default=0.0, help="the resuming side's checkpointSeconds"
    )
    parser.add_argument("--cost", action="store_true", help="also the checkpoints' cost without kills")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for seed in range(args.seed, args.seed + args.seeds):
        resume = run_side(args, args.checkpoint_seconds, args.every, seed)
        label = f"resume (checkpointSeconds {args.checkpoint_seconds:g})"
        print(f"seed {seed} {label:33}: {json.dumps(resume)}", flush=True)
        over = run_side(args, None, args.every, seed)
        print(f"seed {seed} start over (checkpointSeconds null)  : {json.dumps(over)}", flush=True)
        runs.append({"seed": seed, "resume": resume, "start_over": over})
    ratios = [r["start_over"]["worker_seconds"] / r["resume"]["worker_seconds"] for r in runs]
    print()
    print(
        f"preemption: {args.data} MLP, {args.trials} trials x {args.epochs} epochs, 2 workers, a worker "
        f"{'told to stop' if args.stop == 'term' else 'killed'} every {args.every:g} s on average, "
        f"seeds {args.seed}-{args.seed + args.seeds - 1}"
    )
    if args.stop == "term":
        stops = [t for r in runs for side in ("resume", "start_over") for t in r[side]["stop_seconds"]]
        if stops:
            print(
                f"  SIGTERM to exit: median {statistics.median(stops):.2f} s, max {max(stops):.2f} s "
                f"({len(stops)} stops); resumed mid-epoch: {[r['resume']['resumed_mid_epoch'] for r in runs]}"
            )
    print(
        f"  worker-seconds, starting over / resuming: {statistics.mean(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} seeds)"
    )
    for side in ("resume", "start_over"):
        print(
            f"  {side:10}: worker-seconds {[r[side]['worker_seconds'] for r in runs]}, epochs trained "
            f"again {[r[side]['epochs_retrained'] for r in runs]}, kills {[r[side]['kills'] for r in runs]}, "
            f"best val_accuracy {[r[side]['best_val_accuracy'] for r in runs]}"
        )
    results: dict[str, Any] = {"runs": runs}
    if args.cost:
        quiet, plain = run_side(args, 0.0, 0.0, args.seed), run_side(args, None, 0.0, args.seed)
        cost = (quiet["wall_seconds"] - plain["wall_seconds"]) / plain["wall_seconds"]
        print(f"  checkpoints every epoch, no kills: {cost:+.1%} wall time against none")
        results["cost"] = {"checkpoints": quiet, "none": plain}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
