"""job/cli.py: the lines a process prints when its part of the search ends."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from job.cli import _print_summary
from job.environment import Chief, Role, Standalone, Worker
from job.roles import Summary


def printed(summary: Summary) -> str:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    _print_summary(summary, console, console)
    return out.getvalue()


@pytest.mark.parametrize("tuner_id", ["tuner0", "w1", "gpu-node-3"])
def test_a_worker_says_how_many_trials_it_ran_whatever_its_id(tuner_id: str) -> None:
    summary = Summary(role=Worker(tuner_id, "127.0.0.1", 8000), ok=True, trials_completed=3, output="/out/")
    assert printed(summary) == f"{tuner_id}: done, 3 trials run here\n"


@pytest.mark.parametrize("role", [Standalone(), Chief(None, None)])
def test_a_search_that_had_ended_already_says_so(role: Role) -> None:
    summary = Summary(role=role, ok=True, reason="the search had already completed", output="/out/")
    assert printed(summary) == "the search had already completed: results in /out/\n"
