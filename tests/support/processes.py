"""Real chief and worker processes on loopback, as a test drives them (start, kill, read logs)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from job.supervision.processes import free_port
from tests.support.commands import hptune_env

PLAIN_SCRIPT = Path(__file__).with_name("plain_keras_tuner.py")
# A trial starting, as an hptune worker and as tests/support/plain_keras_tuner.py log it.
RUNNING_TRIAL = re.compile(r": running trial (\w+) \(|^plain: running trial (\w+)$", re.MULTILINE)


class Proc:
    """One `hptune run` process (or another command) with its log in a file."""

    def __init__(
        self, name: str, spec: Path, log_dir: Path, env: dict[str, str], command: list[str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "job", "run", str(spec), "--metrics-port", "0"],
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no {pattern!r} in its log:\n{self.log[-3000:]}")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout} s:\n{self.log[-3000:]}"
            ) from None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
            self.process.wait()
        self.log_file.close()


class Search:
    """A chief and workers on a free loopback port, all killed when the test ends."""

    def __init__(self, spec: Path, log_dir: Path) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.port = free_port()
        self.procs: list[Proc] = []

    def chief(self) -> Proc:
        return self._start(
            "chief"
            if not any(p.name.startswith("chief") for p in self.procs)
            else f"chief-{len(self.procs)}",
            "chief",
        )

    def worker(self, index: int) -> Proc:
        return self._start(f"tuner{index}", f"tuner{index}")

    def plain(self, tuner_id: str, **settings: str) -> Proc:
        """tests/support/plain_keras_tuner.py (unmodified Keras Tuner) as `tuner_id`: the chief when it is
        "chief", else a worker; `settings` are its PLAIN_* variables."""
        directory = self.log_dir / f"plain-{tuner_id}"
        env = {"PLAIN_DIRECTORY": str(directory), **settings}
        return self._start(f"plain-{tuner_id}", tuner_id, [sys.executable, str(PLAIN_SCRIPT)], env)

    def _start(
        self, name: str, tuner_id: str, command: list[str] | None = None, extra: dict[str, str] | None = None
    ) -> Proc:
        env = hptune_env(
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(self.port),
            **(extra or {}),
        )
        proc = Proc(name, self.spec, self.log_dir, env, command)
        self.procs.append(proc)
        return proc

    def runs_per_trial(self) -> dict[str, int]:
        """How many times each trial id was started on any worker (from the workers' logs)."""
        counts: dict[str, int] = {}
        for proc in self.procs:
            for found in RUNNING_TRIAL.finditer(proc.log):
                trial_id = found.group(1) or found.group(2)
                counts[trial_id] = counts.get(trial_id, 0) + 1
        return counts


@contextlib.contextmanager
def search(spec: Path, log_dir: Path) -> Iterator[Search]:
    s = Search(spec, log_dir)
    try:
        yield s
    finally:
        for proc in s.procs:
            proc.close()
