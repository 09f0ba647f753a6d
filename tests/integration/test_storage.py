"""Object storage, complete-or-nothing: the artifact store against a real S3 REST API on loopback.

moto's S3 server runs in a separate process (`tests/support/moto_s3.py`); hptune talks to it with its real
client stack (s3fs over aiobotocore), found through AWS_ENDPOINT_URL_S3 in child processes and
`Store(endpoint_url=...)` in this one. Whole searches run over a local path, file:// and s3://
and are held to the same assertions; the S3 server is stopped mid-upload to prove that a short
outage is ridden out and a long one fails the job with nothing half-published.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import botocore.exceptions
import keras
import keras_tuner as kt
import numpy as np
import pytest
import yaml

from job.numbers import significant
from job.output.layout import MANIFEST_KEY
from job.output.manifest import verify_manifest
from job.retry import Backoff
from job.search.best import promote_best
from job.search.retention import save_model
from job.spec import load_spec
from job.storage import StorageError, Store
from job.storage.errors import is_transient
from job.training.data import load_dataset
from tests.support.commands import hptune, hptune_env
from tests.support.moto_s3 import BUCKET, S3Server
from tests.support.specs import BASE_SPEC, REPO, merge

KEEP = 2
TRIALS = 4
SAVED_MODEL = (
    "saved_model/saved_model.pb",
    "saved_model/fingerprint.pb",
    "saved_model/variables/variables.index",
    "saved_model/variables/variables.data-00000-of-00001",
)
BEST = ("model.keras", "hyperparameters.json", "metrics.json", "README.md", *SAVED_MODEL)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def write_spec(root: Path, uri: str, **changes: Any) -> Path:
    doc = merge(
        BASE_SPEC,
        {
            "metadata": {"name": "storage-test"},
            "spec": {
                "tuner": {"maxTrials": TRIALS},
                "training": {"epochs": 1},
                "output": {"uri": uri, "keepModels": KEEP},
                "distribution": {"lingerSeconds": 5, "heartbeatSeconds": 1},
            },
        },
    )
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(merge(doc, changes), sort_keys=False))
    return path


class Raw:
    """Read a search's output without hptune's Store: files, or S3 objects through boto3."""

    def __init__(self, uri: str, s3: S3Server | None = None) -> None:
        self.uri = uri
        self.s3 = s3
        if uri.startswith("s3://"):
            assert s3 is not None
            self.bucket, _, self.prefix = uri.removeprefix("s3://").partition("/")
            self.client = s3.client()
        else:
            self.root = Path(uri.removeprefix("file://"))

    def objects(self) -> set[str]:
        if self.s3 is None:
            return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/"
        )
        return {o["Key"][len(self.prefix) + 1 :] for page in pages for o in page.get("Contents", [])}

    def read(self, key: str) -> bytes:
        if self.s3 is None:
            return (self.root / key).read_bytes()
        return bytes(self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read())

    def json(self, key: str) -> Any:
        return json.loads(self.read(key))

    def leaderboard(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.read("leaderboard.csv").decode())))


@dataclass(frozen=True)
class Search:
    """A finished search: its spec, where it wrote, and the environment that reaches it."""

    spec: Path
    uri: str
    raw: Raw
    env: dict[str, str]


def _search(root: Path, uri: str, command: str, env: dict[str, str], raw: Raw) -> Search:
    spec = write_spec(root, uri)
    args = ["local", str(spec), "--workers", "2"] if command == "local" else ["run", str(spec)]
    result = hptune(*args, env=env, cwd=root, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return Search(spec, uri, raw, env)


@pytest.fixture(scope="module")
def s3_search(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Search:
    """A chief and two workers (`hptune local`) writing to s3://, found by AWS_ENDPOINT_URL_S3."""
    uri = f"s3://{BUCKET}/local-search"
    root = tmp_path_factory.mktemp("s3-search")
    return _search(root, uri, "local", hptune_env(**s3.env()), Raw(uri, s3))


