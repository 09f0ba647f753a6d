"""A worker's output, reached through its chief (`spec.output.viaChief`).

`ChiefStore` is the worker's artifact store when the output is somewhere only the chief can reach:
each read and write is a call on the chief's `hptune.Artifacts` service
(`job/wire/artifacts.py`), over the worker's connection to the chief, with the same retries
and the same `chiefWaitSeconds` bound as its oracle calls. A worker writes its staged attempt files
and reads the search's status and published trial files; the listing, copying and deleting a worker
of a plain Keras Tuner chief would need are refused, since a plain chief has no such service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from job.storage.errors import StorageError, StorageRefused
from job.wire.protocol import (
    ARTIFACTS_SERVICE,
    EXISTS,
    READ,
    WRITE,
    chunks,
    decode_json,
    encode_json,
    method_path,
)
from job.wire.remote import ChiefError, RemoteOracle

TRANSFER_TIMEOUT_SECONDS = 600.0  # one object's upload or download, a model of hundreds of MiB


class ChiefStore:
    """The `WorkerStore` of a worker whose output only its chief reaches."""

    def __init__(self, oracle: RemoteOracle, uri: str) -> None:
        self.oracle = oracle
        self.uri = uri.rstrip("/") or uri  # the chief's output, for messages
        channel = oracle.channel
        self._write = channel.stream_unary(method_path(WRITE, ARTIFACTS_SERVICE))
        self._read = channel.unary_stream(method_path(READ, ARTIFACTS_SERVICE))
        self._exists = channel.unary_unary(method_path(EXISTS, ARTIFACTS_SERVICE))

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}" if key else self.uri

    def check_writable(self) -> None:
        """The chief checks its own output; a worker writes nothing until it has a trial."""

    def write_bytes(self, key: str, data: bytes) -> None:
        pieces = [encode_json({"key": key}), *chunks(data)]

        def write(request: list[bytes], timeout: float, metadata: Any) -> bytes:
            reply: bytes = self._write(
                iter(request), timeout=max(timeout, TRANSFER_TIMEOUT_SECONDS), metadata=metadata
            )
            return reply

        self._relayed("write", key, write, pieces)

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def put_file(self, local: Path, key: str) -> None:
        self.write_bytes(key, local.read_bytes())

    def read_bytes(self, key: str) -> bytes:
        def read(request: bytes, timeout: float, metadata: Any) -> bytes:
            pieces: Iterator[bytes] = self._read(
                request, timeout=max(timeout, TRANSFER_TIMEOUT_SECONDS), metadata=metadata
            )
            return b"".join(pieces)

        data: bytes = self._relayed("read", key, read, encode_json({"key": key}))
        return data

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def get_file(self, key: str, local: Path) -> None:
        data = self.read_bytes(key)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)

    def exists(self, key: str) -> bool:
        reply = self._relayed("look up", key, self._exists, encode_json({"key": key}))
        return bool(decode_json(reply).get("exists"))

    def size(self, key: str) -> int:
        return len(self.read_bytes(key))

    def _relayed(self, operation: str, key: str, call: Any, request: Any) -> Any:
        try:
            return self.oracle.call(f"Artifacts {operation} {key}", call, request)
        except ChiefError as err:
            if err.code == grpc.StatusCode.NOT_FOUND:
                raise FileNotFoundError(self.url(key)) from None
            if err.code == grpc.StatusCode.UNIMPLEMENTED:
                raise StorageRefused(
                    f"spec.output.viaChief: the chief at {self.oracle.target} does not take workers' "
                    "results (a plain Keras Tuner chief?); give every process an output it can "
                    "reach itself (an object store) and set viaChief to false"
                ) from None
            raise StorageError(f"cannot {operation} {self.url(key)} through the chief: {err}") from None
