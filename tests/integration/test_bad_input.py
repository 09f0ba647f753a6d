"""Bad input, case by case: every mistake a user can make is refused with the right exit code, a
message that names what is wrong and where (file, field path, variable, URI), and no traceback.

The catalogue (`CASES`) runs the real command line (`python -m job ...`) in child processes, on
specs, environments, datasets, storage locations and model builders that are each wrong in one
way. Exit codes are the contract's (job/errors.py): 2 for bad input (spec, environment, dataset,
model builder, command line, a storage location that refuses us), 1 for infrastructure that may
work later (a port that cannot be served). Every case must fail before the first trial starts
training.

Cases that import Keras (those that get past the spec and the environment) cost seconds each, so
the selected cases are run together, a few at a time, by one module fixture; each test then reads
its own outcome. Bad chart values are in `test_chart_values.py`; generated specs thrown at the
validator in-process are in `tests/unit/test_spec_properties.py`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from job.spec.base import MAX_SPEC_BYTES
from tests.support.commands import hptune, hptune_env
from tests.support.moto_s3 import S3Server
from tests.support.spec_yaml import dump_spec
from tests.support.specs import BASE_SPEC, merge

BAD_INPUT, FAILED = 2, 1
# What a worker logs as a trial starts training (job/search/worker.py): no bad input may get that far.
TRAINING_STARTED = "running trial"
PARALLEL_RUNS = 3


# -- the workspace each case builds its inputs in ----------------------------------------------


class Workspace:
    """A case's own directory: its spec, data files and modules; its output goes to out/."""

    def __init__(self, root: Path, s3: S3Server | None) -> None:
        self.root = root
        self.s3_server = s3
        self.out = root / "out"

    @property
    def s3(self) -> S3Server:
        assert self.s3_server is not None, "this case needs the S3 server (set s3=True)"
        return self.s3_server

    def doc(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        """The digits spec, one short trial, output under the workspace, with changes."""
        base = merge(
            BASE_SPEC,
            {
                "spec": {
                    "tuner": {"maxTrials": 1},
                    "training": {"epochs": 1},
                    "output": {"uri": str(self.out)},
                }
            },
        )
        return merge(base, changes or {})

    def spec(self, changes: dict[str, Any] | None = None, name: str = "spec.yaml") -> Path:
        return self.text(name, yaml.safe_dump(self.doc(changes), sort_keys=False))

    def text(self, name: str, content: str) -> Path:
        path = self.root / name
        path.write_text(content)
        return path

    def npz(self, **arrays: np.ndarray) -> Path:
        path = self.root / "data.npz"
        with path.open("wb") as handle:
            np.savez(handle, **arrays)
        return path

    def npz_spec(self, **arrays: np.ndarray) -> Path:
        return self.spec({"spec": {"data": {"source": "npz", "path": str(self.npz(**arrays))}}})

    def builder_spec(self, source: str, reference: str = "user_model:build_model") -> Path:
        """A spec with a custom model builder; the module sits beside the spec (on the import path)."""
        self.text("user_model.py", source)
        model = {"type": "custom", "builder": reference, "hidden": None, "learningRate": None}
        return self.spec({"spec": {"model": model}})


@dataclass
class Prepared:
    """The command a case runs, and what it needs while it runs."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    hold: socket.socket | None = None  # a socket kept open (holding a port) while the command runs
    words: dict[str, str] = field(default_factory=dict)  # extra {placeholders} for the messages


@dataclass(frozen=True)
class Case:
    id: str
    prepare: Callable[[Workspace], Prepared]
    code: int
    says: tuple[str, ...]  # fragments the error output must contain; {root}, {spec}, {port} filled in
    s3: bool = False
    slow: bool = False  # imports Keras: started first


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    says: tuple[str, ...]
    out: Path


def validate(case_id: str, make: Callable[[Workspace], Path], *says: str) -> Case:
    """`hptune validate` on a spec that is wrong: exit 2."""
    return Case(case_id, lambda ws: Prepared(["validate", str(make(ws))]), BAD_INPUT, ("{spec}", *says))


def spec_change(case_id: str, changes: dict[str, Any], *says: str) -> Case:
    return validate(case_id, lambda ws: ws.spec(changes), *says)


def run(
    case_id: str,
    make: Callable[[Workspace], Path],
    code: int,
    *says: str,
    env: Callable[[Workspace], dict[str, str]] | None = None,
    s3: bool = False,
    slow: bool = True,
) -> Case:
    """`hptune run` on a valid spec whose data, storage, builder or environment is wrong."""

    def prepare(ws: Workspace) -> Prepared:
        return Prepared(["run", str(make(ws))], env(ws) if env else {})

    return Case(case_id, prepare, code, says, s3=s3, slow=slow)


def role(case_id: str, variables: dict[str, str], *says: str) -> Case:
    """`hptune run` with role variables that are wrong: refused before Keras is even imported."""
    return run(case_id, lambda ws: ws.spec(), BAD_INPUT, *says, env=lambda ws: variables, slow=False)


def text_spec(name: str, content: str | bytes) -> Callable[[Workspace], Path]:
    def make(ws: Workspace) -> Path:
        path = ws.root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return make


def _billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _with_duplicate_key(ws: Workspace) -> Path:
    text = yaml.safe_dump(ws.doc(), sort_keys=False)
    line = next(row for row in text.splitlines() if row.strip().startswith("maxTrials:"))
    indent = line[: len(line) - len(line.lstrip())]
    return ws.text("spec.yaml", text.replace(line + "\n", f"{line}\n{indent}maxTrials: 500\n"))


def _not_utf8(ws: Workspace) -> Path:
    text = "# r\u00e9sum\u00e9 of the search\n" + yaml.safe_dump(ws.doc(), sort_keys=False)
    path = ws.root / "latin1.yaml"
    path.write_bytes(text.encode("latin-1"))
    return path


def _ten_megabytes(ws: Workspace) -> Path:
    text = yaml.safe_dump(ws.doc(), sort_keys=False)
    filler = ("# " + "x" * 98 + "\n") * (10 * 1024 * 1024 // 101 + 1)
    return ws.text("huge.yaml", text + filler)


def _directory(ws: Workspace) -> Path:
    path = ws.root / "spec.d"
    path.mkdir()
    return path


def _held_port(ws: Workspace) -> Prepared:
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    port = holder.getsockname()[1]
    return Prepared(
        ["run", str(ws.spec({"spec": {"metrics": {"port": port}}}))], hold=holder, words={"port": str(port)}
    )


def _output(uri: str, **more: Any) -> Callable[[Workspace], Path]:
    return lambda ws: ws.spec({"spec": {"output": {"uri": uri.format(root=ws.root), **more}}})


def _s3_env(ws: Workspace) -> dict[str, str]:
    return ws.s3.env()


def _under_a_file(ws: Workspace) -> Path:
    (ws.root / "afile").write_text("a regular file, not a directory\n")
    return ws.spec({"spec": {"output": {"uri": str(ws.root / "afile" / "sub")}}})


def _labels(n: int = 40) -> np.ndarray:
    return np.arange(n) % 3


def _features(n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).random((n, 4), dtype=np.float32)


def _with_nan() -> np.ndarray:
    x = _features()
    x[3, 1] = np.nan
    return x


def _loader_spec(source: str, **data: Any) -> Callable[[Workspace], Path]:
    """A spec whose data comes from a custom loader (user_data.py beside the spec)."""

    def make(ws: Workspace) -> Path:
        ws.text("user_data.py", source)
        return ws.spec({"spec": {"data": {"source": "custom", "loader": "user_data:load_data", **data}}})

    return make


LOADER_RAISES = """\
def load_data():
    return read_rows("wines.csv")


def read_rows(name):
    raise FileNotFoundError(f"no file {name} in the bucket")
"""
LOADER_LENGTHS_DIFFER = """\
import numpy as np


def load_data():
    return (np.zeros((40, 64)), np.zeros(39)), (np.zeros((10, 64)), np.zeros(10))
"""


def _image_folder(classes: dict[str, int]) -> Callable[[Workspace], Path]:
    def make(ws: Workspace) -> Path:
        folder = ws.root / "pictures"
        folder.mkdir()
        for name, count in classes.items():
            (folder / name).mkdir()
            for i in range(count):
                (folder / name / f"{i}.png").write_bytes(b"not decoded: refused before reading")
        return ws.spec({"spec": {"data": {"source": "images", "path": str(folder)}}})

    return make


def _table(label: str, **data: Any) -> Callable[[Workspace], Path]:
    def make(ws: Workspace) -> Path:
        rows = "".join(f"{i % 7},{i * 0.5},{'red' if i % 2 else 'white'},{i % 3}\n" for i in range(30))
        path = ws.text("wines.csv", "acidity,alcohol,colour,grade\n" + rows)
        return ws.spec({"spec": {"data": {"source": "table", "path": str(path), "label": label, **data}}})

    return make


def _hypermodel_spec(source: str, reference: str) -> Callable[[Workspace], Path]:
    def make(ws: Workspace) -> Path:
        ws.text("user_model.py", source)
        model = {"type": "hypermodel", "class": reference, "hidden": None, "learningRate": None}
        return ws.spec({"spec": {"model": model}})

    return make


UNCOMPILED = """\
import keras


def build_model(hp):
    return keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")])
"""

CASES: list[Case] = [
    # -- the spec file ---------------------------------------------------------------------------
    validate("spec-missing-file", lambda ws: ws.root / "nope.yaml", "no such file"),
    validate("spec-is-a-directory", _directory, "is a directory, not a spec file"),
    validate("spec-empty-file", text_spec("empty.yaml", ""), "this document is empty"),
    validate(
        "spec-is-a-list", text_spec("list.yaml", "- apiVersion: hptune/v1\n- kind: TuningJob\n"), "a list"
    ),
    validate("spec-is-a-string", text_spec("word.yaml", "just some words\n"), "this document is a str"),
    validate(
        "spec-10mb-file",
        _ten_megabytes,
        "bytes; a spec may be at most",
        str(MAX_SPEC_BYTES),
    ),
    validate("spec-not-utf8", _not_utf8, "is not UTF-8 text (byte 3)"),
    validate(
        "spec-billion-laughs",
        text_spec("lol.yaml", _billion_laughs()),
        ":2:",
        "YAML aliases (*name) are not allowed",
    ),
    validate(
        "spec-tab-indentation",
        text_spec("tabs.yaml", "apiVersion: hptune/v1\nkind: TuningJob\nmetadata:\n\tname: x\n"),
        ":4:1: YAML syntax error",
    ),
    validate(
        "spec-two-documents",
        lambda ws: ws.text("two.yaml", yaml.safe_dump(ws.doc()) + "---\n" + yaml.safe_dump(ws.doc())),
        "YAML syntax error",
        "document",
    ),
    validate("spec-duplicate-key", _with_duplicate_key, "duplicate", "maxTrials"),
    spec_change(
        "spec-wrong-api-version", {"apiVersion": "hptune/v2"}, "apiVersion: 'hptune/v2' is not valid"
    ),
    spec_change("spec-wrong-kind", {"kind": "Job"}, "kind: 'Job' is not valid; expected 'TuningJob'"),
    spec_change(
        "spec-name-not-a-dns-label",
        {"metadata": {"name": "Digits_Test"}},
        "metadata.name: must be a DNS-1123",
    ),
    spec_change(
        "spec-unknown-key",
        {"spec": {"training": {"epoch": 3}}},
        "spec.training.epoch: unknown key (did you mean 'epochs'?)",
    ),
    spec_change(
        "spec-epochs-wrong-type",
        {"spec": {"training": {"epochs": "two"}}},
        "spec.training.epochs: Input should be a valid integer",
        "'two'",
    ),
    spec_change(
        "spec-batch-size-zero",
        {"spec": {"training": {"batchSize": 0}}},
        "spec.training.batchSize: Input should be greater than or equal to 1; got 0",
    ),
    spec_change(
        "spec-validation-fraction-above-one",
        {"spec": {"data": {"validation": {"fraction": 1.5}}}},
        "spec.data.validation.fraction: Input should be less than 1; got 1.5",
    ),
    spec_change(
        "spec-oracle-port-out-of-range",
        {"spec": {"distribution": {"oraclePort": 70000}}},
        "spec.distribution.oraclePort: Input should be less than or equal to 65535; got 70000",
    ),
    spec_change(
        "spec-metrics-port-negative",
        {"spec": {"metrics": {"port": -1}}},
        "spec.metrics.port: Input should be greater than or equal to 0; got -1",
    ),
    spec_change(
        "spec-data-source-unknown",
        {"spec": {"data": {"source": "cifar10"}}},
        "spec.data.source: 'cifar10' is not valid",
    ),
    spec_change(
        "spec-npz-without-path",
        {"spec": {"data": {"source": "npz"}}},
        "spec.data.path: is required with source: npz",
    ),
    spec_change(
        "spec-hyperband-settings-with-random-search",
        {"spec": {"tuner": {"algorithm": "random", "hyperband": {"maxEpochs": 9}}}},
        "spec.tuner.hyperband: applies only to algorithm: hyperband",
    ),
    spec_change(
        "spec-bayesian-settings-with-grid-search",
        {"spec": {"tuner": {"algorithm": "grid", "bayesian": {"numInitialPoints": 2}}}},
        "spec.tuner.bayesian: applies only to algorithm: bayesian",
    ),
    spec_change(
        "spec-hyperband-without-settings",
        {"spec": {"tuner": {"algorithm": "hyperband"}}},
        "spec.tuner.hyperband: is required with algorithm: hyperband",
    ),
    validate(
        "spec-random-search-without-max-trials",
        lambda ws: ws.text("spec.yaml", dump_spec(ws.doc()).replace("maxTrials: 1\n", "maxTrials: null\n")),
        "spec.tuner.maxTrials: is required with algorithm: random",
    ),
    spec_change(
        "spec-grid-over-a-continuous-float",
        {
            "spec": {
                "tuner": {"algorithm": "grid"},
                "hyperparameters": [
                    BASE_SPEC["spec"]["hyperparameters"][0],
                    {"name": "dropout1", "type": "float", "min": 0.1, "max": 0.3},
                    BASE_SPEC["spec"]["hyperparameters"][2],
                ],
            }
        },
        "spec.hyperparameters[1].step: is required with algorithm: grid",
    ),
    spec_change(
        "spec-hyperparameter-min-above-max",
        {"spec": {"hyperparameters": [{"name": "hidden1", "type": "int", "min": 64, "max": 16}]}},
        "spec.hyperparameters[0].max: must be greater than min (64); got 16",
    ),
    spec_change(
        "spec-log-sampling-from-zero",
        {
            "spec": {
                "hyperparameters": [
                    {"name": "hidden1", "type": "int", "min": 0, "max": 64, "sampling": "log"}
                ]
            }
        },
        "spec.hyperparameters[0].min: must be greater than 0 with log sampling; got 0",
    ),
    spec_change(
        "spec-float-range-not-finite",
        {"spec": {"hyperparameters": [{"name": "hidden1", "type": "float", "min": 0, "max": math.inf}]}},
        "spec.hyperparameters[0].max: must be a finite number",
    ),
    spec_change(
        "spec-hyperparameter-type-unknown",
        {"spec": {"hyperparameters": [{"name": "hidden1", "type": "integer", "min": 16, "max": 64}]}},
        "spec.hyperparameters[0].type: type must be one of int, float, choice, boolean, fixed",
    ),
    spec_change(
        "spec-choice-of-mixed-kinds",
        {"spec": {"hyperparameters": [{"name": "hidden1", "type": "choice", "values": [16, "32"]}]}},
        "spec.hyperparameters[0].values: must all be of one type",
    ),
    spec_change(
        "spec-choice-without-values",
        {"spec": {"hyperparameters": [{"name": "hidden1", "type": "choice", "values": []}]}},
        "spec.hyperparameters[0].values: must list at least one value",
    ),
    spec_change(
        "spec-choice-of-strings-ordered",
        {
            "spec": {
                "hyperparameters": [
                    *BASE_SPEC["spec"]["hyperparameters"],
                    {"name": "act", "type": "choice", "values": ["relu", "tanh"], "ordered": True},
                ]
            }
        },
        "spec.hyperparameters[3].ordered",
    ),
    spec_change(
        "spec-log-float-step-not-above-one",
        {
            "spec": {
                "hyperparameters": [
                    *BASE_SPEC["spec"]["hyperparameters"],
                    {
                        "name": "decay",
                        "type": "float",
                        "min": 0.001,
                        "max": 0.1,
                        "step": 0.5,
                        "sampling": "log",
                    },
                ]
            }
        },
        "spec.hyperparameters[3].step",
    ),
    spec_change(
        "spec-hyperparameter-defined-twice",
        {
            "spec": {
                "hyperparameters": [
                    *BASE_SPEC["spec"]["hyperparameters"],
                    {"name": "hidden1", "type": "boolean"},
                ]
            }
        },
        "spec.hyperparameters[3].name: 'hidden1' is already defined at hyperparameters[0]",
    ),
    spec_change(
        "spec-undefined-hyperparameter",
        {"spec": {"model": {"hidden": [{"units": "hiden1", "dropout": "dropout1"}]}}},
        "spec.model.hidden[0].units: refers to hyperparameter 'hiden1'",
        "(did you mean 'hidden1'?)",
    ),
    spec_change(
        "spec-objective-the-model-does-not-report",
        {"spec": {"tuner": {"objective": {"name": "val_auc"}}}},
        "spec.tuner.objective.name: 'val_auc' is not a metric this model reports",
    ),
    spec_change(
        "spec-heartbeat-longer-than-half-the-lease",
        {"spec": {"distribution": {"leaseSeconds": 10, "heartbeatSeconds": 6}}},
        "spec.distribution.heartbeatSeconds: must be at most half of leaseSeconds",
    ),
    spec_change(
        "spec-batch-size-names-a-float-hyperparameter",
        {"spec": {"training": {"batchSize": "dropout1"}}},
        "spec.training.batchSize: names hyperparameter 'dropout1' (hyperparameters[1]), a float "
        "hyperparameter; it must be an int choice or int range",
    ),
    spec_change(
        "spec-custom-data-without-loader",
        {"spec": {"data": {"source": "custom"}}},
        "spec.data.loader: is required with source: custom",
    ),
    spec_change(
        "spec-builder-reference-malformed",
        {"spec": {"model": {"type": "custom", "builder": "models.cnn.build_model", "hidden": None}}},
        'spec.model.builder: must look like "package.module:build_model"',
    ),
    # -- the command line ------------------------------------------------------------------------
    Case(
        "cli-local-with-no-workers",
        lambda ws: Prepared(["local", str(ws.spec()), "--workers", "0"]),
        BAD_INPUT,
        ("--workers must be at least 1",),
    ),
    Case(
        "cli-local-gpus-on-a-machine-without-any",
        # No GPU on a test machine: no driver answers NVML. Refused before any process starts.
        lambda ws: Prepared(["local", str(ws.spec()), "--gpus", "0,1"]),
        BAD_INPUT,
        ("--gpus 0,1 asks for GPU(s) 0,1, but this machine shows none: no NVIDIA driver answers",),
    ),
    Case(
        "cli-metrics-port-not-a-number",
        lambda ws: Prepared(["run", str(ws.spec()), "--metrics-port", "ninety"]),
        BAD_INPUT,
        ("argument --metrics-port: invalid int value: 'ninety'",),
    ),
    Case(
        "cli-local-refuses-a-broken-spec",
        lambda ws: Prepared(["local", str(ws.spec({"spec": {"training": {"epochs": 0}}}))]),
        BAD_INPUT,
        ("{spec}", "spec.training.epochs: Input should be greater than or equal to 1; got 0"),
    ),
    # -- the environment -------------------------------------------------------------------------
    role(
        "env-port-not-a-number",
        {
            "KERASTUNER_TUNER_ID": "tuner0",
            "KERASTUNER_ORACLE_IP": "10.0.0.1",
            "KERASTUNER_ORACLE_PORT": "grpc",
        },
        "KERASTUNER_ORACLE_PORT='grpc' is not a port number (1-65535)",
    ),
    role(
        "env-port-out-of-range",
        {
            "KERASTUNER_TUNER_ID": "chief",
            "KERASTUNER_ORACLE_IP": "0.0.0.0",
            "KERASTUNER_ORACLE_PORT": "65536",
        },
        "KERASTUNER_ORACLE_PORT='65536' is not a port number (1-65535)",
    ),
    role(
        "env-port-zero",
        {"KERASTUNER_TUNER_ID": "tuner1", "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "0"},
        "KERASTUNER_ORACLE_PORT='0' is not a port number",
    ),
    role(
        "env-port-without-address",
        {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_PORT": "8000"},
        "KERASTUNER_ORACLE_PORT=8000 is set but KERASTUNER_ORACLE_IP is not",
    ),
    role(
        "env-address-empty",
        {"KERASTUNER_TUNER_ID": "tuner0", "KERASTUNER_ORACLE_IP": " ", "KERASTUNER_ORACLE_PORT": "8000"},
        "KERASTUNER_ORACLE_IP is set but empty",
    ),
    role(
        "env-address-without-tuner-id",
        {"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"},
        "KERASTUNER_ORACLE_IP is set but KERASTUNER_TUNER_ID is not",
    ),
    role(
        "env-tuner-id-containing-chief",
        {
            "KERASTUNER_TUNER_ID": "chief-2",
            "KERASTUNER_ORACLE_IP": "10.0.0.1",
            "KERASTUNER_ORACLE_PORT": "8000",
        },
        "KERASTUNER_TUNER_ID='chief-2' contains 'chief'",
    ),
    role(
        "env-tuner-id-with-bad-characters",
        {
            "KERASTUNER_TUNER_ID": "tuner 0;rm",
            "KERASTUNER_ORACLE_IP": "10.0.0.1",
            "KERASTUNER_ORACLE_PORT": "8000",
        },
        "KERASTUNER_TUNER_ID='tuner 0;rm' is not a valid worker id",
    ),
    role(
        "env-worker-without-chief-address",
        {"KERASTUNER_TUNER_ID": "tuner3"},
        "KERASTUNER_TUNER_ID=tuner3 makes this a worker",
        "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT",
    ),
    role(
        "env-completion-index-negative",
        {"JOB_COMPLETION_INDEX": "-1", "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"},
        "JOB_COMPLETION_INDEX='-1' is not a non-negative integer",
    ),
    role(
        "env-completion-index-not-a-number",
        {"JOB_COMPLETION_INDEX": "two", "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"},
        "JOB_COMPLETION_INDEX='two' is not a non-negative integer",
    ),
    role(
        "env-completion-index-without-chief-address",
        {"JOB_COMPLETION_INDEX": "0"},
        "JOB_COMPLETION_INDEX=0",
        "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT",
    ),
    role(
        "env-a-worker-given-gpus-sees-none",
        {
            "KERASTUNER_TUNER_ID": "tuner0",
            "KERASTUNER_ORACLE_IP": "10.0.0.1",
            "KERASTUNER_ORACLE_PORT": "8000",
            "HPTUNE_EXPECT_GPUS": "2",
        },
        "this worker was given 2 GPU(s) (HPTUNE_EXPECT_GPUS=2: the chart's gpu.count",
        "but it sees none (no NVIDIA driver answers",
    ),
    run(
        "env-a-process-given-a-gpu-whose-backend-sees-none",
        lambda ws: ws.spec(),
        BAD_INPUT,
        "this process was given 1 GPU(s) (HPTUNE_EXPECT_GPUS=1",
        "backend sees none",
        "Set gpu.count: 0 (or --gpus none) to train on the CPU on purpose.",
        env=lambda ws: {"HPTUNE_EXPECT_GPUS": "1"},
    ),
    run(
        "env-gpus-per-trial-without-the-gpus",
        lambda ws: ws.spec({"spec": {"distribution": {"gpusPerTrial": 2}}}),
        BAD_INPUT,
        "spec.distribution.gpusPerTrial is 2, but this trial process sees 0 GPU device(s) (none)",
    ),
    spec_change(
        "spec-fused-trials-over-several-gpus",
        {"spec": {"distribution": {"gpusPerTrial": 2, "fuseTrials": 2}}},
        "spec.distribution.fuseTrials: is 2, but distribution.gpusPerTrial is 2",
    ),
    role(
        "env-expected-gpus-not-a-number",
        {"HPTUNE_EXPECT_GPUS": "all"},
        "HPTUNE_EXPECT_GPUS='all' is not an integer",
    ),
    Case(
        "env-metrics-port-in-use",
        _held_port,
        FAILED,
        ("{port}", "Address already in use", "spec.metrics.port"),
        slow=True,
    ),
    # -- datasets --------------------------------------------------------------------------------
    run(
        "data-missing-file",
        lambda ws: ws.spec({"spec": {"data": {"source": "npz", "path": str(ws.root / "gone.npz")}}}),
        BAD_INPUT,
        "spec.data.path={root}/gone.npz: no such file",
    ),
    run(
        "data-npz-without-labels",
        lambda ws: ws.npz_spec(x_train=_features()),
        BAD_INPUT,
        "{root}/data.npz: missing array(s) ['y_train']",
    ),
    run(
        "data-x-and-y-lengths-differ",
        lambda ws: ws.npz_spec(x_train=_features(40), y_train=_labels(39)),
        BAD_INPUT,
        "{root}/data.npz: x_train has 40 samples but y_train has 39",
    ),
    run(
        "data-nan-in-features",
        lambda ws: ws.npz_spec(x_train=_with_nan(), y_train=_labels()),
        BAD_INPUT,
        "{root}/data.npz: x_train contains NaN or infinite values",
    ),
    run(
        "data-labels-not-integers",
        lambda ws: ws.npz_spec(x_train=_features(), y_train=_labels() + 0.5),
        BAD_INPUT,
        "{root}/data.npz: y_train must hold integer class labels",
    ),
    run(
        "data-file-not-npz",
        lambda ws: ws.spec(
            {"spec": {"data": {"source": "npz", "path": str(ws.text("data.npz", "x_train,y_train\n1,2\n"))}}}
        ),
        BAD_INPUT,
        "{root}/data.npz: not a readable .npz file",
    ),
    run(
        "data-loader-raises",
        _loader_spec(LOADER_RAISES),
        BAD_INPUT,
        "spec.data.loader: user_data:load_data raised FileNotFoundError: no file wines.csv in the bucket",
        'user_data.py", line 6, in read_rows',
    ),
    run(
        "data-loader-returns-the-wrong-type",
        _loader_spec("def load_data():\n    return 'wines.csv'\n"),
        BAD_INPUT,
        "spec.data.loader: user_data:load_data returned a str; expected ((x_train, y_train), (x_val, y_val))",
    ),
    run(
        "data-loader-returns-the-wrong-shape",
        _loader_spec("def load_data():\n    return {'train': ([0], [0]), 'test': ([0], [0])}\n"),
        BAD_INPUT,
        "user_data:load_data returned a mapping with keys ['test', 'train']; it needs exactly train and "
        "validation",
    ),
    run(
        "data-loader-lengths-differ",
        _loader_spec(LOADER_LENGTHS_DIFFER),
        BAD_INPUT,
        "user_data:load_data returned train x with 40 samples but train y with 39",
    ),
    run(
        "data-images-empty-folder",
        _image_folder({}),
        BAD_INPUT,
        "spec.data.path={root}/pictures: has no class subdirectories",
    ),
    run(
        "data-images-single-class",
        _image_folder({"cats": 5}),
        BAD_INPUT,
        "spec.data.path={root}/pictures: has a single class ('cats', 5 images)",
    ),
    run(
        "data-table-missing-label-column",
        _table("quality"),
        BAD_INPUT,
        "spec.data.label: no column 'quality' in {root}/wines.csv",
        "its columns: ['acidity', 'alcohol', 'colour', 'grade']",
    ),
    run(
        "data-table-text-feature-without-encoding",
        _table("grade", features=["acidity", "colour"]),
        BAD_INPUT,
        "spec.data.features: column 'colour' of {root}/wines.csv holds string values, not numbers; list "
        "it under spec.data.categorical",
    ),
    # -- storage ---------------------------------------------------------------------------------
    spec_change(
        "storage-unknown-scheme",
        {"spec": {"output": {"uri": "foo://bucket/x"}}},
        "spec.output.uri",
        "foo://bucket/x",
    ),
    spec_change(
        "storage-s3-without-bucket", {"spec": {"output": {"uri": "s3://"}}}, "spec.output.uri", "bucket"
    ),
    spec_change(
        "storage-s3-with-empty-bucket",
        {"spec": {"output": {"uri": "s3:///out"}}},
        "spec.output.uri",
        "bucket",
    ),
    spec_change(
        "storage-endpoint-not-a-url",
        {"spec": {"output": {"uri": "s3://results/x", "endpointUrl": "minio:9000"}}},
        "spec.output.endpointUrl",
        "minio:9000",
    ),
    Case(
        "storage-output-override-unknown-scheme",
        lambda ws: Prepared(["run", str(ws.spec()), "--output", "foo://bucket/x"]),
        BAD_INPUT,
        ("foo://bucket/x",),
        slow=True,
    ),
    run(
        "storage-no-such-bucket",
        _output("s3://hptune-no-such-bucket/run", retrySeconds=0),
        BAD_INPUT,
        "s3://hptune-no-such-bucket/run/",
        "NoSuchBucket",
        env=_s3_env,
        s3=True,
    ),
    run(
        "storage-path-under-a-regular-file",
        _under_a_file,
        BAD_INPUT,
        "{root}/afile/sub/",
        "Not a directory",
    ),
    run(
        "storage-read-only-location",
        _output("/sys/hptune-bad-input-test/out"),
        BAD_INPUT,
        "/sys/hptune-bad-input-test/out/",
        "Operation not permitted",
    ),
    # -- custom model builders -------------------------------------------------------------------
    run(
        "builder-module-missing",
        lambda ws: ws.builder_spec("", reference="hptune_no_such_module:build_model"),
        BAD_INPUT,
        "spec.model.builder: cannot import module 'hptune_no_such_module'",
        "(looked in {root}",
    ),
    run(
        "builder-takes-no-argument",
        lambda ws: ws.builder_spec("def build_model():\n    return None\n"),
        BAD_INPUT,
        "spec.model.builder: user_model:build_model must take exactly one argument (hp)",
    ),
    run(
        "builder-returns-an-uncompiled-model",
        lambda ws: ws.builder_spec(UNCOMPILED),
        BAD_INPUT,
        "spec.model.builder: build_model(hp) returned a model that is not compiled",
    ),
    run(
        "builder-returns-not-a-model",
        lambda ws: ws.builder_spec("def build_model(hp):\n    return {'layers': 3}\n"),
        BAD_INPUT,
        "spec.model.builder: build_model(hp) must return a keras.Model; got dict",
    ),
    run(
        "builder-raises-at-import",
        lambda ws: ws.builder_spec("raise RuntimeError('no GPU in this sandbox')\n"),
        BAD_INPUT,
        "spec.model.builder: importing 'user_model' raised RuntimeError: no GPU in this sandbox",
    ),
    run(
        "builder-hypermodel-not-a-hypermodel",
        _hypermodel_spec("class Tuned:\n    def build(self, hp):\n        pass\n", "user_model:Tuned"),
        BAD_INPUT,
        "spec.model.class: user_model:Tuned is the class user_model.Tuned, not a keras_tuner.HyperModel",
    ),
]


def _oneline(text: str) -> str:
    return " ".join(text.split())


def _execute(case: Case, ws: Workspace) -> Outcome:
    prepared = case.prepare(ws)
    spec = next((a for a in prepared.args[1:] if not a.startswith("-")), "")
    words = {"root": str(ws.root), "spec": spec, **prepared.words}
    try:
        result = hptune(*prepared.args, env=hptune_env(**prepared.env), cwd=ws.root, timeout=240)
    finally:
        if prepared.hold is not None:
            prepared.hold.close()
    says = tuple(fragment.format(**words) for fragment in case.says)
    return Outcome(result.returncode, result.stdout, result.stderr, says, ws.out)


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """Run the selected cases, a few at a time, slow (Keras-importing) ones first."""
    selected = {
        item.callspec.id
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_bad_input_is_refused" and hasattr(item, "callspec")
    }
    cases = sorted((c for c in CASES if c.id in selected), key=lambda c: not c.slow)
    with contextlib.ExitStack() as stack:
        s3: S3Server | None = None
        if any(c.s3 for c in cases):
            s3 = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
            stack.callback(s3.close)
        with concurrent.futures.ThreadPoolExecutor(PARALLEL_RUNS) as pool:
            futures = {
                case.id: pool.submit(_execute, case, Workspace(tmp_path_factory.mktemp(case.id), s3))
                for case in cases
            }
            yield {case_id: _outcome(future) for case_id, future in futures.items()}


def _outcome(future: concurrent.futures.Future[Outcome]) -> Outcome:
    """The case's outcome; a case that could not run (a timeout) fails alone, not the module."""
    try:
        return future.result()
    except Exception as err:
        return Outcome(-1, "", f"the case did not run to the end: {err!r}", (), Path("/nonexistent"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything
    assert outcome.code == case.code, f"exit {outcome.code}, expected {case.code}:\n{everything}"
    message = _oneline(outcome.stderr)
    for fragment in outcome.says:
        assert _oneline(fragment) in message, f"{fragment!r} not in the error output:\n{outcome.stderr}"
    assert TRAINING_STARTED not in everything, f"a trial started training before the error:\n{everything}"
    assert not (outcome.out / "trials").exists(), "trial results were written for a refused input"


def test_the_catalogue_is_broad() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    kinds = {case_id.split("-")[0] for case_id in ids}
    assert kinds == {"spec", "cli", "env", "data", "storage", "builder"}
    assert len(ids) >= 30