@pytest.fixture(scope="module")
def path_search(tmp_path_factory: pytest.TempPathFactory) -> Search:
    root = tmp_path_factory.mktemp("path-search")
    uri = str(root / "out")
    return _search(root, uri, "run", hptune_env(), Raw(uri))


@pytest.fixture(scope="module")
def file_search(tmp_path_factory: pytest.TempPathFactory) -> Search:
    root = tmp_path_factory.mktemp("file-search")
    uri = f"file://{root / 'out'}"
    return _search(root, uri, "run", hptune_env(), Raw(uri))


@pytest.fixture(params=["path", "file", "s3"])
def search(request: pytest.FixtureRequest) -> Search:
    return request.getfixturevalue(f"{request.param}_search")


# -- the same assertions over a local path, file:// and s3:// ---------------------------------


def test_every_file_of_the_layout_is_written(search: Search) -> None:
    raw = search.raw
    keys = raw.objects()
    board = raw.leaderboard()
    ids = [row["trial_id"] for row in board]
    assert len(ids) == TRIALS
    assert {"search.json", "leaderboard.csv", "state/snapshot.json"} <= keys
    assert {k for k in keys if k.startswith("trials/")} == {f"trials/{i}/trial.json" for i in ids} | {
        f"trials/{i}/model.keras" for i in ids[:KEEP]
    }
    assert {k for k in keys if k.startswith("best/")} == {f"best/{n}" for n in (*BEST, "manifest.json")}
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(".")], "temporary files left behind"
    assert raw.json("search.json")["state"] == "succeeded"
    assert raw.json("best/metrics.json")["trialId"] == ids[0]


def test_the_manifest_lists_every_best_file_with_its_checksum(search: Search) -> None:
    raw = search.raw
    manifest = raw.json(MANIFEST_KEY)
    assert manifest["trialId"] == raw.leaderboard()[0]["trial_id"]
    assert set(manifest["files"]) == set(BEST)
    for name, entry in manifest["files"].items():
        data = raw.read(f"best/{name}")
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name


def test_the_best_model_loads_and_scores_what_was_recorded(search: Search, tmp_path: Path) -> None:
    raw = search.raw
    (tmp_path / "model.keras").write_bytes(raw.read("best/model.keras"))
    model = keras.models.load_model(tmp_path / "model.keras")
    data = load_dataset(load_spec(search.spec).spec.data)
    _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
    recorded = raw.json("best/metrics.json")["objective"]
    assert recorded["name"] == "val_accuracy"
    assert abs(accuracy - recorded["value"]) < 1e-3
    assert np.isclose(float(raw.leaderboard()[0]["val_accuracy"]), recorded["value"])


