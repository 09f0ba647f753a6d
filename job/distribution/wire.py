"""What the chief and its workers agree on besides Keras Tuner's own oracle protocol.

Workers put their id in every call's metadata under `TUNER_ID_KEY`. The `hptune.Control` service
(`CONTROL_SERVICE`) carries lease heartbeats with the running trial's latest epoch metrics, and a
failed trial's error text; its messages are JSON objects:

    Heartbeat     {"tunerId", "trialId", "epoch", "logs"}  ->  {"keep": bool, "prune"?: {"epoch", "reason"}}
    TrialMessage  {"tunerId", "trialId", "message"}        ->  {}
"""

from __future__ import annotations

import json
from typing import Any

TUNER_ID_KEY = "x-hptune-tuner-id"
CONTROL_SERVICE = "hptune.Control"
HEARTBEAT = "Heartbeat"
TRIAL_MESSAGE = "TrialMessage"


def method_path(name: str) -> str:
    """The gRPC path of a control method."""
    return f"/{CONTROL_SERVICE}/{name}"


def encode_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode("utf-8")


def decode_json(data: bytes) -> dict[str, Any]:
    value = json.loads(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("a control message must be a JSON object")
    return value
