"""Small tmpfs filesystems for tests that need a disk that really fills up, or a directory nobody
can write to (root ignores file modes, not a read-only mount). Mounting needs root, which CI has."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: int, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted at path (created) for the block, then unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    options = f"ro,size={size}" if read_only else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
