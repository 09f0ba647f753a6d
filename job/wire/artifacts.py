"""The chief's side of `spec.output.viaChief`: workers' reads and writes of the output, performed on
the chief's own store.

The output may then be somewhere only the chief reaches (a volume on the chief's pod): a worker
needs no shared filesystem and no storage credentials. A worker may write only its own staged
attempt files (`trials/<id>/attempts/<its id>/<name>`, its id from the call's metadata) and read
only what a worker reads: the search's status and snapshot, the output's owner record and published trial
files (Hyperband's checkpoints). Anything else is refused with PERMISSION_DENIED, naming the key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import grpc

from job.output.layout import OWNER_KEY, SEARCH_STATUS_KEY, SNAPSHOT_KEY, parse_trial_key, speaks_for
from job.storage import ArtifactStore, StorageError
from job.wire.protocol import (
    ARTIFACTS_SERVICE,
    EXISTS,
    READ,
    WRITE,
    chunks,
    decode_json,
    encode_json,
    tuner_id_of,
)

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # one path segment, never "." or ".."


def _segments_safe(key: str) -> bool:
    return all(_SEGMENT.fullmatch(part) for part in key.split("/"))


def writable(key: str, tuner_id: str) -> bool:
    """May the worker `tuner_id` write `key`? Only its own staged attempt files (its fused
    members' among them)."""
    parsed = parse_trial_key(key)
    return (
        parsed is not None
        and _segments_safe(key)
        and parsed.worker is not None
        and speaks_for(tuner_id, parsed.worker)
        and parsed.name != ""
        and "/" not in parsed.name
    )


def readable(key: str) -> bool:
    if key in (SEARCH_STATUS_KEY, SNAPSHOT_KEY, OWNER_KEY):
        return True
    parsed = parse_trial_key(key)
    return parsed is not None and _segments_safe(key) and len(key.split("/")) == 3


class ArtifactService:
    """Answers `hptune.Artifacts` calls from the chief's store."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def write(self, pieces: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        header = decode_json(next(pieces))
        key, tuner_id = str(header.get("key", "")), tuner_id_of(context)
        if tuner_id is None or not writable(key, tuner_id):
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"worker {tuner_id} may not write {key!r} through the chief: only its own "
                f"trials/<id>/attempts/{tuner_id}/<file>",
            )
        data = b"".join(pieces)
        try:
            self.store.write_bytes(key, data)
        except StorageError as err:
            context.abort(grpc.StatusCode.INTERNAL, f"the chief could not write a worker's {key}: {err}")
        log.debug("wrote %s for %s (%d bytes)", key, tuner_id, len(data))
        return b""

    def read(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        key = self._readable_key(request, context)
        try:
            data = self.store.read_bytes(key)
        except FileNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{self.store.url(key)} does not exist")
        except StorageError as err:
            context.abort(grpc.StatusCode.INTERNAL, f"the chief could not read {key}: {err}")
        yield from chunks(data)

    def exists(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        key = self._readable_key(request, context)
        try:
            found = self.store.exists(key)
        except StorageError as err:
            context.abort(grpc.StatusCode.INTERNAL, f"the chief could not look up {key}: {err}")
            raise  # abort raises; this line is not reached
        return encode_json({"exists": found})

    def _readable_key(self, request: bytes, context: grpc.ServicerContext) -> str:
        key = str(decode_json(request).get("key", ""))
        if not readable(key):
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"a worker may not read {key!r} through the chief: only {SEARCH_STATUS_KEY}, "
                f"{SNAPSHOT_KEY}, {OWNER_KEY} and trials/<id>/<file>",
            )
        return key

    def handler(self) -> grpc.GenericRpcHandler:
        # Bytes in and out: each method decodes its own JSON, so chunks pass through untouched.
        return grpc.method_handlers_generic_handler(
            ARTIFACTS_SERVICE,
            {
                WRITE: grpc.stream_unary_rpc_method_handler(self.write),
                READ: grpc.unary_stream_rpc_method_handler(self.read),
                EXISTS: grpc.unary_unary_rpc_method_handler(self.exists),
            },
        )
