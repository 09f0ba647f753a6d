"""Running the hptune command as a child process, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.specs import REPO


def hptune_env(**extra: str) -> dict[str, str]:
    """The environment for an hptune child process: no role variables unless given."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_") and k != "JOB_COMPLETION_INDEX"
    }
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def hptune(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the hptune command in a child process and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "job", *args],
        env=env or hptune_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def child_result(module: str, *args: str, backend: str = "jax", timeout: float = 300) -> Any:
    """Run `python -m module args` on a Keras backend (a child process: the backend is chosen at
    import) and return the JSON it prints on its `RESULT ` line."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=hptune_env(KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, done.stderr[-3000:]
    return json.loads(line.removeprefix("RESULT "))
