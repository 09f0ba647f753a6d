"""`hptune local`: a chief and N workers as local processes on loopback, supervised.

Each child is `hptune run` with the Keras Tuner role variables set, in its own process group.
Their logs are interleaved with a `[chief]` / `[tuner<k>]` prefix. The command exits with the
chief's status: 0 only when the search is complete. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.text import Text

from job.metrics import Progress, progress_from_text
from job.progress import LiveProgress
from job.spec import JobSpec

log = logging.getLogger(__name__)

ROLE_VARIABLES = (
    "HPTUNE_TRIAL_SLOT",
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
    "JOB_COMPLETION_INDEX",
)
STOP_GRACE_SECONDS = 5.0


def free_port(count: int = 1) -> int:
    """A free loopback port; with count > 1, the first of `count` consecutive free ports."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if count == 1 or all(_is_free(base + k) for k in range(1, count)):
            return base
    raise OSError(f"no {count} consecutive free ports on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    metrics_port: int
    reader: threading.Thread | None = field(default=None)

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


def _command(spec: Path, metrics_port: int, output: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "job", "run", str(spec), "--metrics-port", str(metrics_port)]
    return [*cmd, "--output", output] if output else cmd


def child_environment(role: dict[str, str]) -> dict[str, str]:
    """This process's environment without role variables, plus `role`."""
    env = {k: v for k, v in os.environ.items() if k not in ROLE_VARIABLES}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **role}


def start(name: str, cmd: list[str], env: dict[str, str], metrics_port: int, console: Console) -> Child:
    process = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    child = Child(name, process, metrics_port)
    child.reader = threading.Thread(
        target=_relay, args=(name, process.stdout, console), name=f"relay-{name}", daemon=True
    )
    child.reader.start()
    return child


def _relay(name: str, stream: IO[bytes] | None, console: Console) -> None:
    if stream is None:
        return
    style = "cyan" if name == "chief" else "magenta"
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip()
        console.print(Text.assemble((f"[{name}] ", style), line), highlight=False, soft_wrap=True)


def stop(children: list[Child], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every child's process group, then SIGKILL what is left after `grace` seconds."""
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            child.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def write_targets(path: Path, job: JobSpec, children: list[Child]) -> None:
    """A Prometheus file_sd target list for every process's /metrics, labelled by role."""
    slots = job.spec.distribution.trials_per_gpu
    groups = []
    for child in children:
        is_chief = child.name == "chief"
        processes = (
            [(child.name, child.metrics_port)]
            if is_chief or slots == 1
            else [(f"{child.name}-{k}", child.metrics_port + k) for k in range(slots)]
        )
        groups += [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "hptune_search": job.name,
                    "role": "chief" if is_chief else "worker",
                    "process": name,
                },
            }
            for name, port in processes
        ]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(groups, indent=2))
    tmp.replace(path)


def run_local(
    job: JobSpec,
    spec: Path,
    workers: int,
    out: Console,
    err: Console,
    output: str | None = None,
    targets: Path | None = None,
) -> int:
    oracle_port = free_port()
    chief = start(
        "chief",
        [*_command(spec, chief_metrics := free_port(), output), "--workers", str(workers)],
        child_environment(
            {
                "KERASTUNER_TUNER_ID": "chief",
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": str(oracle_port),
            }
        ),
        chief_metrics,
        err,
    )
    children = [chief]
    for index in range(workers):
        name = f"tuner{index}"
        metrics_port = free_port(job.spec.distribution.trials_per_gpu)
        children.append(
            start(
                name,
                _command(spec, metrics_port, output),
                child_environment(
                    {
                        "KERASTUNER_TUNER_ID": name,
                        "KERASTUNER_ORACLE_IP": "127.0.0.1",
                        "KERASTUNER_ORACLE_PORT": str(oracle_port),
                    }
                ),
                metrics_port,
                err,
            )
        )
    if targets is not None:
        write_targets(targets, job, children)
    err.print(
        f"hptune local: chief on 127.0.0.1:{oracle_port} (metrics :{chief_metrics}), "
        f"{workers} worker(s); Ctrl-C stops them all",
        highlight=False,
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if err.is_terminal:
            with LiveProgress(lambda: _scrape(chief_metrics), err):
                code = _supervise(chief, children, job)
        else:
            code = _supervise(chief, children, job)
    except KeyboardInterrupt:
        err.print("stopping the chief and workers...")
        stop(children)
        return 130
    for child in children:
        if child.reader is not None:
            child.reader.join(timeout=5)
    failed_workers = [c.name for c in children[1:] if c.returncode not in (0, None)]
    if failed_workers:
        err.print(f"worker(s) that exited with an error: {', '.join(failed_workers)}", highlight=False)
    if code == 0:
        out.print(f"search complete: results in {output or job.output_uri}", highlight=False)
    else:
        err.print(f"the chief exited with status {code}: the search did not complete", highlight=False)
    return code


def _supervise(chief: Child, children: list[Child], job: JobSpec) -> int:
    """Wait for the chief; then give the workers time to hear 'stop', and stop stragglers."""
    while chief.returncode is None:
        if all(c.returncode is not None for c in children[1:]):
            if any(c.returncode == 2 for c in children[1:]):  # bad input: no worker can run trials
                log.error("the workers refused their input (see their errors); stopping the chief")
                stop([chief])
                return 2
            # Leases must run out and the chief must write its results (storage retries included).
            dist = job.spec.distribution
            wait = dist.lease_seconds + dist.linger_seconds + job.spec.output.retry_seconds + 30
            try:
                chief.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.error("every worker exited before the search finished; stopping the chief")
                stop([chief])
                return 1
            break
        time.sleep(0.2)
    grace = job.spec.distribution.heartbeat_seconds + 15
    deadline = time.monotonic() + grace
    for child in children[1:]:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not exit after the chief finished; stopping it", child.name)
            stop([child])
    return int(chief.returncode or 0)


def _scrape(port: int) -> Progress:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
        return progress_from_text(response.read().decode("utf-8"))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
