"""Starting and stopping the program's own child processes: `hptune local` (a chief and
workers) and trial packing (several trial processes in one worker). Nothing here imports Keras,
so a supervisor never starts a backend of its own.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.text import Text

ROLE_VARIABLES = (
    "HPTUNE_TRIAL_SLOT",
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
    "JOB_COMPLETION_INDEX",
)
STOP_GRACE_SECONDS = 5.0


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (Linux: ip_local_port_range; else IANA's)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def free_port(count: int = 1) -> int:
    """A free loopback port; with count > 1, the first of `count` consecutive free ports.

    The port is drawn at random from below the kernel's ephemeral range, which the kernel never
    hands out by itself: between this check and the bind by the process it is meant for, no
    outgoing connection or `bind(0)` elsewhere on the machine can take it.
    """
    high = _ephemeral_start() - count
    low = min(10000, high - 1000)
    for _ in range(200):
        base = random.randint(low, high)
        if all(_is_free(base + k) for k in range(count)):
            return base
    raise OSError(f"no {count} consecutive free ports on 127.0.0.1 below {high + count}")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_command(spec: Path, metrics_port: int, output: str | None) -> list[str]:
    """The command line of one `hptune run` child process."""
    cmd = [sys.executable, "-m", "job", "run", str(spec), "--metrics-port", str(metrics_port)]
    return [*cmd, "--output", output] if output else cmd


def child_environment(role: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without role variables, plus `role`."""
    env = {k: v for k, v in os.environ.items() if k not in ROLE_VARIABLES}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **role}


def memory_share_environment(slots: int) -> dict[str, str]:
    """Environment for one of `slots` trial processes sharing a GPU.

    JAX gets a hard cap (a fraction of the device, preallocated once); TensorFlow allocates on
    demand instead of taking the whole device. Set before the backend starts, so it must be given
    to a new process, not applied to this one.
    """
    fraction = 0.9 / slots
    return {
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{fraction:.3f}",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    metrics_port: int
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    reader: threading.Thread | None = field(default=None)
    restarts: int = 0

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


def start(name: str, cmd: list[str], env: dict[str, str], metrics_port: int, console: Console) -> Child:
    """Start a child in its own process group; its output is relayed with a `[name]` prefix."""
    child = Child(name, _popen(cmd, env), metrics_port, cmd, env)
    child.reader = _relaying(child, console)
    return child


def start_again(child: Child, console: Console) -> None:
    """Start a child that exited again, with the same command and environment (its id kept, as a
    Job restarts a pod under the same index)."""
    if child.reader is not None:
        child.reader.join(timeout=5.0)
    child.process = _popen(child.cmd, child.env)
    child.restarts += 1
    child.reader = _relaying(child, console)


def _popen(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _relaying(child: Child, console: Console) -> threading.Thread:
    reader = threading.Thread(
        target=_relay,
        args=(child.name, child.process.stdout, console),
        name=f"relay-{child.name}",
        daemon=True,
    )
    reader.start()
    return reader


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


def join_readers(children: list[Child], timeout: float = 5.0) -> None:
    for child in children:
        if child.reader is not None:
            child.reader.join(timeout=timeout)
