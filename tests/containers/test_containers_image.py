"""The image, built with the project's Dockerfile on the stand-in base, and the documented
`docker run` command (docs/kubernetes.md, "One GPU machine") run as written, on the CPU: MNIST
from a mounted data directory, results in a mounted output directory."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from job.output.manifest import verify_manifest
from job.storage import Store
from tests.support.containers import REPO, Image, leaderboard, say

pytestmark = pytest.mark.slow


def inspect(name: str, template: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", template, name], capture_output=True, text=True, check=True
    ).stdout.strip()


def run_in(name: str, *command: str) -> str:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "--entrypoint", command[0], name, *command[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_the_image_is_the_dockerfiles_on_the_stand_in_base(
    image: Image,
    request: pytest.FixtureRequest,
) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    # The Dockerfile builds FROM ${BASE_IMAGE}; the stand-in stands for that argument's default.
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.MULTILINE)
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    assert base
    assert inspect(image.name, '{{index .Config.Labels "io.hptune.stand-in-for"}}') == base[1]
    assert inspect(image.name, "{{.Config.User}}") == "10001:10001"
    assert inspect(image.name, "{{json .Config.Entrypoint}}") == '["hptune"]'
    versions = json.loads(
        run_in(
            image.name,
            "python3",
            "-c",
            "import json, sys, tensorflow, keras_tuner, job; "
            "print(json.dumps([sys.version_info[:2], tensorflow.__version__]))",
        )
    )
    tf_version = re.search(r"^ARG TENSORFLOW_VERSION=(\S+)", dockerfile, re.MULTILINE)
    assert tf_version and versions == [[3, 11], tf_version[1]]
    # The base's name is only borrowed for the build: nothing here is left passing for it.
    tags = subprocess.run(["docker", "image", "inspect", base[1]], capture_output=True, check=False)
    assert tags.returncode != 0, f"{base[1]} is still a tag of the stand-in"
    say(request, f"image size: {image.size / 2**30:.2f} GiB ({image.size} bytes)")


def documented_command() -> str:
    """The documented `docker run` (docs/kubernetes.md, "One GPU machine"), continuation lines joined."""
    text = (REPO / "docs" / "kubernetes.md").read_text()
    section = text.split("## One GPU machine", 1)[1].split("```", 2)[1]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("docker run"))
    command = []
    for line in lines[start:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return " ".join(command)


def test_the_documented_docker_run_completes_on_the_cpu(
    image: Image,
    mnist_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    command = documented_command()
    assert "--gpus all" in command and " hptune local /specs/mnist.yaml" in command, command
    # No GPU here: the same command without --gpus, on the host's network, MNIST from a mounted
    # directory (HPTUNE_DATA_DIR), the image under its test tag.
    command = command.replace(
        "--gpus all",
        f"--network host -v {shlex.quote(str(mnist_dir))}:/data:ro -e HPTUNE_DATA_DIR=/data",
    ).replace(" hptune local ", f" {image.name} local ")
    # $PWD/examples holds the documented spec, made small: 2 trials, 1 epoch, 5,000 images.
    spec = yaml.safe_load((REPO / "examples" / "mnist.yaml").read_text())
    spec["spec"]["tuner"]["maxTrials"] = 2
    spec["spec"]["training"]["epochs"] = 1
    spec["spec"]["data"]["maxTrainSamples"] = 5000
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "mnist.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "out").mkdir()
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, (command, (result.stdout + result.stderr)[-3000:])
    out = Store(str(tmp_path / "out" / "mnist-mlp"))
    assert [row["status"] for row in leaderboard(out)] == ["completed", "completed"]
    assert verify_manifest(out) == []
    assert "search complete: results in /out/mnist-mlp" in result.stdout + result.stderr
    say(request, f"documented docker run (MNIST, 2 trials): {seconds:.0f} s")