def test_show_prints_the_results_and_verifies_them(search: Search) -> None:
    result = hptune("show", search.uri, env={**search.env, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    board = search.raw.leaderboard()
    for row in board:  # rounded for people, one line a trial
        cells = (row["rank"], row["trial_id"], "completed", significant(float(row["val_accuracy"])))
        assert re.search(r"^\s*" + r"\s+".join(re.escape(c) for c in cells) + r"\s", result.stdout, re.M), row
    best = search.raw.json("best/metrics.json")
    values = search.raw.json("best/hyperparameters.json")
    score = significant(best["objective"]["value"])
    assert f"best: trial {best['trialId']}, val_accuracy = {score}" in result.stdout
    assert "hyperparameters: " + ", ".join(f"{k}={v}" for k, v in values.items()) in result.stdout
    metrics = ", ".join(f"{k}={significant(v)}" for k, v in sorted(best["metrics"].items()))
    assert f"metrics: {metrics}" in result.stdout
    assert f"{search.uri}/best/model.keras (verified against best/manifest.json)" in result.stdout
    exact = hptune("show", search.uri, "--json", env=search.env)  # every digit, for machines
    assert exact.returncode == 0, exact.stderr
    shown = json.loads(exact.stdout)
    assert [(t["trialId"], t["objective"]) for t in shown["trials"]] == [
        (row["trial_id"], float(row["val_accuracy"])) for row in board
    ]
    assert shown["best"]["metrics"] == best["metrics"] and shown["verified"] is True


# -- s3:// -----------------------------------------------------------------------------------------


def test_the_saved_model_serves_what_the_keras_model_predicts(s3_search: Search, tmp_path: Path) -> None:
    import tensorflow as tf

    raw = s3_search.raw
    for name in SAVED_MODEL:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw.read(f"best/{name}"))
    (tmp_path / "model.keras").write_bytes(raw.read("best/model.keras"))
    data = load_dataset(load_spec(s3_search.spec).spec.data)
    exported = tf.saved_model.load(str(tmp_path / "saved_model"))
    served = exported.serve(data.x_val.astype("float32"))
    expected = keras.models.load_model(tmp_path / "model.keras").predict(data.x_val, verbose=0)
    np.testing.assert_allclose(np.asarray(served), expected, atol=1e-5)


def test_the_model_card_describes_the_search(s3_search: Search) -> None:
    raw = s3_search.raw
    card = raw.read("best/README.md").decode()
    best = raw.json("best/metrics.json")
    assert "digits" in card  # the dataset
    for name in ("hidden1", "dropout1", "learning_rate"):  # the search space
        assert f"| {name} | {{" in card
    assert "val_accuracy, maximized" in card  # the objective
    for name, value in best["metrics"].items():  # the best trial's metrics
        assert f"| {name} | {value:.6g} |" in card
    top = raw.leaderboard()[:2]  # the top of the leaderboard
    assert f"| 1 | {top[0]['trial_id']} |" in card and f"| 2 | {top[1]['trial_id']} |" in card
    assert f"Keras {keras.__version__}" in card and f"Keras Tuner {kt.__version__}" in card
    assert "TensorFlow " in card and "saved_model/" in card


def test_two_workers_writing_at_once_clobber_no_trial_record(s3_search: Search) -> None:
    raw = s3_search.raw
    records = {row["trial_id"]: raw.json(f"trials/{row['trial_id']}/trial.json") for row in raw.leaderboard()}
    assert len(records) == TRIALS
    for trial_id, record in records.items():
        assert record["trialId"] == trial_id
        assert record["status"] == "completed"
    assert {record["worker"] for record in records.values()} == {"tuner0", "tuner1"}


def test_pruning_keeps_exactly_the_best_k_trial_models(s3_search: Search) -> None:
    raw = s3_search.raw
    kept = {k.split("/")[1] for k in raw.objects() if k.startswith("trials/") and k.endswith("/model.keras")}
    assert kept == {row["trial_id"] for row in raw.leaderboard()[:KEEP]}


def test_best_is_uploaded_before_its_manifest(s3: S3Server, s3_search: Search) -> None:
    writes = [path for method, path in s3.requests() if method == "PUT" and "/local-search/best/" in path]
    assert writes[-1] == f"/{BUCKET}/local-search/{MANIFEST_KEY}"
    assert {w.split("/best/", 1)[1] for w in writes[:-1]} == set(BEST)


def test_show_over_s3_fails_on_a_tampered_best(s3: S3Server, s3_search: Search, prefix: str) -> None:
    client = s3.client()
    for key in s3_search.raw.objects():
        client.copy_object(
            Bucket=BUCKET, Key=f"{prefix}/{key}", CopySource={"Bucket": BUCKET, "Key": f"local-search/{key}"}
        )
    uri = f"s3://{BUCKET}/{prefix}"
    assert hptune("show", uri, env=s3_search.env).returncode == 0
    model = client.get_object(Bucket=BUCKET, Key=f"{prefix}/best/model.keras")["Body"].read()
    tampered = model[:-1] + bytes([model[-1] ^ 1])  # one bit flipped
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/best/model.keras", Body=tampered)
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}/best/saved_model/fingerprint.pb")
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/best/extra.txt", Body=b"not from the search")
    result = hptune("show", uri, env=s3_search.env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-3:] == [
        "verification failed: best/model.keras does not match its manifest checksum",
        "verification failed: best/saved_model/fingerprint.pb is listed in the manifest but missing",
        "verification failed: best/extra.txt is not listed in the manifest",
    ]


