"""Running the hptune command as a child process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
