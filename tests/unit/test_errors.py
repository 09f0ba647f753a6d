"""One error hierarchy, one exit code per branch, caught once in the CLI: what a user (and the Job
controller reading exit codes) sees for each kind of failure, in process, with no search run."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from job import cli
from job.cluster.status import StatusError
from job.environment import BadEnvironment
from job.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHIEF_UNREACHABLE,
    EXIT_FAILED,
    EXIT_SEARCH_FAILED,
    BadInput,
    HptuneError,
    InfrastructureError,
    SearchFailed,
    last_line,
)
from job.observability.metrics import MetricsError
from job.observability.show import NotVerified
from job.search.snapshot import ResumeConflict
from job.spec import SpecError
from job.storage import StorageError
from job.training.data import DataError
from job.training.space import BuilderError
from job.training.trial import TrialFailure
from job.wire.chief import ServeError
from job.wire.remote import ChiefError, ChiefUnreachable


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SpecError, EXIT_BAD_INPUT),
        (BadEnvironment, EXIT_BAD_INPUT),
        (DataError, EXIT_BAD_INPUT),
        (BuilderError, EXIT_BAD_INPUT),
        (ResumeConflict, EXIT_BAD_INPUT),
        (cli.UsageError, EXIT_BAD_INPUT),
        (SearchFailed, EXIT_SEARCH_FAILED),
        (NotVerified, EXIT_FAILED),
        (StorageError, EXIT_FAILED),
        (ChiefUnreachable, EXIT_CHIEF_UNREACHABLE),
        (ChiefError, EXIT_FAILED),
        (ServeError, EXIT_FAILED),
        (MetricsError, EXIT_FAILED),
        (StatusError, EXIT_FAILED),
    ],
)
def test_every_error_the_program_raises_has_its_exit_code(error: type[HptuneError], code: int) -> None:
    assert issubclass(error, HptuneError)
    assert error.exit_code == code
    branch = BadInput if code == EXIT_BAD_INPUT else (SearchFailed, InfrastructureError, NotVerified)
    assert issubclass(error, branch)


def test_a_failed_trial_is_data_not_a_process_error() -> None:
    assert not issubclass(TrialFailure, HptuneError)


def test_the_cli_prints_one_line_and_returns_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["validate", str(tmp_path / "absent.yaml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "absent.yaml" in err and "no such file" in err
    assert "Traceback" not in err


def test_show_refuses_a_location_that_holds_no_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["show", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "no leaderboard.csv" in err and "spec.output.uri" in err


def test_a_search_failure_says_so() -> None:
    console = Console(stderr=True, record=True, width=200)
    assert cli._error(console, SearchFailed("3 trials failed in a row")) == EXIT_SEARCH_FAILED
    assert console.export_text().strip() == "error: the search failed: 3 trials failed in a row"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: loss is NaN\n\n',
            "ValueError: loss is NaN",
        ),
        ("", "(no error text)"),
        (None, "(no error text)"),
        ("one line", "one line"),
    ],
)
def test_the_last_line_of_an_error_text(text: str | None, line: str) -> None:
    assert last_line(text) == line


def test_the_last_line_is_bounded() -> None:
    assert last_line("x" * 50, limit=10) == "xxxxxxx..."