def test_a_short_outage_mid_upload_is_ridden_out(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/{prefix}"
    spec = write_spec(tmp_path, uri, spec={"tuner": {"maxTrials": 2}})
    s3.fail("PUT", rf"^/{BUCKET}/{prefix}/trials/[^/]+/model\.keras$", down_seconds=2)
    result = hptune("run", str(spec), env=hptune_env(**s3.env()), cwd=tmp_path)  # default retry budget
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    [(_, cut)] = [f for f in s3.faults() if f"/{prefix}/" in f[1]]
    key = cut.removeprefix(f"/{BUCKET}/{prefix}/")
    assert re.search(rf"write {re.escape(uri)}/{re.escape(key)} failed \(.*\); retrying in", output), output
    raw = Raw(uri, s3)
    ids = [row["trial_id"] for row in raw.leaderboard()]
    assert len(ids) == 2 and raw.json("search.json")["state"] == "succeeded"
    assert all(raw.json(f"trials/{i}/trial.json")["trialId"] == i for i in ids)
    assert verify_manifest(Store(uri, endpoint_url=s3.url)) == []


def test_a_long_outage_fails_the_job_and_keeps_the_leaderboard_locally(
    s3: S3Server, prefix: str, tmp_path: Path
) -> None:
    uri = f"s3://{BUCKET}/{prefix}"
    spec = write_spec(tmp_path, uri, spec={"tuner": {"maxTrials": 2}, "output": {"retrySeconds": 3}})
    s3.fail("PUT", rf"^/{BUCKET}/{prefix}/best/model\.keras$", down_seconds=-1)
    try:
        # The working directory is not writable in a pod: the copy goes to TMPDIR.
        result = hptune("run", str(spec), env=hptune_env(**s3.env(), TMPDIR=str(tmp_path)), cwd=REPO)
    finally:
        s3.start()
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert not list(REPO.glob("hptune-*-leaderboard-*.csv"))
    assert [f for f in s3.faults() if f"/{prefix}/" in f[1]] == [
        ("PUT", f"/{BUCKET}/{prefix}/best/model.keras")
    ]
    failed = rf"write {re.escape(uri)}/best/model\.keras failed after \d+ attempts over \d+ s"
    assert re.search(failed + r" \(retry budget 3 s\): EndpointConnectionError", output), output
    [saved] = tmp_path.glob("hptune-storage-test-leaderboard-*.csv")
    assert f"the leaderboard is saved locally at {saved}" in output
    rows = list(csv.DictReader(saved.open()))
    assert len(rows) == 2 and all(row["status"] == "completed" for row in rows)
    keys = Raw(uri, s3).objects()
    assert MANIFEST_KEY not in keys
    assert "best/model.keras" not in keys  # the cut-off upload stored nothing


def test_a_secret_in_the_spec_is_refused(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, f"s3://{BUCKET}/x", spec={"output": {"secretAccessKey": "wJalrXUtnFEMI/K7MDENG"}}
    )
    result = hptune("validate", str(spec))
    assert result.returncode == 2
    assert "spec.output.secretAccessKey" in result.stderr
    assert "looks like a credential" in result.stderr
    assert "wJalrXUtnFEMI" not in result.stdout + result.stderr


# -- the Store itself ------------------------------------------------------------------------------


def test_store_retries_a_transient_error_then_succeeds(
    s3: S3Server, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(f"s3://{BUCKET}/{prefix}", Backoff(seconds=30, base_seconds=0.1), endpoint_url=s3.url)
    s3.stop()
    restart = threading.Timer(1.0, s3.start)
    restart.start()
    try:
        with caplog.at_level(logging.WARNING, logger="job.storage"):
            store.write_text("trials/1/trial.json", '{"trialId": "1"}')
    finally:
        restart.join()
    assert Raw(f"s3://{BUCKET}/{prefix}", s3).json("trials/1/trial.json") == {"trialId": "1"}
    assert f"write s3://{BUCKET}/{prefix}/trials/1/trial.json failed (EndpointConnectionError" in caplog.text
    assert "retrying in" in caplog.text


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("write", lambda store: store.write_text("k.json", "{}")),
        ("read", lambda store: store.read_text("k.json")),
        ("list", lambda store: store.list("k.json")),
        ("delete", lambda store: store.delete("k.json")),
    ],
    ids=["write", "read", "list", "delete"],
)
def test_store_gives_up_when_the_retry_budget_is_spent(
    s3: S3Server, prefix: str, operation: str, call: Callable[[Store], object]
) -> None:
    store = Store(f"s3://{BUCKET}/{prefix}", Backoff(seconds=1, base_seconds=0.1), endpoint_url=s3.url)
    s3.stop()
    started = time.monotonic()
    try:
        with pytest.raises(StorageError) as failure:
            call(store)
    finally:
        s3.start()
    assert 1 <= time.monotonic() - started < 10
    message = str(failure.value)
    assert message.startswith(f"{operation} s3://{BUCKET}/{prefix}/k.json failed after ")
    assert "(retry budget 1 s): EndpointConnectionError: Could not connect to the endpoint URL" in message


