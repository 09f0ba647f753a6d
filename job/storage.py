"""The artifact store: every result hptune writes goes through here, over fsspec.

`output.uri` may be a local path, ``file://``, ``s3://`` or ``gs://``. Each write lands whole or
not at all: local files are written to a temporary name and renamed; object stores get one PUT
per object. Transient errors are retried with exponential backoff and jitter (see `Retry`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import fsspec
from fsspec.core import url_to_fs

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEME_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


class StorageError(Exception):
    """A storage operation failed for good. The message names the URI and the operation."""


@dataclass(frozen=True)
class Retry:
    """Retry policy for transient errors: attempts spaced base*2^n seconds, capped, with jitter.

    The defaults retry for about a minute (0.5 + 1 + 2 + 4 + 8 + 16 + 16 + 16 seconds) before
    an operation is given up.
    """

    attempts: int = 9
    base_seconds: float = 0.5
    max_seconds: float = 16.0

    def delays(self) -> Iterator[float]:
        for n in range(self.attempts - 1):
            delay = min(self.max_seconds, self.base_seconds * 2**n)
            yield delay * random.uniform(0.5, 1.0)


def is_transient(err: BaseException) -> bool:
    """Connection failures, timeouts, throttling and 5xx answers are worth another try."""
    if isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    text = f"{type(err).__name__} {err}".lower()
    markers = (
        "connect",
        "timeout",
        "timed out",
        "throttl",
        "slowdown",
        "slow down",
        "503",
        "500",
        "502",
        "504",
        "internal error",
        "service unavailable",
        "reset by peer",
        "broken pipe",
        "temporarily",
        "too many requests",
        "429",
        "endpointconnectionerror",
        "server disconnected",
    )
    return any(m in text for m in markers)


class Store:
    """Read and write artifacts under one root URI."""

    def __init__(self, uri: str, retry: Retry = Retry(), endpoint_url: str | None = None) -> None:
        self.uri = uri.rstrip("/") or uri
        self.retry = retry
        options = {}
        scheme = uri.split("://", 1)[0] if "://" in uri else "file"
        if endpoint_url and scheme in ("s3", "s3a"):
            options["client_kwargs"] = {"endpoint_url": endpoint_url}
        try:
            self.fs, self.root = url_to_fs(self.uri, **options)
        except ImportError as err:
            extra = SCHEME_EXTRAS.get(scheme)
            hint = f"; install it with: pip install 'hptune[{extra}]'" if extra else ""
            raise StorageError(f"{uri}: no filesystem for {scheme}:// ({err}){hint}") from None
        except ValueError as err:
            raise StorageError(f"{uri}: not a usable storage URI: {err}") from None
        self.local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        if not self.local and not self.root.strip("/"):
            raise StorageError(f"{uri}: no bucket in the URI; use {scheme}://BUCKET/PREFIX")

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}" if key else self.uri

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}" if key else self.root

    def _call(self, operation: str, key: str, fn: Callable[[], T]) -> T:
        delays = self.retry.delays()
        while True:
            try:
                return fn()
            except Exception as err:
                if not is_transient(err):
                    raise StorageError(
                        f"{operation} {self.url(key)} failed: {type(err).__name__}: {err}"
                    ) from err
                delay = next(delays, None)
                if delay is None:
                    raise StorageError(
                        f"{operation} {self.url(key)} failed after {self.retry.attempts} attempts: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                log.warning("%s %s failed (%s); retrying in %.1f s", operation, self.url(key), err, delay)
                with contextlib.suppress(Exception):
                    self.fs.invalidate_cache()
                time.sleep(delay)

    # -- writes ------------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.local:
            self._call("write", key, lambda: _atomic_local_write(Path(path), data))
        else:
            self._call("write", key, lambda: self.fs.pipe_file(path, data))

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def put_file(self, local: Path, key: str) -> None:
        """Upload a local file (a saved model) under key, whole or not at all."""
        path = self._path(key)
        if self.local:
            self._call("write", key, lambda: _atomic_local_copy(local, Path(path)))
        else:
            self._call("write", key, lambda: self.fs.put_file(str(local), path))

    def delete(self, key: str) -> None:
        path = self._path(key)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path, recursive=True)

        self._call("delete", key, remove)

    # -- reads -------------------------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return self._call("read", key, lambda: self.fs.cat_file(path))
        except StorageError as err:
            if isinstance(err.__cause__, FileNotFoundError):
                raise FileNotFoundError(self.url(key)) from None
            raise

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def get_file(self, key: str, local: Path) -> None:
        path = self._path(key)
        self._call("read", key, lambda: self.fs.get_file(path, str(local)))

    def exists(self, key: str) -> bool:
        path = self._path(key)

        def check() -> bool:
            self.fs.invalidate_cache()
            return bool(self.fs.exists(path))

        return self._call("stat", key, check)

    def size(self, key: str) -> int:
        return int(self._call("stat", key, lambda: self.fs.size(self._path(key))))

    def list(self, prefix: str) -> list[str]:
        """Keys of every file under prefix (recursively), relative to the store's root."""
        base = self.root.rstrip("/")

        def walk() -> list[str]:
            self.fs.invalidate_cache()
            try:
                found = self.fs.find(self._path(prefix))
            except FileNotFoundError:
                return []
            return sorted(p[len(base) + 1 :] if p.startswith(base) else p for p in found)

        return self._call("list", prefix, walk)


def _atomic_local_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_local_copy(source: Path, path: Path) -> None:
    _atomic_local_write(path, source.read_bytes())


def open_store(uri: str) -> Store:
    return Store(uri)


__all__ = ["Retry", "StorageError", "Store", "fsspec", "is_transient", "open_store"]
