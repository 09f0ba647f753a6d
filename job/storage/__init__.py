"""The artifact store: every result hptune writes goes through `Store`, over fsspec.

- `store.py`: `Store`, whole-or-nothing writes and reads under one root URI, with retries
- `errors.py`: `StorageError`, and which storage failures are worth another try

`ArtifactStore` is what the chief needs of a store, `WorkerStore` the narrower part a worker
uses; `Store` satisfies both for every fsspec filesystem (local paths, file://, s3://, gs://,
and memory:// in tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from job.storage.errors import StorageError
from job.storage.store import Store


@runtime_checkable
class WorkerStore(Protocol):
    """What a worker needs of a store: reads, whole-object writes and existence, by key under one
    root. Every failure is a `StorageError` (a missing object on a read is `FileNotFoundError`).
    A worker whose output only the chief reaches writes through the chief (job/wire/relay.py)."""

    uri: str

    def url(self, key: str) -> str: ...

    def check_writable(self) -> None: ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def write_text(self, key: str, text: str) -> None: ...

    def put_file(self, local: Path, key: str) -> None: ...

    def read_bytes(self, key: str) -> bytes: ...

    def read_text(self, key: str) -> str: ...

    def get_file(self, key: str, local: Path) -> None: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...


@runtime_checkable
class ArtifactStore(WorkerStore, Protocol):
    """A whole store, as the chief (or a standalone process) needs it: a worker's operations plus
    copying, deleting, listing and checksums."""

    def copy(self, source: str, key: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def checksum(self, key: str) -> tuple[int, str]: ...

    def list(self, prefix: str) -> list[str]: ...


__all__ = ["ArtifactStore", "StorageError", "Store", "WorkerStore"]
