"""`hptune show URI`: a search's leaderboard and best model, with best/ verified against its manifest."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from job.storage import MANIFEST_KEY, StorageError, Store


def verify_manifest(store: Store) -> list[str]:
    """Problems with best/ (empty when best/ holds exactly the files its manifest lists, intact)."""
    try:
        manifest = json.loads(store.read_text(MANIFEST_KEY))
    except FileNotFoundError:
        return [f"{MANIFEST_KEY} is missing: best/ is incomplete or the search has not finished"]
    except json.JSONDecodeError as err:
        return [f"{MANIFEST_KEY} is not valid JSON ({err})"]
    listed: dict[str, dict[str, object]] = manifest.get("files", {})
    problems = []
    for name, entry in sorted(listed.items()):
        try:
            size, digest = store.checksum(f"best/{name}")
        except FileNotFoundError:
            problems.append(f"best/{name} is listed in the manifest but missing")
            continue
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            problems.append(f"best/{name} does not match its manifest checksum")
    for key in store.list("best"):
        if key != MANIFEST_KEY and key.removeprefix("best/") not in listed:
            problems.append(f"{key} is not listed in the manifest")
    return problems


def show(uri: str, out: Console, err: Console, top: int = 10, endpoint_url: str | None = None) -> int:
    """Print the leaderboard and best model at uri; 0 when best/ verifies against its manifest."""
    try:
        store = Store(uri, endpoint_url=endpoint_url)
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
                soft_wrap=True,
            )
            out.print(f"  hyperparameters: {json.dumps(values)}", highlight=False, soft_wrap=True)
            out.print(f"  metrics: {json.dumps(best['metrics'])}", highlight=False, soft_wrap=True)
        problems = verify_manifest(store)
    except StorageError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        return 1
    if problems:
        for problem in problems:
            err.print(Text.assemble(("verification failed: ", "bold red"), problem), soft_wrap=True)
        return 1
    out.print(
        f"  model: {store.url('best/model.keras')} (verified against {MANIFEST_KEY})",
        highlight=False,
        soft_wrap=True,
    )
    return 0
