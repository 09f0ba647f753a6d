"""Running out of memory: how a trial's error says so (XLA, TensorFlow, CUDA, host memory).

A trial whose model does not fit is an outcome of the search (that point of the space is too big
for this machine), not a fault of the worker or the search: it is recorded as failed for memory
and not retried, it does not count toward `maxConsecutiveFailedTrials`, and the process that held
the memory is replaced before its next trial (TensorFlow does not give device memory back).
"""

from __future__ import annotations

# What the libraries themselves write, not the words "out of memory" anywhere (a user's own error
# text may say that of something else).
SIGNS = (
    "RESOURCE_EXHAUSTED",  # XLA (JAX: XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory ...)
    "ResourceExhaustedError",  # TensorFlow
    "OOM when allocating",  # TensorFlow
    "CUDA_ERROR_OUT_OF_MEMORY",  # the CUDA driver
    "MemoryError",  # host memory (numpy: Unable to allocate ...)
)


def out_of_memory(error: str | None) -> bool:
    """Whether a trial's (or a fused group's) error is running out of memory."""
    return error is not None and any(sign in error for sign in SIGNS)
