"""best/manifest.json: every file of best/ with its size and sha256, written last (its presence
means best/ is complete) and verified by every reader."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from job.output.layout import MANIFEST_KEY, best_key
from job.storage import ArtifactStore, Store


def file_checksum(path: Path) -> tuple[int, str]:
    """Size in bytes and sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return path.stat().st_size, digest.hexdigest()


def write_manifest(store: ArtifactStore, trial_id: str, files: dict[str, dict[str, Any]]) -> None:
    """The manifest of best/ for `files` ({name: {"bytes", "sha256"}}), written last."""
    manifest = {
        "trialId": trial_id,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    store.write_text(MANIFEST_KEY, json.dumps(manifest, indent=2))


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
