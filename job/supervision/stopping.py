"""A stop signal (SIGTERM: a pod being stopped, a spot reclaim, a drain, a supervisor), taken at
once or at a running trial's next safe point.

Outside a trial, SIGTERM ends the process like Ctrl-C: a KeyboardInterrupt, so clean-up runs.
While a checkpointed trial trains (`deferred`), it is only noted (`requested`): the trial stops at
the end of the training call in progress, where its state is whole, checkpoints it there and then
raises the KeyboardInterrupt itself (job/training/trial.py). A call that does not end within
`grace` seconds is interrupted where it is, as outside a trial; so is a second SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

# How long a stop waits for the training call in progress to end: well inside a pod's grace period
# (the chart's 30 s), with room for the checkpoint's write after it.
SAFE_POINT_SECONDS = 10.0

_deferring = False
_requested = False
_grace = SAFE_POINT_SECONDS


def stop_on_sigterm() -> None:
    """Install the handler: SIGTERM is a KeyboardInterrupt, deferred inside `deferred`."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def requested() -> bool:
    """A stop signal arrived while a trial was training and waits for its safe point."""
    return _requested


@contextlib.contextmanager
def deferred(grace: float = SAFE_POINT_SECONDS) -> Iterator[None]:
    """While the body runs, a SIGTERM is noted rather than raised (see the module's text). A stop
    noted stays `requested` after the body, for the caller to honour once it has kept the result."""
    global _deferring, _grace
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        yield  # signals reach the main thread, through our handler only: nothing to defer
        return
    previous = signal.signal(signal.SIGALRM, _on_deadline)
    _deferring, _grace = True, grace
    try:
        yield
    finally:
        _deferring = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _deferring and not _requested:
        _requested = True
        signal.setitimer(signal.ITIMER_REAL, _grace)  # the safe point must come within the grace
        return
    raise KeyboardInterrupt


def _on_deadline(signum: int, frame: FrameType | None) -> None:
    if _deferring:
        raise KeyboardInterrupt
