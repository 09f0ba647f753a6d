"""One error hierarchy for the whole program, each branch with the exit code it maps to.

    HptuneError                 exit 1 unless a branch says otherwise
    ├── BadInput                exit 2: the spec, the environment, the data, the model code, the
    │                           command line; fixing the input is the only fix
    ├── SearchFailed            exit 1: the search ran and ended in failure (too many failed
    │                           trials, nothing completed, told so by the chief)
    └── InfrastructureError     exit 1: storage, the chief's connection, a port; may work later

The CLI catches `HptuneError` once and prints its message; nothing else prints errors. A trial
that fails is not an error of the process: it is data (its status and text go to trial.json and
the leaderboard), as Keras Tuner keeps failed trials apart from its own exceptions.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

NO_ERROR_TEXT = "(no error text)"


class HptuneError(Exception):
    """An error the program explains in one message; `exit_code` is what the process returns."""

    exit_code: int = EXIT_FAILED


class BadInput(HptuneError):
    """Something the user gave is wrong; the message names it and what would be valid."""

    exit_code = EXIT_BAD_INPUT


class SearchFailed(HptuneError):
    """The search ended in failure; the message is the reason."""


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
