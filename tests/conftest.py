"""Fixtures shared by every tier: spec files on the bundled digits data, real MNIST where a test
needs it, an S3 server on loopback, the Kubernetes schemas read once per module; the helpers they
use live in tests/support/."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml

from tests.support.moto_s3 import BUCKET, CREDENTIALS, S3Server
from tests.support.specs import BASE_SPEC, REPO, merge


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a digits spec (BASE_SPEC with changes) into tmp_path; output goes there too."""

    def write(changes: dict[str, Any] | None = None, name: str = "spec.yaml") -> Path:
        doc = merge(BASE_SPEC, {"spec": {"output": {"uri": str(tmp_path / "out")}}})
        doc = merge(doc, changes or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding mnist.npz: HPTUNE_DATA_DIR, or ../shared/data beside the repo."""
    configured = os.environ.get("HPTUNE_DATA_DIR")
    candidate = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (candidate / "mnist.npz").exists():
        pytest.fail(f"MNIST is needed: set HPTUNE_DATA_DIR to a directory with mnist.npz ({candidate})")
    return candidate


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 API on a free loopback port with the test bucket, one per module (each test writes
    under its own prefix); the test credentials set and other AWS settings cleared meanwhile."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in CREDENTIALS.items():
                patch.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
                patch.delenv(name, raising=False)
            server.client().create_bucket(Bucket=BUCKET)
            yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """`cli.main` configures logging for a process; in-process CLI tests must not leave its
    handlers (bound to a captured stderr that closes) behind for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate reads a version's 1.4 MB definitions file on every call; read each once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kubernetes_validate,
            "schema_contents",
            functools.lru_cache(maxsize=None)(kubernetes_validate.schema_contents),
        )
        yield
