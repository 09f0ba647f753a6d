"""A stop signal (job/supervision/stopping.py): at once outside a trial; inside one, noted until the
training call in progress ends, unless that call outlasts its grace or a second signal comes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from job.supervision import stopping


@pytest.fixture(autouse=True)
def handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(stopping, "_requested", False)
    stopping.stop_on_sigterm()
    yield
    signal.signal(signal.SIGTERM, previous)


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


def test_outside_a_trial_a_stop_signal_stops_at_once() -> None:
    with pytest.raises(KeyboardInterrupt):
        _sigterm()
    assert not stopping.requested()


def test_inside_a_trial_a_stop_signal_waits_for_the_safe_point_and_a_second_one_does_not() -> None:
    with stopping.deferred():
        _sigterm()  # noted, not raised
        assert stopping.requested()
        with pytest.raises(KeyboardInterrupt):
            _sigterm()
    assert stopping.requested(), "still to be honoured once the trial's result is kept"


def test_a_training_call_that_outlasts_its_grace_is_interrupted_where_it_is() -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), stopping.deferred(grace=0.3):
        _sigterm()
        while time.monotonic() - started < 10:  # a call that never reaches its end
            pass
    assert 0.25 <= time.monotonic() - started < 5


def test_the_grace_ends_with_the_trial() -> None:
    with stopping.deferred(grace=0.2):
        _sigterm()
    time.sleep(0.4)  # the deadline was cancelled with the deferral: nothing raised here
    assert stopping.requested()


def test_without_its_handler_nothing_is_deferred(monkeypatch: pytest.MonkeyPatch) -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # someone else's handler
    with pytest.raises(KeyboardInterrupt), stopping.deferred():
        _sigterm()
