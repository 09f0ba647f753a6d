"""Helpers of the container tests: starting the Docker engine, building the project's image on the
stand-in base, the chart rendered for a search on moto's S3 API, and what a user checks after it.
The fixtures that use them are in tests/containers/conftest.py; docs/containers.md says what these
tests cover and how they differ from a cluster.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from job.output.manifest import verify_manifest
from job.retry import Backoff
from job.storage import Store
from job.supervision.processes import free_port
from scripts.render_manifests import documents, render
from tests.support.moto_s3 import BUCKET, CREDENTIALS, S3Server
from tests.support.pod_runner import Release
from tests.support.specs import BASE_SPEC, WRONG_MODEL, merge

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "containers"
ARTIFACTS = REPO / "test-artifacts" / "containers"
RELEASE, NAMESPACE = "hptune", "tuning"
FINISH = 300.0  # a search of a few digits trials, start to end, on two busy cores
SECRET = "hptune-s3"
# `make test-containers` sets it: there, an engine that cannot start fails the run instead of
# skipping it (CI can start one, so CI must run these tests).
REQUIRE = "HPTUNE_REQUIRE_DOCKER"
OBJECTIVE = "val_accuracy"
HP_NAMES = [hp["name"] for hp in BASE_SPEC["spec"]["hyperparameters"]]


def say(request: pytest.FixtureRequest, line: str) -> None:
    """One line on the terminal, past pytest's capture, and in test-artifacts/containers/report.txt."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / "report.txt").open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[containers] {line}", flush=True)


@functools.cache
def start_engine() -> tuple[bool, str]:
    """(True, what start-docker.sh said) once `docker info` answers; else (False, the one-line
    reason no engine could start)."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / "start-docker.sh")], capture_output=True, text=True, check=False, timeout=120
    )
    lines = (result.stderr + result.stdout).strip().splitlines()
    if result.returncode == 0:
        return True, lines[-1] if lines else ""
    return False, lines[-1] if lines else f"start-docker.sh exited {result.returncode}"


@dataclass(frozen=True)
class Image:
    name: str
    size: int  # bytes, as `docker image inspect` reports it
    seconds: float  # building the stand-in base (when not cached) and this image

    @property
    def repository(self) -> str:
        return self.name.split(":")[0]

    @property
    def tag(self) -> str:
        return self.name.split(":")[1]


@functools.cache
def build_image() -> Image:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPTS / "build-image.sh"), "hptune-test:latest"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "build.log").write_text(result.stderr)
    if result.returncode != 0:
        pytest.fail(f"the image did not build: {result.stderr.strip().splitlines()[-1:]}", pytrace=False)
    name, size = result.stdout.split()[-2:]
    return Image(name, int(size), time.monotonic() - started)


def search_spec(prefix: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """values.spec.spec: the digits search of tests/support/specs.py's BASE_SPEC (a small MLP, 3
    trials of 2 epochs), its output under prefix on moto's S3 (written by every pod), short
    leases and waits, and free loopback ports for the oracle and the chief's metrics (the pods
    share the host's)."""
    spec = merge(
        BASE_SPEC["spec"],
        {
            # Every pod writes to the bucket itself (the chart's default sends results via the chief).
            "output": {"uri": f"s3://{BUCKET}/{prefix}", "keepModels": 2, "viaChief": False},
            "distribution": {
                "workers": 2,
                "oraclePort": free_port(),
                "bindAddress": "127.0.0.1",
                "leaseSeconds": 6,
                "heartbeatSeconds": 1,
                "chiefWaitSeconds": 120,
                "lingerSeconds": 3,
                "restartOnMemoryGrowth": 0,
            },
            "metrics": {"port": free_port()},
        },
    )
    return merge(spec, changes or {})


def chart_values(image: Image, spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The chart's default values but for the image, the search and credentials from a Secret,
    and workers on the CPU (`gpu.count: 0`: there is no GPU here, and a worker given one that sees
    none stops before any trial). The defaults' own hyperparameters, hidden layers and data merge
    away: lists are replaced whole, and the MNIST preprocessing applies to digits as well."""
    values: dict[str, Any] = {
        "image": {"repository": image.repository, "tag": image.tag},
        "gpu": {"count": 0},
        "envFrom": [{"secretRef": {"name": SECRET}}],
        "spec": {"metadata": {"name": "digits-containers"}, "spec": spec},
    }
    return merge(values, changes)


def s3_secret(s3: S3Server) -> dict[str, Any]:
    """The Secret a user creates for envFrom: moto's credentials and endpoint."""
    data = {k: v for k, v in CREDENTIALS.items() if k.startswith("AWS_") and not k.endswith("_FILE")}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "stringData": {**data, "AWS_ENDPOINT_URL_S3": s3.url},
    }


