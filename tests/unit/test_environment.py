"""The role environment: every partial or contradictory combination gets a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from job.environment import BadEnvironment, Chief, Standalone, Worker, read_environment, read_role


def test_no_variables_is_a_standalone_search() -> None:
    assert read_role({}) == Standalone()


def test_the_keras_tuner_convention() -> None:
    base = {"KERASTUNER_ORACLE_IP": "10.0.0.5", "KERASTUNER_ORACLE_PORT": "8000"}
    assert read_role({**base, "KERASTUNER_TUNER_ID": "chief"}) == Chief("10.0.0.5", 8000)
    assert read_role({**base, "KERASTUNER_TUNER_ID": "tuner3"}) == Worker("tuner3", "10.0.0.5", 8000)
    assert read_role({"KERASTUNER_TUNER_ID": "chief"}) == Chief(None, None)


def test_an_indexed_job_gives_a_stable_worker_id() -> None:
    env = {
        "JOB_COMPLETION_INDEX": "4",
        "KERASTUNER_ORACLE_IP": "hptune-chief",
        "KERASTUNER_ORACLE_PORT": "8000",
    }
    assert read_role(env) == Worker("tuner4", "hptune-chief", 8000)
    assert read_role({**env, "KERASTUNER_TUNER_ID": "tuner9"}).tuner_id == "tuner9"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KERASTUNER_ORACLE_IP": "10.0.0.5", "KERASTUNER_TUNER_ID": "tuner0"},
            "KERASTUNER_ORACLE_IP=10.0.0.5 is set but KERASTUNER_ORACLE_PORT is not; set both "
            "(the chief's address and port)",
        ),
        (
            {"KERASTUNER_ORACLE_PORT": "8000", "KERASTUNER_TUNER_ID": "tuner0"},
            "KERASTUNER_ORACLE_PORT=8000 is set but KERASTUNER_ORACLE_IP is not; set both "
            "(the chief's address and port)",
        ),
        (
            {
                "KERASTUNER_ORACLE_IP": "h",
                "KERASTUNER_ORACLE_PORT": "eighty",
                "KERASTUNER_TUNER_ID": "chief",
            },
            "KERASTUNER_ORACLE_PORT='eighty' is not a port number (1-65535)",
        ),
        (
            {
                "KERASTUNER_ORACLE_IP": "h",
                "KERASTUNER_ORACLE_PORT": "70000",
                "KERASTUNER_TUNER_ID": "chief",
            },
            "KERASTUNER_ORACLE_PORT='70000' is not a port number (1-65535)",
        ),
        (
            {
                "KERASTUNER_ORACLE_IP": "h",
                "KERASTUNER_ORACLE_PORT": "8000",
                "KERASTUNER_TUNER_ID": "chief-2",
            },
            "KERASTUNER_TUNER_ID='chief-2' contains 'chief', which Keras Tuner treats as the chief; "
            "use exactly 'chief' for the chief and 'tuner<k>' for workers",
        ),
        (
            {"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "8000"},
            "KERASTUNER_ORACLE_IP is set but KERASTUNER_TUNER_ID is not; set it to 'chief' on the "
            "chief and 'tuner<k>' on each worker",
        ),
        (
            {"KERASTUNER_TUNER_ID": "tuner1"},
            "KERASTUNER_TUNER_ID=tuner1 makes this a worker, but KERASTUNER_ORACLE_IP and "
            "KERASTUNER_ORACLE_PORT (the chief's address) are not set",
        ),
        (
            {
                "KERASTUNER_ORACLE_IP": " ",
                "KERASTUNER_ORACLE_PORT": "8000",
                "KERASTUNER_TUNER_ID": "tuner0",
            },
            "KERASTUNER_ORACLE_IP is set but empty; give the chief's address",
        ),
        (
            {
                "JOB_COMPLETION_INDEX": "x",
                "KERASTUNER_ORACLE_IP": "h",
                "KERASTUNER_ORACLE_PORT": "1",
            },
            "JOB_COMPLETION_INDEX='x' is not a non-negative integer",
        ),
        (
            {
                "KERASTUNER_ORACLE_IP": "h",
                "KERASTUNER_ORACLE_PORT": "1",
                "KERASTUNER_TUNER_ID": "tuner 1",
            },
            "KERASTUNER_TUNER_ID='tuner 1' is not a valid worker id; use 'tuner<k>' (letters, digits, "
            "'-', '_' or '.', at most 63)",
        ),
    ],
)
def test_bad_environments_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(BadEnvironment) as caught:
        read_role(env)
    assert str(caught.value) == message


def test_in_cluster_needs_the_service_account_token(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "HPTUNE_JOB_NAME": "hptune-chief"}
    assert read_environment(env, tmp_path).cluster is None
    (tmp_path / "token").write_text("t")
    (tmp_path / "namespace").write_text("research\n")
    cluster = read_environment(env, tmp_path).cluster
    assert cluster is not None
    assert (cluster.namespace, cluster.job_name) == ("research", "hptune-chief")


def test_the_data_directory_is_read_once_into_a_path() -> None:
    assert read_environment({"HPTUNE_DATA_DIR": "/data"}).data_dir == Path("/data")
