"""Worker restarts that keep a long search's memory flat.

TensorFlow keeps part of every model a process has trained: the traced graphs of each `fit` stay
referenced from its runtime after `keras.backend.clear_session()`, several MiB per trial. Over
hundreds of trials a worker would grow until its pod is killed for memory. So a worker watches its
resident memory; once it has grown by `spec.distribution.restartOnMemoryGrowth` beyond its size
after its first trial, it finishes the trial in hand, reports it, and replaces itself with a fresh
copy of the same program (`os.execv`: same process id, command line and worker id). The fresh copy
loads the data again and asks the chief for the next trial; it holds no trial in between.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from job.environment import RESTARTS_VARIABLE


def resident_bytes(pid: int | str = "self") -> int:
    """A process's resident set size (this one's by default); 0 where /proc cannot tell (a process
    gone, or no /proc: a worker never restarts there)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class MemoryWatch:
    """Says when a worker has outgrown its first trial's memory by more than `growth` (a fraction)."""

    growth: float
    baseline: int = 0
    last: int = 0

    def outgrown(self) -> bool:
        """Call between trials. The first call sets the baseline."""
        self.last = resident_bytes()
        if not self.growth or not self.last:
            return False
        if not self.baseline:
            self.baseline = self.last
            return False
        return self.last > self.baseline * (1 + self.growth)


def restart(restarts: int) -> NoReturn:
    """Replace this process with a fresh run of the same command line."""
    os.environ[RESTARTS_VARIABLE] = str(restarts + 1)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os.execv(sys.executable, sys.orig_argv)
