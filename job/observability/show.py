"""`hptune show URI`: a search's leaderboard and best model, with best/ verified against its manifest."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console
from rich.table import Table

from job.errors import BadInput, HptuneError
from job.storage import Store
from job.storage.layout import LEADERBOARD_KEY, MANIFEST_KEY, best_key


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
            size, digest = store.checksum(best_key(name))
        except FileNotFoundError:
            problems.append(f"best/{name} is listed in the manifest but missing")
            continue
        if size != entry.get("bytes") or digest != entry.get("sha256"):
            problems.append(f"best/{name} does not match its manifest checksum")
    for key in store.list("best"):
        if key != MANIFEST_KEY and key.removeprefix("best/") not in listed:
            problems.append(f"{key} is not listed in the manifest")
    return problems


class NotVerified(HptuneError):
    """best/ does not match its manifest: the output was changed, or the search did not finish."""


def show(uri: str, out: Console, top: int = 10, endpoint_url: str | None = None) -> None:
    """Print the leaderboard and best model at uri; raises unless best/ verifies against its
    manifest (`NotVerified`), or when uri holds no search (`BadInput`) or cannot be read
    (`StorageError`)."""
    store = Store(uri, endpoint_url=endpoint_url)
    try:
        board = store.read_text(LEADERBOARD_KEY)
    except FileNotFoundError:
        raise BadInput(f"{uri}: no leaderboard.csv; is this a search's output (spec.output.uri)?") from None
    rows = list(csv.reader(io.StringIO(board)))
    table = Table(title=f"leaderboard: {uri}")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows[1 : top + 1]:
        table.add_row(*row)
    out.print(table)
    try:
        best = json.loads(store.read_text(best_key("metrics.json")))
        values = json.loads(store.read_text(best_key("hyperparameters.json")))
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
    if problems:
        raise NotVerified(
            f"{store.url('best')} does not verify against its manifest:\n"
            + "\n".join(f"verification failed: {problem}" for problem in problems)
        )
    out.print(
        f"  model: {store.url(best_key('model.keras'))} (verified against {MANIFEST_KEY})",
        highlight=False,
        soft_wrap=True,
    )
