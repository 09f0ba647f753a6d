"""One error hierarchy for the whole program, each branch with the exit code it maps to.

    HptuneError                 exit 1 unless a branch says otherwise
    ├── BadInput                exit 2: the spec, the environment, the data, the model code, the
    │                           command line, a storage location that refuses us (no such
    │                           bucket, access denied); fixing the input is the only fix
    ├── SearchFailed            exit 3: the search ran and ended in failure (too many failed
    │                           trials, nothing completed), for good: running it again changes
    │                           nothing
    └── InfrastructureError     exit 1: storage, a port, the Kubernetes API; may work later
        └── ChiefUnreachable    exit 4: a worker found no chief within chiefWaitSeconds

The exit codes are a contract with Kubernetes' Job controller: `EXIT_CODES` says what each means
and what the chart's `podFailurePolicy` does with it (`scripts/render_manifests.py` generates the
rules from it; `tests/unit/test_exit_codes.py` evaluates them for every code).

The CLI catches `HptuneError` once and prints its message; nothing else prints errors. A trial
that fails is not an error of the process: it is data (its status and text go to trial.json and
the leaderboard), as Keras Tuner keeps failed trials apart from its own exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SEARCH_FAILED = 3
EXIT_CHIEF_UNREACHABLE = 4
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ExitCode:
    """One exit code of the contract, and what the Job controller does with it, per role.

    Actions are podFailurePolicy actions: FailJob, FailIndex (the worker Job's index only), Ignore
    (not counted against the retry limit), or Count (the default: a counted retry).
    """

    code: int
    meaning: str
    chief: str
    worker: str


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(
        EXIT_OK, "success (a worker: no trial left for it, or the search is over)", "Complete", "Complete"
    ),
    ExitCode(
        EXIT_FAILED, "infrastructure failed (storage, a port, the API); may work later", "Count", "Count"
    ),
    ExitCode(
        EXIT_BAD_INPUT,
        "bad input (spec, environment, data, model code, a storage location that refuses us)",
        "FailJob",
        "FailIndex",
    ),
    ExitCode(EXIT_SEARCH_FAILED, "the search failed for good (or had already failed)", "FailJob", "FailJob"),
    ExitCode(
        EXIT_CHIEF_UNREACHABLE,
        "a worker found no chief within chiefWaitSeconds (it is restarted, its index kept)",
        "Count",
        "Ignore",
    ),
    ExitCode(EXIT_INTERRUPTED, "stopped by a signal (SIGTERM at a deadline, Ctrl-C)", "Count", "Count"),
)

NO_ERROR_TEXT = "(no error text)"


class HptuneError(Exception):
    """An error the program explains in one message; `exit_code` is what the process returns."""

    exit_code: int = EXIT_FAILED


class BadInput(HptuneError):
    """Something the user gave is wrong; the message names it and what would be valid."""

    exit_code = EXIT_BAD_INPUT


class SearchFailed(HptuneError):
    """The search ended in failure; the message is the reason."""

    exit_code = EXIT_SEARCH_FAILED


class InfrastructureError(HptuneError):
    """Something the search depends on (storage, the chief, a port) failed."""


def last_line(text: str | None, limit: int | None = None) -> str:
    """The last non-empty line of an error text (a traceback ends with the error), at most
    `limit` characters; `NO_ERROR_TEXT` when there is none."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    last = lines[-1] if lines else NO_ERROR_TEXT
    if limit is not None and len(last) > limit:
        return last[: limit - 3] + "..."
    return last