def worker_metrics_ports(count: int) -> Callable[..., list[str]]:
    """The harness's one change to the rendered pods: each worker index its own metrics port
    (`--metrics-port`, read by `hptune run`), since all containers share the host's ports; the
    chief keeps the port the values give it. Returns the extra_args hook and fills `ports`."""
    ports = [free_port() for _ in range(count)]

    def extra(job: Any, index: int | None) -> list[str]:
        if job is not None and job.component == "worker" and index is not None:
            return ["--metrics-port", str(ports[index])]
        return []

    extra.ports = ports  # type: ignore[attr-defined]
    return extra


def make_release(
    image: Image, s3: S3Server, workdir: Path, spec: dict[str, Any], **value_changes: Any
) -> Release:
    """Render the chart (the real Helm engine, hooks included) for a search; a Release of it."""
    values = chart_values(image, spec, **value_changes)
    objects = [obj for _, _, obj in documents(render(values, RELEASE, NAMESPACE), hooks=True)]
    extra = worker_metrics_ports(int(spec["distribution"]["workers"]))
    release = Release(objects, workdir, cluster_objects=[s3_secret(s3)], extra_args=extra)
    release.worker_metrics_ports = extra.ports  # type: ignore[attr-defined]
    return release


def store(s3: S3Server, prefix: str) -> Store:
    return Store(f"s3://{BUCKET}/{prefix}", Backoff(seconds=30, base_seconds=0.1), endpoint_url=s3.url)


# -- what a user checks afterwards ----------------------------------------------------------------


def leaderboard(output: Store) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output.read_text("leaderboard.csv"))))


def completed_trials(chief_log: str) -> list[str]:
    """The trial ids a chief log says were completed, in order."""
    return re.findall(r"trial (\w+) completed: ", chief_log)


def check_search(output: Store, trials: int, succeeded: bool = True) -> list[dict[str, str]]:
    """Every trial accounted for once in leaderboard.csv and trials/*/trial.json, the search's
    state, and best/ matching its manifest (or absent after a failure)."""
    rows = leaderboard(output)
    ids = [row["trial_id"] for row in rows]
    assert len(rows) == trials, f"{len(rows)} leaderboard rows, expected {trials}: {ids}"
    assert len(set(ids)) == len(ids), f"a trial twice in the leaderboard: {ids}"
    for row in rows:
        if not succeeded and row["status"] not in ("completed", "failed"):
            continue  # running when the search failed: it has no record of its own
        record = json.loads(output.read_text(f"trials/{row['trial_id']}/trial.json"))
        assert record["trialId"] == row["trial_id"] and record["status"] == row["status"], (record, row)
        if row["status"] == "completed":
            assert record["metrics"][OBJECTIVE] == pytest.approx(float(row[OBJECTIVE]), rel=1e-12)
    status = json.loads(output.read_text("search.json"))
    assert status["state"] == ("succeeded" if succeeded else "failed"), status
    if succeeded:
        assert {row["status"] for row in rows} == {"completed"}, rows
        assert verify_manifest(output) == [], "best/ does not match its manifest"
        assert json.loads(output.read_text("best/metrics.json"))["trialId"] == rows[0]["trial_id"]
    else:
        assert verify_manifest(output) != [], "a failed search has no complete best/"
    return rows


def assert_nothing_left(release: Release) -> None:
    release.poll()
    assert not release.running_containers(), f"containers still running:\n{release.describe()}"


def failing_search(prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A search over a custom builder mounted from a ConfigMap (extraVolumes) whose every trial
    fails; the values that mount it."""
    spec = search_spec(prefix, {"tuner": {"maxTrials": 6, "maxConsecutiveFailedTrials": 2}})
    # None reaches Helm, which drops the defaults' MLP keys (values.yaml says so).
    spec["model"] = {
        "type": "custom",
        "builder": "wrong:build_model",
        "hidden": None,
        "learningRate": None,
        "output": None,
        "optimizer": None,
        "loss": None,
        "metrics": None,
    }
    spec["hyperparameters"] = []
    values = {
        "extraVolumes": [{"name": "models", "configMap": {"name": "hptune-test-models"}}],
        "extraVolumeMounts": [{"name": "models", "mountPath": "/opt/models", "readOnly": True}],
        "extraEnv": [{"name": "PYTHONPATH", "value": "/opt/models"}],
    }
    return spec, values


def mount_wrong_model(release: Release) -> None:
    """The ConfigMap failing_search's values mount: what a user would create beside the release."""
    release.store[("ConfigMap", "hptune-test-models")] = {
        "kind": "ConfigMap",
        "metadata": {"name": "hptune-test-models"},
        "data": {"wrong.py": WRONG_MODEL},
    }