def test_store_fails_at_once_when_no_retry_can_help(s3: S3Server) -> None:
    store = Store("s3://hptune-no-such-bucket/out", Backoff(seconds=60), endpoint_url=s3.url)
    started = time.monotonic()
    for operation, key, call in (
        ("write", "leaderboard.csv", lambda: store.write_text("leaderboard.csv", "")),
        ("read", "leaderboard.csv", lambda: store.read_text("leaderboard.csv")),
        ("list", "trials", lambda: store.list("trials")),
    ):
        with pytest.raises(StorageError) as failure:
            call()
        assert str(failure.value) == (
            f"{operation} s3://hptune-no-such-bucket/out/{key} failed: "
            "NoSuchBucket: The specified bucket does not exist"
        )
    assert time.monotonic() - started < 5


def test_a_missing_object_is_not_an_error_of_the_store(s3: S3Server, prefix: str) -> None:
    store = Store(f"s3://{BUCKET}/{prefix}", Backoff(seconds=60), endpoint_url=s3.url)
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/{prefix}/nothing.json"):
        store.read_text("nothing.json")
    assert store.list("trials") == []
    assert not store.exists("nothing.json")
    store.delete("nothing.json")


def test_reads_see_what_other_processes_wrote_since(s3: S3Server, prefix: str) -> None:
    store = Store(f"s3://{BUCKET}/{prefix}", endpoint_url=s3.url)
    store.write_text("trials/0/trial.json", "{}")
    assert store.list("trials") == ["trials/0/trial.json"]
    assert not store.exists("trials/1/trial.json")
    client = s3.client()  # another writer, behind the store's back
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/trials/1/trial.json", Body=b'{"trialId": "1"}')
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/trials/0/trial.json", Body=b'{"trialId": "0"}')
    assert store.list("trials") == ["trials/0/trial.json", "trials/1/trial.json"]
    assert store.exists("trials/1/trial.json")
    assert store.size("trials/0/trial.json") == len(b'{"trialId": "0"}')
    assert store.read_text("trials/0/trial.json") == '{"trialId": "0"}'
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}/trials/1/trial.json")
    assert store.list("trials") == ["trials/0/trial.json"]


def _client_error(code: str, status: int) -> Exception:
    """The error s3fs raises for an S3 error answer: a Python error caused by botocore's."""
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    cause = ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )
    return translate_boto_error(cause)


def _connector_error() -> Exception:
    """What aiohttp raises when nothing listens on the port."""
    key = SimpleNamespace(host="127.0.0.1", port=9, ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))


