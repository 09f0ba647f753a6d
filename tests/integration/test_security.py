"""Credentials never reach the logs, the artifacts or the metrics, and never enter through the spec.

Real searches run with recognisable secrets planted in their environment (the AWS secret key and
session token, an unrelated password, an endpoint URL carrying a password): a chief and two
workers writing to S3 (moto's S3 API on loopback, `tests/support/moto_s3.py`), and a standalone search
writing locally and pushing its metrics to a recording Pushgateway. Every line any process
printed, every object and file written (zip members such as `model.keras` unpacked) and every
metrics push is scanned for the secrets. See docs/security.md.
"""

from __future__ import annotations

import http.server
import io
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from job.supervision.processes import free_port
from tests.support.commands import hptune, hptune_env
from tests.support.moto_s3 import BUCKET, S3Server
from tests.support.specs import BASE_SPEC, merge


@dataclass(frozen=True)
class Secrets:
    """Recognisable values, unique to one test, that must never appear in what hptune writes."""

    secret_key: str
    session_token: str
    password: str
    url_password: str

    @classmethod
    def new(cls) -> Secrets:
        tag = uuid.uuid4().hex
        return cls(
            secret_key=f"hptune-canary-secret-{tag}",
            session_token=f"hptune-canary-token-{tag}",
            password=f"hptune-canary-password-{tag}",
            url_password=f"hptune-canary-url-{tag}",
        )

    def values(self) -> tuple[str, ...]:
        return (self.secret_key, self.session_token, self.password, self.url_password)

    def env(self, endpoint_host: str = "127.0.0.1:9") -> dict[str, str]:
        """The secrets as a pod would hold them: AWS variables, and one the job has no use for."""
        return {
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "DATABASE_PASSWORD": self.password,
            "AWS_ENDPOINT_URL_S3": f"http://hptune:{self.url_password}@{endpoint_host}",
        }


def leaks(where: str, data: bytes, secrets: Secrets) -> list[str]:
    """Which secrets occur in data (and, for a zip archive such as model.keras, in its members)."""
    found = [f"{where}: {secret}" for secret in secrets.values() if secret.encode() in data]
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                found += leaks(f"{where}!{member}", archive.read(member), secrets)
    return found


def local_leaks(root: Path, secrets: Secrets) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found += leaks(str(path), path.read_bytes(), secrets)
    return found


