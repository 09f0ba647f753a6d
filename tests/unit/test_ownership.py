"""One live chief per output (job/search/ownership.py), on an in-memory store and a fake clock."""

from __future__ import annotations

import json
import uuid

import pytest

from job.output.layout import OWNER_KEY
from job.search.ownership import OutputInUse, OutputLease
from job.storage import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def store() -> Store:
    return Store(f"memory://owner-{uuid.uuid4().hex}/out")


def lease(store: Store, clock: Clock, identity: str, seconds: float = 60.0) -> OutputLease:
    return OutputLease(store, identity, lease_seconds=seconds, clock=clock, sleep=clock.sleep)


def test_a_second_chief_is_refused_while_the_first_renews(store: Store) -> None:
    clock = Clock()
    first = lease(store, clock, "job tuning/a-chief")
    first.acquire()
    clock.now += 30
    assert first.renew()
    clock.now += 10
    with pytest.raises(OutputInUse) as refused:
        lease(store, clock, "job tuning/b-chief").acquire()
    message = str(refused.value)
    assert "in use by another chief: job tuning/a-chief" in message
    assert "renewed its lease 10 s ago" in message and "runs out in 50 s" in message
    assert "spec.output.uri" in message
    assert json.loads(store.read_text(OWNER_KEY))["token"] == first.token, "the refused chief wrote nothing"


def test_a_dead_holders_lease_is_taken_over_once_it_ran_out(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    lease(store, clock, "chief host:8000").acquire()  # then it dies: no more renewals
    clock.now += 61
    successor = lease(store, clock, "chief host:9000")
    successor.acquire()
    assert json.loads(store.read_text(OWNER_KEY))["holder"] == "chief host:9000"
    assert "its lease ran out" in caplog.text


def test_the_same_chief_restarted_takes_over_at_once(store: Store) -> None:
    clock = Clock()
    lease(store, clock, "job tuning/a-chief").acquire()
    clock.now += 2  # its pod was replaced two seconds later
    restarted = lease(store, clock, "job tuning/a-chief")
    restarted.acquire()
    assert json.loads(store.read_text(OWNER_KEY))["token"] == restarted.token


def test_a_holder_whose_output_was_taken_over_finds_out_at_its_next_renewal(store: Store) -> None:
    clock = Clock()
    old = lease(store, clock, "job tuning/a-chief")
    old.acquire()
    lease(store, clock, "job tuning/a-chief").acquire()  # the Job's next pod, while this one ends
    assert not old.renew()
    assert old.lost.is_set()
    old.release()
    assert store.exists(OWNER_KEY), "a chief that lost the output does not delete the new holder's record"


def test_two_chiefs_at_the_same_moment_one_wins(store: Store) -> None:
    clock = Clock()
    rival = lease(store, clock, "chief host:9000")

    def rival_writes_meanwhile(seconds: float) -> None:
        clock.now += seconds
        rival._write(clock.now)

    first = OutputLease(store, "chief host:8000", 60.0, clock=clock, sleep=rival_writes_meanwhile)
    with pytest.raises(
        OutputInUse, match="taken by another chief starting at the same moment: chief host:9000"
    ):
        first.acquire()


def test_release_gives_the_output_back(store: Store) -> None:
    clock = Clock()
    held = lease(store, clock, "standalone host pid 1")
    held.acquire()
    held.release()
    assert not store.exists(OWNER_KEY)
    lease(store, clock, "standalone host pid 2").acquire()


def test_an_unreadable_record_holds_nothing(store: Store) -> None:
    store.write_text(OWNER_KEY, "{not json")
    lease(store, Clock(), "chief host:8000").acquire()
