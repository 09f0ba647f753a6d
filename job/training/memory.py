"""Running out of memory: how a trial's error says so (XLA, TensorFlow, CUDA, host memory).

A trial whose model does not fit is an outcome of the search (that point of the space is too big
for this machine), not a fault of the worker or the search: it is recorded as failed for memory
and not retried, it does not count toward `maxConsecutiveFailedTrials`, and the process that held
the memory is replaced before its next trial (TensorFlow does not give device memory back).
"""

from __future__ import annotations

SIGNS = (
    "RESOURCE_EXHAUSTED",  # XLA (JAX), and TensorFlow's status code
    "OOM when allocating",  # TensorFlow
    "out of memory",  # CUDA
    "Out of memory",
    "MemoryError",  # host memory (numpy: Unable to allocate ...)
)


def out_of_memory(error: str | None) -> bool:
    """Whether a trial's (or a fused group's) error is running out of memory."""
    return error is not None and any(sign in error for sign in SIGNS)