def write_spec(root: Path, uri: str, **changes: Any) -> Path:
    doc = merge(
        BASE_SPEC,
        {
            "metadata": {"name": "security-test"},
            "spec": {
                "tuner": {"maxTrials": 2},
                "training": {"epochs": 1},
                "output": {"uri": uri, "retrySeconds": 0},
                "distribution": {"lingerSeconds": 5, "heartbeatSeconds": 1},
            },
        },
    )
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(merge(doc, changes), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.close()


def test_a_distributed_search_on_s3_writes_no_credentials_anywhere(s3: S3Server, tmp_path: Path) -> None:
    secrets = Secrets.new()
    prefix = f"security-{uuid.uuid4().hex[:12]}"
    spec = write_spec(tmp_path, f"s3://{BUCKET}/{prefix}")
    env = hptune_env(**{**s3.env(), **secrets.env(), "AWS_ENDPOINT_URL_S3": s3.url})
    targets = tmp_path / "targets.json"
    result = hptune(
        "local", str(spec), "--workers", "2", "--prometheus-targets", str(targets), env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr

    client = s3.client()
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for obj in page.get("Contents", [])
    ]
    written = {key.removeprefix(f"{prefix}/") for key in keys if key.startswith(f"{prefix}/")}
    assert {"search.json", "leaderboard.csv", "best/model.keras", "best/manifest.json"} <= written
    assert any(key.startswith("trials/") and key.endswith("/trial.json") for key in written)

    found = leaks("stdout", result.stdout.encode(), secrets) + leaks(
        "stderr", result.stderr.encode(), secrets
    )
    for key in keys:
        found += leaks(
            f"s3://{BUCKET}/{key}", client.get_object(Bucket=BUCKET, Key=key)["Body"].read(), secrets
        )
    found += local_leaks(tmp_path, secrets)
    assert not found, found


class _Pushgateway(http.server.ThreadingHTTPServer):
    """Records every metrics push (request line, headers and body) and answers 200."""

    def __init__(self) -> None:
        self.pushes: list[bytes] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.pushes.append(f"{self.requestline}\n{self.headers}".encode() + body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def pushgateway() -> Iterator[_Pushgateway]:
    server = _Pushgateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_local_search_with_debug_logging_writes_no_credentials_anywhere(
    tmp_path: Path, pushgateway: _Pushgateway
) -> None:
    secrets = Secrets.new()
    out = tmp_path / "out"
    push_url = f"http://127.0.0.1:{pushgateway.server_address[1]}"
    spec = write_spec(tmp_path, str(out), spec={"metrics": {"port": 0, "pushgateway": {"url": push_url}}})
    result = hptune("-v", "run", str(spec), env=hptune_env(**secrets.env()), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "best" / "manifest.json").exists()
    assert pushgateway.pushes, "the search pushed no metrics"

    found = leaks("stdout", result.stdout.encode(), secrets) + leaks(
        "stderr", result.stderr.encode(), secrets
    )
    found += local_leaks(tmp_path, secrets)
    for push in pushgateway.pushes:
        found += leaks("pushgateway", push, secrets)
    assert not found, found


def test_a_storage_failure_does_not_echo_the_credentials_in_the_endpoint_url(tmp_path: Path) -> None:
    secrets = Secrets.new()
    spec = write_spec(tmp_path, f"s3://{BUCKET}/unreachable")
    env = hptune_env(**secrets.env(endpoint_host=f"127.0.0.1:{free_port()}"))
    result = hptune("run", str(spec), env=env, cwd=tmp_path)
    # Refused for good (exit 2: the store cannot be used as configured), naming the URI only.
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"s3://{BUCKET}/unreachable/" in result.stderr
    assert "Traceback" not in result.stderr
    found = leaks("stdout", result.stdout.encode(), secrets) + leaks(
        "stderr", result.stderr.encode(), secrets
    )
    assert not found + local_leaks(tmp_path, secrets), found


# -- the spec refuses credentials, without repeating them --------------------------------------------

CANARY = "hptune-canary-in-the-spec"


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("spec", "output"), "secretAccessKey"),
        (("spec", "output"), "awsAccessKeyId"),
        (("spec", "output"), "credentials"),
        (("metadata",), "password"),
        (("spec", "data"), "apiKey"),
        (("spec", "training"), "private_key"),
        (("spec", "hyperparameters", 0), "token"),
        ((), "secrets"),
    ],
    ids=[
        "output.secretAccessKey",
        "output.awsAccessKeyId",
        "output.credentials",
        "metadata.password",
        "data.apiKey",
        "training.private_key",
        "hyperparameters[0].token",
        "top.secrets",
    ],
)
def test_validate_refuses_a_credential_in_the_spec_without_repeating_it(
    tmp_path: Path, where: tuple[str | int, ...], key: str
) -> None:
    doc = merge(BASE_SPEC, {})
    node: Any = doc
    for part in where:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[key] = {"value": CANARY} if key == "credentials" else CANARY
    spec = tmp_path / "spec.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    spec.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.lstrip(" -").startswith(f"{key}:"))
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in (*where, key)).lstrip(".")

    result = hptune("validate", str(spec))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"error: {spec}:{line}:" in message
    assert f"{path}: looks like a credential; a spec must not hold secrets" in message
    assert CANARY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_run_and_local_refuse_a_credential_in_the_spec_before_doing_anything(tmp_path: Path) -> None:
    doc = merge(BASE_SPEC, {"spec": {"output": {"uri": str(tmp_path / "out"), "secretAccessKey": CANARY}}})
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    for command in ("run", "local"):
        result = hptune(command, str(spec), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "spec.output.secretAccessKey: looks like a credential" in " ".join(result.stderr.split())
        assert CANARY not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"spec": {"output": {"endpointUrl": f"http://minio:{CANARY}@minio.minio.svc:9000"}}},
            "spec.output.endpointUrl",
        ),
        ({"spec": {"output": {"uri": f"s3://AKIAEXAMPLE:{CANARY}@results/run"}}}, "spec.output.uri"),
        (
            {"spec": {"data": {"source": "npz", "path": f"https://reader:{CANARY}@data.example/d.npz"}}},
            "spec.data.path",
        ),
        (
            {"spec": {"metrics": {"pushgateway": {"url": f"http://push:{CANARY}@pushgateway:9091"}}}},
            "spec.metrics.pushgateway.url",
        ),
    ],
    ids=["endpoint-url", "output-uri", "data-path", "pushgateway-url"],
)
def test_validate_refuses_a_password_inside_a_url_without_repeating_it(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    """A URL's user:password@ would be logged and copied into search.json and the model card."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(merge(BASE_SPEC, changes), sort_keys=False))
    result = hptune("validate", str(spec))
    assert result.returncode == 2, result.stdout
    assert f"{field}:" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
