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
answers, throttling) are retried with exponential backoff and jitter for `Retry.seconds` (60 s by
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
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fsspec.core import url_to_fs

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEME_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
CHUNK_BYTES = 1 << 20
# Written last into best/, listing every file there: its presence means best/ is complete.
MANIFEST_KEY = "best/manifest.json"


class StorageError(Exception):
    """A storage operation failed for good. The message names the URI and the operation."""


@dataclass(frozen=True)
class Retry:
    """How long transient errors are retried: exponential backoff with jitter, within a budget.

    The n-th retry waits ``min(max_delay_seconds, base_seconds * 2**n)`` scaled by a random factor
    in [0.5, 1]; no retry starts later than `seconds` after the operation's first attempt. The
    defaults give about nine attempts over a minute (waits of about 0.5, 1, 2, 4, 8, 16, 16, ...
    seconds). ``Retry(seconds=0)`` tries once.
    """

    seconds: float = 60.0
    base_seconds: float = 0.5
    max_delay_seconds: float = 16.0

    def delay(self, retry: int, elapsed: float) -> float | None:
        """Seconds to wait before retry number `retry` (0 for the first), or None: give up."""
        remaining = self.seconds - elapsed
        if remaining <= 0:
            return None
        backoff = min(self.max_delay_seconds, self.base_seconds * 2**retry)
        return min(remaining, backoff * random.uniform(0.5, 1.0))


DEFAULT_RETRY = Retry()

# Error codes of S3 (and S3-compatible) answers worth another try.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "OperationAborted",
        "PriorRequestNotComplete",
    }
)
# Exception classes (by name, anywhere in the class hierarchy) from the S3 and HTTP clients that
# mean the request did not get an answer: botocore's connection and HTTP errors, aiohttp's
# connection, disconnection and timeout errors, fsspec's timeout.
TRANSIENT_CLASSES = frozenset(
    {
        "ConnectionError",  # botocore's (endpoint, proxy, connect timeout) as well as Python's
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "HTTPClientError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientConnectionError",
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ClientPayloadError",
        "FSTimeoutError",
    }
)
# ... except these, which no retry fixes.
FINAL_CLASSES = frozenset(
    {
        "SSLError",
        "ClientSSLError",
        "ClientConnectorCertificateError",
        "CertificateError",
        "NoCredentialsError",
        "PartialCredentialsError",
        "ParamValidationError",
    }
)
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EPIPE,
        errno.EAGAIN,
        errno.EBUSY,  # s3fs: ServiceUnavailable, SlowDown, OperationAborted
        getattr(errno, "EREMOTEIO", errno.EIO),  # s3fs: InternalError
    }
)
TRANSIENT_PHRASES = (
    "timed out",
    "connection reset",
    "connection refused",
    "service unavailable",
    "slow down",
    "reduce your request rate",
    "too many requests",
    "throttl",
)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _response(err: BaseException) -> tuple[str | None, int | None]:
    """The error code and HTTP status of a botocore ClientError (None, None for anything else)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None, None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (str(code) if code else None), (int(status) if isinstance(status, int) else None)


def _http_status(err: BaseException) -> int | None:
    for name in ("status", "status_code", "code"):
        value = getattr(err, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _classify(err: BaseException) -> bool | None:
    """True: transient; False: final; None: this error alone does not say."""
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & FINAL_CLASSES:
        return False
    if isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    if isinstance(err, FileExistsError):
        return False
    code, status = _response(err)
    if code is not None or status is not None:
        return code in TRANSIENT_CODES or status in (408, 429) or (status or 0) >= 500
    status = _http_status(err)
    if status is not None:
        return status in (408, 429) or status >= 500
    if names & TRANSIENT_CLASSES or isinstance(err, ConnectionError | TimeoutError):
        return True
    if isinstance(err, OSError) and err.errno in TRANSIENT_ERRNOS:
        return True
    text = str(err).lower()
    if any(phrase in text for phrase in TRANSIENT_PHRASES):
        return True
    return None


def is_transient(err: BaseException) -> bool:
    """Connection failures, timeouts, throttling and 5xx answers are worth another try.

    The error and its causes are read outermost first: s3fs turns an S3 answer into a Python
    error (NoSuchBucket into FileNotFoundError, AccessDenied into PermissionError, SlowDown into
    OSError EBUSY) with the botocore error as its cause.
    """
    for link in _chain(err):
        verdict = _classify(link)
        if verdict is not None:
            return verdict
    return False


def _bucket_missing(err: BaseException) -> bool:
    return any(_response(link)[0] == "NoSuchBucket" for link in _chain(err))


def _missing(err: BaseException) -> bool:
    """The object is not there (as opposed to its bucket)."""
    return isinstance(err, FileNotFoundError) and not _bucket_missing(err)


def describe(err: BaseException) -> str:
    """One line for a storage error: the S3 error code and message where there is one."""
    for link in _chain(err):
        code, _ = _response(link)
        if code is not None:
            message = getattr(link, "response", {}).get("Error", {}).get("Message") or str(link)
            return f"{code}: {message}"
    return f"{type(err).__name__}: {err}"


class Store:
    """Read and write artifacts under one root URI.

    `retry` bounds how long transient errors are retried (`Retry`); `endpoint_url` points s3://
    at an S3-compatible server (without it, the S3 client's own AWS_ENDPOINT_URL_S3 /
    AWS_ENDPOINT_URL, or AWS itself).
    """

    def __init__(self, uri: str, retry: Retry = DEFAULT_RETRY, endpoint_url: str | None = None) -> None:
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
            raise StorageError(f"{uri}: no filesystem for {scheme}:// ({err}){hint}") from None
        except ValueError as err:
            raise StorageError(f"{uri}: not a usable storage URI: {err}") from None
        if scheme in ("s3", "s3a"):
            self.fs.retries = 1
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        if not self.local and not self.root.strip("/"):
            raise StorageError(f"{uri}: no bucket in the URI; use {scheme}://BUCKET/PREFIX")

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}" if key else self.uri

    def check_writable(self) -> None:
        """Write and remove a small object, so an output that cannot be written fails the job
        before any training rather than after it."""
        key = f".hptune-write-check-{uuid.uuid4().hex}"
        created = _missing_dirs(Path(self.root)) if self.local else []
        try:
            self.write_bytes(key, b"ok")
            self.delete(key)
        finally:
            for directory in created:  # leave no empty output behind if the job stops here
                with contextlib.suppress(OSError):
                    directory.rmdir()

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}" if key else self.root

    def _call(self, operation: str, key: str, fn: Callable[[], T]) -> T:
        """Run fn, retrying transient errors within the retry budget.

        A missing object on a read raises FileNotFoundError (the caller decides what that means);
        every other failure raises StorageError naming the operation and the URI.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if not self.local:
                with contextlib.suppress(Exception):
                    self.fs.invalidate_cache()
            try:
                return fn()
            except Exception as err:
                if _missing(err) and operation in ("read", "stat"):
                    raise FileNotFoundError(errno.ENOENT, "no such object", self.url(key)) from err
                if not is_transient(err):
                    raise StorageError(f"{operation} {self.url(key)} failed: {describe(err)}") from err
                elapsed = time.monotonic() - started
                delay = self.retry.delay(attempt - 1, elapsed)
                if delay is None:
                    raise StorageError(
                        f"{operation} {self.url(key)} failed after {attempt} attempts over "
                        f"{elapsed:.0f} s (retry budget {self.retry.seconds:g} s): {describe(err)}"
                    ) from err
                log.warning(
                    "%s %s failed (%s); retrying in %.1f s", operation, self.url(key), describe(err), delay
                )
                time.sleep(delay)

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
                if _bucket_missing(err):
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
                if _bucket_missing(err):
                    raise
                return []
            return sorted(p[len(base) + 1 :] if p.startswith(base + "/") else p for p in found)

        return self._call("list", prefix, walk)


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
