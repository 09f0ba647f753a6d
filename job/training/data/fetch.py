"""Data at any fsspec URI as a local path: a local file or folder is used where it is; a remote one
(s3://, gs://, ...) is fetched once per machine into the temporary directory (TMPDIR), within the
spec's byte limit, and reused by every later process there (a restarted worker, packed trials).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from job.retry import Backoff, GaveUp, call
from job.storage.errors import StorageError, describe, is_refusal, is_transient
from job.training.data.dataset import DataError, human_bytes

log = logging.getLogger(__name__)

T = TypeVar("T")
FETCH_RETRY = Backoff(seconds=60)
DONE_MARKER = ".hptune-fetched"


class FetchFailed(StorageError):
    """A remote dataset could not be fetched after retrying: the storage may work later."""


def local_copy(uri: str, limit: int, field: str = "spec.data.path") -> tuple[Path, int]:
    """A local path holding what `uri` names, and its size in bytes."""
    from fsspec.core import url_to_fs

    try:
        fs, root = url_to_fs(uri)
    except (ImportError, ValueError) as err:
        raise DataError(f"{field}={uri}: no filesystem for this URI ({err})") from None
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        path = Path(root)
        if not path.exists():
            raise DataError(f"{field}={uri}: no such file or directory")
        size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in _files(path))
        log.info("data at %s: %s, read in place", uri, human_bytes(size))
        return path, size

    files = _remote(uri, field, lambda: _listing(fs, root))
    total = sum(files.values())
    if total > limit:
        raise DataError(
            f"{field}={uri}: {human_bytes(total)} in {len(files)} file(s) is more than "
            f"spec.data.maxFetchBytes ({human_bytes(limit)}); raise the limit or point at less data"
        )
    target = Path(tempfile.gettempdir()) / "hptune-data" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    single = len(files) == 1 and next(iter(files)) == ""
    name = root.rstrip("/").rsplit("/", 1)[-1]
    local = target / name if single else target
    manifest = json.dumps(sorted(files.items()))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock")):
        marker = target / DONE_MARKER
        if marker.exists() and marker.read_text() == manifest:
            log.info("data at %s: %s, fetched before into %s", uri, human_bytes(total), target)
            return local, total
        free = shutil.disk_usage(target.parent).free
        if free < total:
            raise DataError(
                f"{field}={uri}: {human_bytes(total)} to fetch but only {human_bytes(free)} free in "
                f"{target.parent}; give the temporary directory (TMPDIR) more room"
            )
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for relative in files:
            source = root if single else f"{root.rstrip('/')}/{relative}"
            destination = local if single else target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            _remote(uri, field, _getter(fs, source, destination))
        marker.write_text(manifest)
    log.info("data at %s: fetched %s in %d file(s) into %s", uri, human_bytes(total), len(files), target)
    return local, total


def _getter(fs: Any, source: str, destination: Path) -> Callable[[], None]:
    return lambda: fs.get_file(source, str(destination))


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _listing(fs: Any, root: str) -> dict[str, int]:
    """Sizes by path relative to root ("" for a single file)."""
    info = fs.info(root)
    if info.get("type") != "directory":
        return {"": int(info.get("size") or 0)}
    prefix = root.rstrip("/") + "/"
    found = fs.find(root, detail=True)
    return {
        path[len(prefix) :]: int(entry.get("size") or 0)
        for path, entry in found.items()
        if path.startswith(prefix) and entry.get("type") != "directory"
    }


def _remote(uri: str, field: str, fn: Callable[[], T]) -> T:
    """fn against remote storage: transient errors retried; a missing or refused location is bad
    input; storage still failing after the retries is infrastructure (the Job may try again)."""
    try:
        return call(fn, FETCH_RETRY, is_transient)
    except GaveUp as gave_up:
        raise FetchFailed(
            f"{field}={uri}: cannot be fetched ({describe(gave_up.error)}), still failing after "
            f"{gave_up.attempts} attempts over {gave_up.elapsed:.0f} s"
        ) from None
    except FileNotFoundError:
        raise DataError(f"{field}={uri}: no such file or folder") from None
    except Exception as err:
        kind = "refuses access" if is_refusal(err) else "cannot be read"
        raise DataError(f"{field}={uri}: {kind}: {describe(err)}") from None


@contextlib.contextmanager
def _locked(path: Path) -> Any:
    """One process at a time fetches into the same place (packed trials start together)."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
