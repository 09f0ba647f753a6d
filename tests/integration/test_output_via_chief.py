"""spec.output.viaChief: workers that cannot reach the output send their results through the chief,
over real gRPC on loopback, to the chief's own store."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml

from job.storage import StorageError, Store
from job.storage.errors import StorageRefused
from job.wire.artifacts import ArtifactService
from job.wire.relay import ChiefStore
from job.wire.remote import RemoteOracle
from tests.support.processes import search

FAST_LEASES = {"distribution": {"heartbeatSeconds": 0.5, "leaseSeconds": 3, "lingerSeconds": 10}}

# A builder (both.py: build_model) whose first build in each worker waits until both workers have
# begun a trial: each worker then runs at least one trial, whichever starts first and however fast
# the trials are. The chief's build (the search space) does not wait.
BOTH_WORKERS = """
import os, time
from pathlib import Path
import keras

HERE = Path(__file__).parent

def build_model(hp):
    me = os.environ.get("KERASTUNER_TUNER_ID", "chief")
    if me.startswith("tuner"):
        (HERE / f"arrived-{me}").touch()
        deadline = time.monotonic() + 120
        while len(list(HERE.glob("arrived-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(hp.Int("units", 16, 64, step=16),
                              activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model
"""
BOTH_WORKERS_MODEL = {"type": "custom", "builder": "both:build_model", "hidden": None, "learningRate": None}


def serve(store: Store | None) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if store is not None:
        server.add_generic_rpc_handlers((ArtifactService(store).handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def chief_output(tmp_path: Path) -> Iterator[tuple[Path, Callable[[str], ChiefStore]]]:
    """The chief's output directory, and the store a worker (by id) reaches it through."""
    out = tmp_path / "chief-output"
    server, port = serve(Store(str(out)))
    oracles: list[RemoteOracle] = []

    def worker(tuner_id: str) -> ChiefStore:
        oracle = RemoteOracle(f"127.0.0.1:{port}", tuner_id, wait_seconds=5, heartbeat_seconds=1)
        oracles.append(oracle)
        return ChiefStore(oracle, "/output/search")

    yield out, worker
    for oracle in oracles:
        oracle.close()
    server.stop(0)


def test_a_model_larger_than_a_grpc_message_arrives_whole(chief_output, tmp_path: Path) -> None:
    out, worker = chief_output
    model = os.urandom(9 * 2**20 + 123)  # gRPC refuses single messages over 4 MiB
    local = tmp_path / "model.keras"
    local.write_bytes(model)
    worker("tuner1").put_file(local, "trials/0007/attempts/tuner1/model.keras")
    assert (out / "trials/0007/attempts/tuner1/model.keras").read_bytes() == model


def test_a_worker_reads_the_search_status_and_published_checkpoints(chief_output, tmp_path: Path) -> None:
    out, worker = chief_output
    (out / "trials/0003").mkdir(parents=True)
    (out / "trials/0003/checkpoint.weights.h5").write_bytes(b"weights" * 1000)
    (out / "search.json").write_text('{"state": "running"}')
    store = worker("tuner0")
    assert json.loads(store.read_text("search.json")) == {"state": "running"}
    store.get_file("trials/0003/checkpoint.weights.h5", tmp_path / "got.h5")
    assert (tmp_path / "got.h5").read_bytes() == b"weights" * 1000
    assert store.exists("search.json") and not store.exists("trials/0009/checkpoint.weights.h5")
    missing = re.escape("/output/search/trials/0009/checkpoint.weights.h5")
    with pytest.raises(FileNotFoundError, match=missing):
        store.read_bytes("trials/0009/checkpoint.weights.h5")


@pytest.mark.parametrize(
    "key",
    [
        "trials/0001/attempts/tuner2/trial.json",  # another worker's attempt
        "trials/0001/trial.json",  # the chief's own record
        "best/model.keras",
        "state/snapshot.json",
        "trials/../../etc/attempts/tuner1/x",
        "trials/0001/attempts/tuner1/../../../../escape",
    ],
)
def test_a_worker_may_write_only_its_own_attempts(chief_output, key: str) -> None:
    out, worker = chief_output
    with pytest.raises(StorageError, match=r"PERMISSION_DENIED.*may not write"):
        worker("tuner1").write_text(key, "{}")
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_a_worker_may_not_read_the_chiefs_other_files(chief_output) -> None:
    out, worker = chief_output
    (out / "best").mkdir(parents=True)
    (out / "best/model.keras").write_bytes(b"model")
    with pytest.raises(StorageError, match=re.escape("may not read 'best/model.keras'")):
        worker("tuner0").read_bytes("best/model.keras")


def test_a_chief_without_the_service_is_named_with_what_to_do() -> None:
    server, port = serve(None)  # a chief that does not take workers' results (plain Keras Tuner)
    oracle = RemoteOracle(f"127.0.0.1:{port}", "tuner0", wait_seconds=5, heartbeat_seconds=1)
    try:
        with pytest.raises(StorageRefused, match=r"viaChief.*does not take workers' results"):
            ChiefStore(oracle, "/output/x").write_text("trials/1/attempts/tuner0/trial.json", "{}")
    finally:
        oracle.close()
        server.stop(0)


def test_workers_with_no_reach_of_the_output_complete_a_search_through_the_chief(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "both.py").write_text(BOTH_WORKERS)
    model = {"model": BOTH_WORKERS_MODEL, "hyperparameters": []}
    changes = {"spec": {"tuner": {"maxTrials": 4}, "output": {"viaChief": True}, **model, **FAST_LEASES}}
    spec = write_spec(changes)
    # The workers' copy of the spec names an output no process can write: they never touch it.
    unreachable = yaml.safe_load(spec.read_text())
    unreachable["spec"]["output"]["uri"] = "/proc/no-such-place/out"
    worker_spec = tmp_path / "worker.yaml"
    worker_spec.write_text(yaml.safe_dump(unreachable))
    with search(spec, tmp_path) as s:
        chief = s.chief()
        command = [sys.executable, "-m", "job", "run", str(worker_spec), "--metrics-port", "0"]
        workers = [s._start(f"tuner{i}", f"tuner{i}", command) for i in range(2)]
        assert chief.wait(timeout=240) == 0, chief.log[-3000:]
        for worker in workers:
            assert worker.wait(timeout=60) == 0, worker.log[-3000:]
    out = tmp_path / "out"
    records = [json.loads(p.read_text()) for p in (out / "trials").glob("*/trial.json")]
    assert len(records) == 4 and {r["status"] for r in records} == {"completed"}
    assert {r["worker"] for r in records} == {"tuner0", "tuner1"}, "both workers wrote through the chief"
    assert sorted(s.runs_per_trial().values()) == [1, 1, 1, 1], "no trial lost or run twice"
    assert (out / "best/model.keras").stat().st_size > 0
    assert (out / "best/manifest.json").exists()
    assert not list(out.glob("trials/*/attempts/*"))  # every staged attempt was published
