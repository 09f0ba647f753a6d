"""A search's output written by hand, as hptune writes it (leaderboard, search.json, snapshot,
trial records, best/ with its manifest), for the tests of what reads it (`hptune show`, the report)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NOISY = 0.1 + 0.2  # 0.30000000000000004: what min + k * step gives, and what must never be shown
RAW_SCORE = 0.9192200303077698

SPACE: list[dict[str, Any]] = [
    {"name": "hidden1", "type": "int", "min": 16, "max": 64, "step": 16, "sampling": "linear"},
    {"name": "dropout1", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1, "sampling": "linear"},
    {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 1e-1, "sampling": "log"},
    {"name": "activation", "type": "choice", "values": ["relu", "tanh"]},
    {"name": "optimizer", "type": "fixed", "value": "adam"},
]


def trial_values(i: int) -> dict[str, Any]:
    return {
        "hidden1": 16 * (1 + i % 4),
        "dropout1": [0.0, 0.1, 0.2, NOISY, 0.4][i % 5],
        "learning_rate": 10 ** (-4 + 3 * ((i * 37) % 100) / 100),
        "activation": ["relu", "tanh"][i % 2],
        "optimizer": "adam",
    }


def trial_score(i: int, values: dict[str, Any]) -> float:
    # the hidden units matter most, the dropout a little, the rest not at all
    hidden, dropout = values.get("hidden1", 16 * (1 + i % 4)), float(values.get("dropout1", 0.0))
    return 0.5 + hidden / 160 - dropout / 10 + (i % 3) * 1e-3 + RAW_SCORE / 1e4


def fake_output(
    root: Path,
    trials: int = 8,
    failed: Sequence[int] = (),
    lost: Sequence[int] = (),
    epochs: int = 4,
    space: Sequence[dict[str, Any]] = SPACE,
    values: Any = trial_values,
    direction: str = "max",
    objective: str = "val_accuracy",
    error: str = "ValueError: 24 units is not supported by this model",
    losses: dict[str, int] | None = None,
) -> Path:
    """A search's output as hptune writes it: leaderboard.csv, search.json, the chief's snapshot,
    trials/<id>/trial.json (no record for a trial given up on for lost workers) and best/ with its
    manifest (when a trial completed)."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(trials):
        hp = values(i)
        status = "failed" if i in failed or i in lost else "completed"
        score = trial_score(i, hp) if status == "completed" else None
        text = None
        if i in failed:
            text = f'Traceback (most recent call last):\n  File "model.py", line 4\n{error}'
        if i in lost:
            text = (
                "worker tuner1 stopped responding (no heartbeat for 31 s, lease 30 s); "
                "lost its worker 3 times, giving up"
            )
        history = [
            [
                {
                    "accuracy": 0.3 + 0.12 * e + i / 100,
                    "loss": 2.0 / (e + 1),
                    objective: (score or 0.5) - 0.1 * (epochs - 1 - e),
                    "val_loss": 2.2 / (e + 1),
                }
                for e in range(epochs)
            ]
        ]
        records.append((str(i), status, score, hp, text, history))
    done = [r for r in records if r[2] is not None]
    done.sort(key=lambda r: (-r[2] if direction == "max" else r[2], r[0]))
    rest = sorted((r for r in records if r[2] is None), key=lambda r: r[0])
    names = sorted({k for r in records for k in r[3]})
    board = io.StringIO()
    writer = csv.writer(board, lineterminator="\n")
    writer.writerow(["rank", "trial_id", "status", objective, "best_step", *names, "error"])
    for rank, (tid, status, score, hp, text, _) in enumerate([*done, *rest], 1):
        completed = score is not None
        last = [line for line in (text or "").splitlines() if line.strip()]
        writer.writerow(
            [
                rank if completed else "",
                tid,
                status,
                score if completed else "",
                epochs - 1 if completed else "",
            ]
            + [hp.get(n, "") for n in names]
            + [last[-1] if last else ""]
        )
    (root / "leaderboard.csv").write_text(board.getvalue())
    for tid, status, score, hp, text, history in records:
        if text and "lost its worker" in text:
            continue
        (root / "trials" / tid).mkdir(parents=True, exist_ok=True)
        record = {
            "trialId": tid,
            "worker": f"tuner{int(tid) % 2}",
            "status": status,
            "hyperparameters": hp,
            "metrics": history[0][-1] if score is not None else {},
            "bestStep": epochs - 1,
            "history": history if score is not None else [],
            "error": text,
            "seconds": 1.5 + int(tid) * 0.75,
            "modelSaved": False,
        }
        (root / "trials" / tid / "trial.json").write_text(json.dumps(record, indent=2))
    state = "succeeded" if done else "failed"
    spec = {
        "metadata": {"name": "fake-search"},
        "spec": {
            "hyperparameters": list(space),
            "tuner": {"objective": {"name": objective, "direction": direction}},
        },
    }
    status_doc = {
        "name": "fake-search",
        "state": state,
        "reason": None
        if done
        else "no trial completed; see the trial errors in the log and trials/*/trial.json",
        "maxTrials": trials,
        "spec": spec,
    }
    (root / "search.json").write_text(json.dumps(status_doc, indent=2))
    (root / "state").mkdir(exist_ok=True)
    (root / "state" / "snapshot.json").write_text(
        json.dumps({"fingerprint": "x", "name": "fake-search", "state": {"losses": losses or {}}})
    )
    if done:
        tid, _, score, hp, _, history = done[0]
        best = root / "best"
        best.mkdir(exist_ok=True)
        (best / "model.keras").write_bytes(b"not really a model")
        (best / "hyperparameters.json").write_text(json.dumps(hp, indent=2))
        (best / "metrics.json").write_text(
            json.dumps(
                {
                    "trialId": tid,
                    "objective": {"name": objective, "direction": direction, "value": score},
                    "bestStep": epochs - 1,
                    "metrics": history[0][-1],
                },
                indent=2,
            )
        )
        files = {}
        for path in sorted(best.iterdir()):
            data = path.read_bytes()
            files[path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (best / "manifest.json").write_text(json.dumps({"trialId": tid, "files": files}))
    return root
