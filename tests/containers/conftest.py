"""Fixtures of the container tier: the Docker engine, the image built once per session, and a
release of the chart whose pods run as containers (tests/support/pod_runner.py)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.containers import ARTIFACTS, REQUIRE, Image, build_image, make_release, say, start_engine
from tests.support.moto_s3 import S3Server
from tests.support.pod_runner import Release


@pytest.fixture(scope="session")
def docker_engine(request: pytest.FixtureRequest) -> None:
    started, reason = start_engine()
    if started:
        if reason and not getattr(start_engine, "reported", False):
            start_engine.reported = True  # type: ignore[attr-defined]
            say(request, reason)
        return
    if reason:
        if os.environ.get(REQUIRE):
            pytest.fail(f"{reason} ({REQUIRE} is set: the container tests must run here)", pytrace=False)
        pytest.skip(f"NO CONTAINER TESTS: {reason}")


@pytest.fixture(scope="session")
def image(docker_engine: None, request: pytest.FixtureRequest) -> Image:
    """The project's image, built once per session with its own Dockerfile on the stand-in base."""
    built = build_image()
    if getattr(build_image, "reported", False):
        return built
    build_image.reported = True  # type: ignore[attr-defined]
    build_log = (ARTIFACTS / "build.log").read_text()
    timings = "; ".join(re.findall(r"^(?:stand-in base .*|built .*)$", build_log, re.MULTILINE))
    say(
        request,
        f"image {built.name}: {built.size / 2**30:.2f} GiB, ready in {built.seconds:.0f} s ({timings})",
    )
    return built


@pytest.fixture
def deploy(image: Image, s3: S3Server, tmp_path: Path) -> Iterator[Callable[..., Release]]:
    """make_release for one test; every container it started is removed when the test ends."""
    made: list[Release] = []

    def make(spec: dict[str, Any], **value_changes: Any) -> Release:
        made.append(make_release(image, s3, tmp_path / f"release{len(made)}", spec, **value_changes))
        return made[-1]

    yield make
    for release in made:
        release.close()
