"""job/supervision/processes.py: ports for child processes."""

from __future__ import annotations

import random
import socket

import pytest

from job.supervision.processes import _ephemeral_start, free_port


def test_free_ports_come_from_outside_the_range_the_kernel_hands_out_by_itself() -> None:
    # A port the kernel could also give an outgoing connection (or another bind(0)) between the
    # check and the child's bind would be a race; these ports are never handed out that way.
    for count in (1, 3):
        base = free_port(count)
        assert base + count <= _ephemeral_start()
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
        try:
            for k, s in enumerate(sockets):
                s.bind(("127.0.0.1", base + k))  # all of them free, side by side
        finally:
            for s in sockets:
                s.close()


def test_a_taken_port_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        taken = free_port()
        held.bind(("127.0.0.1", taken))
        held.listen()
        draws = iter([taken, taken, taken + 1])
        monkeypatch.setattr(random, "randint", lambda low, high: next(draws))
        assert free_port() == taken + 1
