"""The command line: exit codes and the messages a person sees for each mistake."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import yaml

from tests.support.commands import hptune, hptune_env
from tests.support.specs import BASE_SPEC, REPO, merge


def test_validate_accepts_the_examples() -> None:
    for name in (
        "examples/mnist.yaml",
        "examples/mnist-notes.yaml",
        "examples/digits.yaml",
        "examples/custom/spec.yaml",
    ):
        result = hptune("validate", str(REPO / name))
        assert result.returncode == 0, result.stderr
        assert "valid TuningJob" in result.stdout


def test_validate_names_the_typo_its_line_and_the_suggestion(tmp_path: Path) -> None:
    text = (REPO / "examples/mnist.yaml").read_text().replace("maxTrials:", "maxTrails:")
    spec = tmp_path / "typo.yaml"
    spec.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "maxTrails" in row)
    result = hptune("validate", str(spec))
    assert result.returncode == 2
    assert f"{spec}:{line}:5: spec.tuner.maxTrails: unknown key (did you mean 'maxTrials'?)" in (
        " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr


def test_schema_prints_a_json_schema_that_accepts_the_examples() -> None:
    result = hptune("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((REPO / "examples/mnist.yaml").read_text()), schema)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    result = hptune("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


def test_a_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("apiVersion: hptune/v1\nkind: [TuningJob\nmetadata: {}\n")
    result = hptune("validate", str(spec))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {spec}:3:9: YAML syntax error: ")
    assert "Traceback" not in result.stderr


def test_run_refuses_a_broken_spec_before_any_training(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        yaml.safe_dump(
            merge(
                BASE_SPEC,
                {"spec": {"training": {"epochs": 0}, "output": {"uri": str(tmp_path / "o")}}},
            )
        )
    )
    result = hptune("run", str(spec))
    assert result.returncode == 2
    assert "spec.training.epochs: Input should be greater than or equal to 1; got 0" in result.stderr
    assert not (tmp_path / "o").exists()


def test_run_refuses_a_missing_dataset_with_how_to_fix(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec({"spec": {"data": {"source": "npz", "path": str(tmp_path / "gone.npz")}}})
    result = hptune("run", str(spec))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: spec.data.path={tmp_path / 'gone.npz'}: no such file"
    assert not (tmp_path / "out").exists()


def test_mnist_offline_says_how_to_provide_it(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": {"data": {"source": "mnist"}}})
    env = hptune_env(HOME=str(tmp_path), KERAS_HOME=str(tmp_path / "keras"))
    env.pop("HPTUNE_DATA_DIR", None)
    result = hptune("run", str(spec), env=env)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "error: cannot download mnist" in message
    assert "set HPTUNE_DATA_DIR to a directory holding mnist.npz" in message


def test_a_bad_role_environment_is_named(write_spec: Callable[..., Path]) -> None:
    spec = write_spec()
    result = hptune(
        "run",
        str(spec),
        env=hptune_env(KERASTUNER_TUNER_ID="tuner0", KERASTUNER_ORACLE_IP="127.0.0.1"),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: KERASTUNER_ORACLE_IP=127.0.0.1 is set but KERASTUNER_ORACLE_PORT is not; "
        "set both (the chief's address and port)"
    )


def test_a_run_shows_none_of_the_backends_start_up_lines(write_spec: Callable[..., Path]) -> None:
    spec = write_spec({"spec": {"tuner": {"maxTrials": 1}, "training": {"epochs": 1}}})
    env = hptune_env()
    del env["TF_CPP_MIN_LOG_LEVEL"]  # as in a user's shell
    result = hptune("run", str(spec), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    backend_lines = [line for line in result.stderr.splitlines() if re.match(r"[IWEF]\d{4} ", line)]
    assert backend_lines == []
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr


def test_commands_that_train_nothing_never_start_a_backend() -> None:
    """validate, schema, show, status and the supervisors (`hptune local`, a packing worker)
    answer in a fraction of a second: none of them imports Keras, TensorFlow or JAX."""
    code = (
        "import sys\n"
        "import job.cli, job.spec, job.environment, job.storage, job.observability.show\n"
        "import job.cluster.status, job.cluster.reporter, job.supervision.local, job.supervision.packing\n"
        "print(sorted(m for m in ('keras', 'keras_tuner', 'tensorflow', 'jax') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=hptune_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
