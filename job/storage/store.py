"""The artifact store: every result hptune writes goes through here, over fsspec.

`output.uri` may be a local path, ``file://``, ``s3://`` or ``gs://``. Each object lands whole or
not at all: local files are written to a temporary name in the same directory and renamed; object
stores get one PUT per object (an upload cut off stores nothing). Sets of files that belong
together (best/) are made complete-or-nothing by a manifest written last (`job.results`).

An S3-compatible endpoint (MinIO, Ceph, a test server) comes from ``endpoint_url``
(``spec.output.endpointUrl``) or, when that is not given, from the standard ``AWS_ENDPOINT_URL_S3``
/ ``AWS_ENDPOINT_URL`` variables, which the S3 client (botocore, under s3fs) reads itself; this
module reads no environment. Credentials likewise come from the client's usual chain (environment,
mounted file, workload identity), never from the spec.

Retries: the `Store` owns them. Transient errors (connection refused or reset, timeouts, 5xx
answers, throttling) are retried with exponential backoff and jitter for `Backoff.seconds` (60 s by
default) from an operation's first attempt; then the operation fails with a `StorageError` naming
the URI and the operation. Other errors (no such bucket, access denied, bad credentials) fail at
once. The S3 client's own retry layers are turned off so that this one budget is the bound; its
connect timeout is `CONNECT_TIMEOUT_SECONDS` and its read timeout `READ_TIMEOUT_SECONDS`.

Several processes write under one root (the chief, every worker), so the store never answers from
a cached listing: s3fs's listing cache is off, and every attempt drops whatever a remote filesystem
cached before it runs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fsspec.core import url_to_fs

from job import retry
from job.retry import Backoff
from job.storage.errors import (
    StorageError,
    StorageRefused,
    bucket_missing,
    describe,
    is_refusal,
    is_transient,
    missing,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEME_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
CHUNK_BYTES = 1 << 20
DEFAULT_RETRY = Backoff()


class Store:
    """Read and write artifacts under one root URI.

    `retry` bounds how long transient errors are retried (`job.retry.Backoff`); `endpoint_url` points s3://
    at an S3-compatible server (without it, the S3 client's own AWS_ENDPOINT_URL_S3 /
    AWS_ENDPOINT_URL, or AWS itself).
    """

    def __init__(self, uri: str, retry: Backoff = DEFAULT_RETRY, endpoint_url: str | None = None) -> None:
        self.uri = uri.rstrip("/") or uri
        self.retry = retry
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
        options: dict[str, Any] = {}
        if scheme in ("s3", "s3a"):
            options = {
                # One budget for retries: ours. botocore's and s3fs's own layers are turned off.
                "config_kwargs": {
                    "retries": {"total_max_attempts": 1},
                    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                    "read_timeout": READ_TIMEOUT_SECONDS,
                },
                "use_listings_cache": False,
            }
            if endpoint_url:
                options["endpoint_url"] = endpoint_url
        try:
            self.fs, self.root = url_to_fs(self.uri, **options)
        except ImportError as err:
            extra = SCHEME_EXTRAS.get(scheme)
            hint = f"; install it with: pip install 'hptune[{extra}]'" if extra else ""
            raise StorageRefused(f"{uri}: no filesystem for {scheme}:// ({err}){hint}") from None
        except ValueError as err:
            raise StorageRefused(f"{uri}: not a usable storage URI: {err}") from None
        if scheme in ("s3", "s3a"):
            self.fs.retries = 1
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        if not self.local and not self.root.strip("/"):
            raise StorageRefused(f"{uri}: no bucket in the URI; use {scheme}://BUCKET/PREFIX")

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}" if key else self.uri

    def check_writable(self) -> None:
        """Write and remove a small object, so an output that cannot be written fails the job
        before any training rather than after it."""
        key = f".hptune-write-check-{uuid.uuid4().hex}"
        created = self.missing_dirs(key)
        try:
            self.write_bytes(key, b"ok")
            self.delete(key)
        finally:
            remove_empty(created)  # leave no empty output behind if the job stops here

    def missing_dirs(self, key: str) -> list[Path]:
        """The local directories a write of key would create, deepest first ([] for object stores,
        which have no directories to leave behind)."""
        return _missing_dirs(Path(self._path(key)).parent) if self.local else []

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}" if key else self.root

    def _call(self, operation: str, key: str, fn: Callable[[], T]) -> T:
        """Run fn, retrying transient errors within the retry budget.

        A missing object on a read raises FileNotFoundError (the caller decides what that means);
        every other failure raises StorageError naming the operation and the URI.
        """

        def invalidate() -> None:
            if not self.local:
                with contextlib.suppress(Exception):
                    self.fs.invalidate_cache()

        def warn(err: BaseException, delay: float) -> None:
            log.warning(
                "%s %s failed (%s); retrying in %.1f s", operation, self.url(key), describe(err), delay
            )

        try:
            return retry.call(fn, self.retry, is_transient, on_retry=warn, before=invalidate)
        except retry.GaveUp as gave_up:
            raise StorageError(
                f"{operation} {self.url(key)} failed after {gave_up.attempts} attempts over "
                f"{gave_up.elapsed:.0f} s (retry budget {self.retry.seconds:g} s): {describe(gave_up.error)}"
            ) from gave_up.error
        except Exception as err:
            if missing(err) and operation in ("read", "stat"):
                raise FileNotFoundError(errno.ENOENT, "no such object", self.url(key)) from err
            error = StorageRefused if is_refusal(err) else StorageError
            raise error(f"{operation} {self.url(key)} failed: {describe(err)}") from err

    # -- writes ------------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.local:
            self._call("write", key, lambda: _atomic_local(Path(path), lambda handle: handle.write(data)))
        else:
            self._call("write", key, lambda: self.fs.pipe_file(path, data))

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def put_file(self, local: Path, key: str) -> None:
        """Upload a local file (a saved model) under key, whole or not at all."""
        path = self._path(key)
        if self.local:

            def copy(handle: Any) -> None:
                with local.open("rb") as source:
                    shutil.copyfileobj(source, handle, CHUNK_BYTES)

            self._call("write", key, lambda: _atomic_local(Path(path), copy))
        else:
            self._call("write", key, lambda: self.fs.put_file(str(local), path))

    def copy(self, source: str, key: str) -> None:
        """Copy the object at source to key, whole or not at all (a server-side copy on S3)."""
        src, dst = self._path(source), self._path(key)
        if self.local:
            self.put_file(Path(src), key)
        else:
            self._call("write", key, lambda: self.fs.copy(src, dst))

    def delete(self, key: str) -> None:
        """Delete key, and everything under it as a prefix; a missing key is not an error."""
        path = self._path(key)

        def remove() -> None:
            try:
                self.fs.rm(path, recursive=True)
            except FileNotFoundError as err:
                if bucket_missing(err):
                    raise

        self._call("delete", key, remove)

    # -- reads -------------------------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError (naming its URI) when there is none."""
        path = self._path(key)
        return self._call("read", key, lambda: self.fs.cat_file(path))

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def get_file(self, key: str, local: Path) -> None:
        """Download key to a local file, whole or not at all."""
        path = self._path(key)

        def download() -> None:
            local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
            os.close(fd)
            try:
                self.fs.get_file(path, tmp)
                Path(tmp).replace(local)
            finally:
                Path(tmp).unlink(missing_ok=True)

        self._call("read", key, download)

    def checksum(self, key: str) -> tuple[int, str]:
        """Size in bytes and sha256 of the object, read in chunks."""
        path = self._path(key)

        def digest() -> tuple[int, str]:
            sha, size = hashlib.sha256(), 0
            with self.fs.open(path, "rb", block_size=CHUNK_BYTES) as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    sha.update(chunk)
                    size += len(chunk)
            return size, sha.hexdigest()

        return self._call("read", key, digest)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return bool(self._call("stat", key, lambda: self.fs.exists(path)))

    def size(self, key: str) -> int:
        path = self._path(key)
        return int(self._call("stat", key, lambda: self.fs.size(path)))

    def list(self, prefix: str) -> list[str]:
        """Keys of every file under prefix (recursively), relative to the store's root."""
        base = self.root.rstrip("/")

        def walk() -> list[str]:
            try:
                found = self.fs.find(self._path(prefix))
            except FileNotFoundError as err:
                if bucket_missing(err):
                    raise
                return []
            return sorted(p[len(base) + 1 :] if p.startswith(base + "/") else p for p in found)

        return self._call("list", prefix, walk)


def remove_empty(directories: list[Path]) -> None:
    """Remove these directories, deepest first, where they are (still) empty."""
    for directory in directories:
        with contextlib.suppress(OSError):
            directory.rmdir()


def _missing_dirs(path: Path) -> list[Path]:
    """The directories a write under path would create, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _atomic_local(path: Path, write: Callable[[Any], object]) -> None:
    """Write a local file under a temporary name in its directory, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
