"""A benchmark side in a fresh process: no side inherits another's imports, caches or memory.

The child imports what it needs, calls one function and prints its result as a `RESULT <json>` line,
which `in_child` reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def in_child(imports: str, call: str, what: str, **env: str) -> dict[str, Any]:
    """`call` (Python source, after `imports`) evaluated in a fresh interpreter at the repository
    root, with `env` added to this process's environment; raises naming `what` when it fails."""
    code = (
        f"import json; from pathlib import Path; {imports}; "
        f"print('RESULT ' + json.dumps({call}, default=float))"
    )
    environ = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, cwd=REPO, capture_output=True, text=True, check=False
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{what} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


class RoleProcess:
    """One `hptune run` process of a search on loopback: the chief or a worker, by its tuner id,
    its output appended to `log`."""

    def __init__(self, spec: Path, tuner_id: str, port: int, log: Path) -> None:
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port),
        }
        self.log = log.open("a")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "job", "run", str(spec), "--metrics-port", "0"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def alive_seconds(self) -> float:
        return time.monotonic() - self.started
