"""A full output disk ends a search cleanly: one line saying what failed, where and why, the exit
code of the contract, no traceback, and best/ complete or absent. The output is a small tmpfs
mounted for the test (root only) and filled at three points: before the first trial, mid-search,
and while best/ is written."""

from __future__ import annotations

import contextlib
import errno
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from job.output.manifest import verify_manifest
from job.storage import Store
from tests.support.commands import hptune, hptune_env
from tests.support.mounts import tmpfs

pytestmark = pytest.mark.slow

DISK_BYTES = 24 * 2**20


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES at tmp_path/disk: a filesystem that really fills up."""
    with tmpfs(tmp_path / "disk", DISK_BYTES) as path:
        yield path


def fill(mount: Path) -> None:
    """Write a filler file until the filesystem has no space left."""
    with (mount / "filler").open("wb") as handle:
        chunk = b"\0" * (256 * 1024)
        with contextlib.suppress(OSError):
            while True:
                handle.write(chunk)
                handle.flush()
    # the last bytes a smaller write can still take
    with contextlib.suppress(OSError), (mount / "filler-tail").open("wb") as handle:
        while True:
            handle.write(b"\0" * 512)
            handle.flush()


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "job", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(0.01)
    return False


def assert_clean_end(output: str, code: int) -> None:
    assert code == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith(("error: ", "search failed: "))]
    assert len(errors) == 1, output[-3000:]
    assert "No space left on device" in errors[0] or "ENOSPC" in errors[0], errors[0]


def best_complete_or_absent(out: Path) -> None:
    if (out / "best" / "manifest.json").exists():
        assert verify_manifest(Store(str(out))) == []


def test_a_full_disk_before_the_first_trial(
    disk: Path, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec({"spec": {"output": {"uri": str(disk / "out")}}})
    fill(disk)
    result = hptune("run", str(spec), env=hptune_env(TMPDIR=str(tmp_path)))
    output = result.stdout + result.stderr
    assert_clean_end(output, result.returncode)
    assert re.search(rf"error: write {re.escape(str(disk / 'out'))}/\S+ failed: ", output), output
    assert "trial" not in " ".join(line for line in output.splitlines() if "running trial" in line)


def test_a_disk_that_fills_mid_search(disk: Path, write_spec: Callable[..., Path], tmp_path: Path) -> None:
    out = disk / "out"
    spec = write_spec(
        {
            "spec": {
                "output": {"uri": str(out)},
                "tuner": {"maxTrials": 8},
                "training": {"epochs": 6, "batchSize": 16},
                "distribution": {"leaseSeconds": 6, "heartbeatSeconds": 1, "lingerSeconds": 10},
            }
        }
    )
    log = tmp_path / "local.log"
    process = start(["local", str(spec), "--workers", "1"], log, hptune_env(TMPDIR=str(tmp_path)))
    try:
        assert wait_until(lambda: len(list(out.glob("trials/*/trial.json"))) >= 2, process, 240), (
            log.read_text()
        )
        fill(disk)
        code = process.wait(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert code != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert re.search(r"\[chief\] (error|search failed): .*No space left on device", output), output[-3000:]
    best_complete_or_absent(out)


def test_a_disk_that_fills_while_best_is_written(
    disk: Path, write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    """best/ on a filesystem of its own, too small for the model and its SavedModel export: the
    disk fills while best/ is written, every time."""
    out = disk / "out"
    best = out / "best"
    with tmpfs(best, 48 * 1024):
        spec = write_spec({"spec": {"output": {"uri": str(out)}, "tuner": {"maxTrials": 2}}})
        # As in a pod: the working directory is read-only; only HOME, TMPDIR and the output are not.
        with tmpfs(tmp_path / "readonly", 64 * 1024, read_only=True) as cwd:
            result = hptune("run", str(spec), env=hptune_env(TMPDIR=str(tmp_path)), cwd=cwd)
        output = result.stdout + result.stderr
        assert_clean_end(output, result.returncode)
        assert f"the leaderboard is saved locally at {tmp_path}/hptune-digits-test-leaderboard-" in output
        assert re.search(
            r"write \S+/best/\S+ failed: OSError: \[Errno 28\] No space left on device", output
        ), output
        assert not (best / "manifest.json").exists(), "an incomplete best/ has no manifest"
        assert '"state": "interrupted"' in (out / "search.json").read_text(), "a retried chief resumes it"


def test_enospc_is_not_retried_as_transient() -> None:
    from job.storage.errors import is_transient

    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
