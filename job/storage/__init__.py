"""The artifact store: every result hptune writes goes through `Store`, over fsspec.

- `store.py`: `Store`, whole-or-nothing writes and reads under one root URI, with retries
- `errors.py`: `StorageError`, and which storage failures are worth another try
- `layout.py`: the keys of every artifact under the output (search.json, trials/, best/, ...)

`ArtifactStore` is what the rest of the program needs of a store; `Store` satisfies it for every
fsspec filesystem (local paths, file://, s3://, gs://, and memory:// in tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from job.storage.errors import StorageError
from job.storage.store import Store


@runtime_checkable
class ArtifactStore(Protocol):
    """Reads and writes artifacts by key under one root; every failure is a `StorageError`
    (a missing object on a read is `FileNotFoundError`)."""

    uri: str

    def url(self, key: str) -> str: ...

    def check_writable(self) -> None: ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def write_text(self, key: str, text: str) -> None: ...

    def put_file(self, local: Path, key: str) -> None: ...

    def copy(self, source: str, key: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def read_bytes(self, key: str) -> bytes: ...

    def read_text(self, key: str) -> str: ...

    def get_file(self, key: str, local: Path) -> None: ...

    def checksum(self, key: str) -> tuple[int, str]: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]: ...


__all__ = ["ArtifactStore", "StorageError", "Store"]