def _wrapped(outer: Exception, cause: Exception) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("make", "transient"),
    [
        pytest.param(lambda: _client_error("SlowDown", 503), True, id="SlowDown"),
        pytest.param(lambda: _client_error("ServiceUnavailable", 503), True, id="ServiceUnavailable"),
        pytest.param(lambda: _client_error("InternalError", 500), True, id="InternalError"),
        pytest.param(lambda: _client_error("BadGateway", 502), True, id="502"),
        pytest.param(lambda: _client_error("TooManyRequests", 429), True, id="429"),
        pytest.param(lambda: _client_error("RequestTimeout", 400), True, id="RequestTimeout"),
        pytest.param(_connector_error, True, id="ClientConnectorError"),
        pytest.param(
            lambda: _wrapped(OSError(errno.EIO, "upload failed"), _connector_error()), True, id="wrapped"
        ),
        pytest.param(
            lambda: botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), True, id="ReadTimeout"
        ),
        pytest.param(
            lambda: botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), True, id="Closed"
        ),
        pytest.param(lambda: _client_error("NoSuchBucket", 404), False, id="NoSuchBucket"),
        pytest.param(lambda: _client_error("NoSuchKey", 404), False, id="NoSuchKey"),
        pytest.param(lambda: _client_error("AccessDenied", 403), False, id="AccessDenied"),
        pytest.param(lambda: _client_error("InvalidAccessKeyId", 403), False, id="InvalidAccessKeyId"),
        pytest.param(lambda: _client_error("InvalidBucketName", 400), False, id="InvalidBucketName"),
        pytest.param(botocore.exceptions.NoCredentialsError, False, id="NoCredentials"),
        pytest.param(  # a path that happens to hold "500" is no HTTP status
            lambda: OSError(errno.ENOSPC, "No space left on device: trials/500/model.keras"),
            False,
            id="ENOSPC",
        ),
    ],
)
def test_transient_errors_are_told_from_final_ones(make: Callable[[], Exception], transient: bool) -> None:
    assert is_transient(make()) is transient


# -- best/: replaced whole, manifest last ---------------------------------------------------------


def _trial(trial_id: str, score: float) -> kt.engine.trial.Trial:
    hp = kt.HyperParameters()
    hp.Fixed("units", 8)
    trial = kt.engine.trial.Trial(hp, trial_id=trial_id, status="COMPLETED")
    trial.metrics.register("val_accuracy", direction="max")
    trial.metrics.update("val_accuracy", score, step=0)
    trial.score, trial.best_step = score, 0
    return trial


@pytest.fixture(params=["path", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Store:
    if request.param == "path":
        return Store(str(tmp_path / "out"), Backoff(seconds=1))
    s3: S3Server = request.getfixturevalue("s3")
    return Store(f"s3://{BUCKET}/{prefix}", Backoff(seconds=1), endpoint_url=s3.url)


def test_a_new_best_replaces_the_old_one_manifest_last(store: Store) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    save_model(store, "trials/7/model.keras", model)
    store.write_text("best/model.keras", "an older best model")
    store.write_text("best/stale-from-an-older-run.txt", "gone after the next promotion")
    store.write_text(MANIFEST_KEY, json.dumps({"trialId": "3", "files": {}}))
    card = {"name": "t", "dataset": "d", "space": [], "version": "0"}
    trial = _trial("7", 0.9)
    promote_best(store, trial, [trial], "val_accuracy", "max", card)
    manifest = json.loads(store.read_text(MANIFEST_KEY))
    assert manifest["trialId"] == "7"
    assert set(store.list("best")) == {MANIFEST_KEY} | {f"best/{name}" for name in manifest["files"]}
    assert set(manifest["files"]) == set(BEST)
    assert verify_manifest(store) == []

    missing = _trial("8", 0.95)  # its model was never saved: promotion fails part-way
    with pytest.raises(StorageError, match=re.escape(f"read {store.url('trials/8/model.keras')} failed")):
        promote_best(store, missing, [trial, missing], "val_accuracy", "max", card)
    assert not store.exists(MANIFEST_KEY)
    assert verify_manifest(store) == [
        "best/manifest.json is missing: best/ is incomplete or the search has not finished"
    ]
