"""The seams between parts: the artifact store and the cluster reporter satisfy their protocols,
and the in-memory store behaves like the real ones for what the search relies on."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from job.cluster.api import api_client
from job.cluster.reporter import ClusterReporter, NullReporter, Reporter
from job.environment import Cluster
from job.storage import ArtifactStore, StorageError, Store, WorkerStore


@pytest.fixture
def memory_store() -> Store:
    return Store(f"memory://hptune-{uuid.uuid4().hex}/out")


def test_every_store_satisfies_the_artifact_store_protocol(memory_store: Store, tmp_path: Path) -> None:
    for store in (memory_store, Store(str(tmp_path)), Store(f"file://{tmp_path}")):
        assert isinstance(store, ArtifactStore)


def test_the_relay_through_the_chief_is_a_worker_store_and_no_more() -> None:
    from job.wire.relay import ChiefStore
    from job.wire.remote import RemoteOracle

    oracle = RemoteOracle("127.0.0.1:9", "tuner0", wait_seconds=0, heartbeat_seconds=1)
    try:
        relay = ChiefStore(oracle, "/output/x")
        assert isinstance(relay, WorkerStore)
        assert not isinstance(relay, ArtifactStore), (
            "a worker lists, copies or deletes nothing through the chief"
        )
    finally:
        oracle.close()


def test_the_output_spells_keras_tuners_completed_status_as_keras_tuner_does() -> None:
    from job.kt_adapter import Status
    from job.output.records import COMPLETED

    assert Status.COMPLETED == COMPLETED


def test_both_reporters_satisfy_the_reporter_protocol() -> None:
    from kubernetes.client import Configuration

    cluster = Cluster(namespace="ns", job_name=None, worker_job_name=None, pod_name=None)
    reporter = ClusterReporter(cluster, api_client(Configuration(host="http://127.0.0.1:9")))
    assert isinstance(reporter, Reporter)
    assert isinstance(NullReporter(), Reporter)
    reporter.search_ended(True, None)


def test_the_memory_store_reads_back_what_it_wrote(memory_store: Store, tmp_path: Path) -> None:
    memory_store.write_text("trials/00/trial.json", '{"a": 1}')
    local = tmp_path / "model.keras"
    local.write_bytes(b"weights")
    memory_store.put_file(local, "trials/00/model.keras")
    memory_store.copy("trials/00/model.keras", "best/model.keras")
    assert memory_store.read_text("trials/00/trial.json") == '{"a": 1}'
    assert memory_store.list("trials") == ["trials/00/model.keras", "trials/00/trial.json"]
    assert memory_store.checksum("best/model.keras")[0] == len(b"weights")
    memory_store.delete("trials/00")
    assert memory_store.list("trials") == []
    assert not memory_store.exists("trials/00/trial.json")


def test_a_missing_object_is_file_not_found_naming_its_uri(memory_store: Store) -> None:
    with pytest.raises(FileNotFoundError, match=r"memory://.*/out/search\.json"):
        memory_store.read_text("search.json")


def test_a_final_failure_is_a_storage_error_naming_the_operation(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = Store(str(blocker))
    with pytest.raises(StorageError, match=r"^write .*file/search\.json failed: "):
        store.write_text("search.json", "{}")
