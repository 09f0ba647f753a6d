"""What the chief and its workers agree on besides Keras Tuner's own oracle protocol.

Workers put their id in every call's metadata under `TUNER_ID_KEY`. The `hptune.Control` service
(`CONTROL_SERVICE`) carries lease heartbeats with the running trial's latest epoch metrics, and a
failed trial's error text; its messages are JSON objects:

    Heartbeat     {"tunerId", "trialId", "epoch", "logs"}  ->  {"keep": bool, "prune"?: {"epoch", "reason"}}
    TrialMessage  {"tunerId", "trialId", "message"}        ->  {}
    GiveBack      {"tunerId", "trialId"}                   ->  {"requeued": bool}   (a worker stopping)
    HandOver      {"tunerId", "trialId"}                   ->  {}   (before training: publish the
                                                               checkpoint of the worker that lost it)

With `spec.output.viaChief`, the `hptune.Artifacts` service (`ARTIFACTS_SERVICE`) carries a worker's
reads and writes of the output to the chief, which performs them on its own store
(`job/wire/artifacts.py`; the worker's side is `job/wire/relay.py`):

    Write   a stream: {"key"} as JSON, then the object's bytes in chunks   ->  {}
    Read    {"key"}                                                      ->  a stream of chunks
    Exists  {"key"}                                                      ->  {"exists": bool}
"""

from __future__ import annotations

import json
from typing import Any

TUNER_ID_KEY = "x-hptune-tuner-id"
CONTROL_SERVICE = "hptune.Control"
HEARTBEAT = "Heartbeat"
TRIAL_MESSAGE = "TrialMessage"
GIVE_BACK = "GiveBack"
HAND_OVER = "HandOver"
ARTIFACTS_SERVICE = "hptune.Artifacts"
WRITE, READ, EXISTS = "Write", "Read", "Exists"
CHUNK_BYTES = 1 << 20  # gRPC's default message limit is 4 MiB: objects travel in 1 MiB pieces


def method_path(name: str, service: str = CONTROL_SERVICE) -> str:
    """The gRPC path of a control (or artifacts) method."""
    return f"/{service}/{name}"


def chunks(data: bytes) -> list[bytes]:
    """An object cut into the pieces it travels in (none for an empty one)."""
    return [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]


def tuner_id_of(context: Any) -> str | None:
    """The caller's id from a gRPC call's metadata (`grpc.ServicerContext`); None from plain Keras
    Tuner, which sends none."""
    for key, value in context.invocation_metadata():
        if key == TUNER_ID_KEY:
            return str(value)
    return None


def encode_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode("utf-8")


def decode_json(data: bytes) -> dict[str, Any]:
    value = json.loads(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a control message must be a JSON object")
    return value
