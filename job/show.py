"""`hptune show URI`: a search's leaderboard and best model, with best/ verified against its manifest."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from job.results import sha256
from job.storage import StorageError, Store


def verify_manifest(store: Store) -> list[str]:
    """Problems with best/ (empty when every file matches the manifest)."""
    try:
        manifest = json.loads(store.read_text("best/manifest.json"))
    except FileNotFoundError:
        return ["best/manifest.json is missing: best/ is incomplete or the search has not finished"]
    problems = []
    for name, entry in manifest.get("files", {}).items():
        try:
            data = store.read_bytes(f"best/{name}")
        except FileNotFoundError:
            problems.append(f"best/{name} is listed in the manifest but missing")
            continue
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            problems.append(f"best/{name} does not match its manifest checksum")
    return problems


def show(uri: str, out: Console, err: Console, top: int = 10) -> int:
    try:
        store = Store(uri)
        try:
            board = store.read_text("leaderboard.csv")
        except FileNotFoundError:
            err.print(
                Text.assemble(
                    ("error: ", "bold red"),
                    f"{uri}: no leaderboard.csv; is this a search's output (spec.output.uri)?",
                )
            )
            return 2
        rows = list(csv.reader(io.StringIO(board)))
        table = Table(title=f"leaderboard: {uri}")
        for column in rows[0]:
            table.add_column(column, overflow="fold")
        for row in rows[1 : top + 1]:
            table.add_row(*row)
        out.print(table)
        try:
            best = json.loads(store.read_text("best/metrics.json"))
            values = json.loads(store.read_text("best/hyperparameters.json"))
        except FileNotFoundError:
            best, values = None, None
        if best is not None:
            objective = best["objective"]
            out.print(
                f"best: trial {best['trialId']}, {objective['name']} = {objective['value']}",
                highlight=False,
            )
            out.print(f"  hyperparameters: {json.dumps(values)}", highlight=False)
            out.print(f"  metrics: {json.dumps(best['metrics'])}", highlight=False)
        problems = verify_manifest(store)
    except StorageError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return 1
    if problems:
        for problem in problems:
            err.print(Text.assemble(("verification failed: ", "bold red"), problem))
        return 1
    out.print(
        f"  model: {store.url('best/model.keras')} (verified against best/manifest.json)",
        highlight=False,
    )
    return 0
