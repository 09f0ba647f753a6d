"""Data sources, in process: a custom loader's arrays, tf.data.Datasets and PyDatasets and the checks
on what it returns; image folders; CSV and Parquet tables; a remote folder fetched once (fsspec's
memory:// filesystem stands in for s3:// and gs://). Every bad input is a DataError (exit 2) whose
message names what is wrong and where."""

from __future__ import annotations

import logging
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from job.spec.data import DataSpec
from job.training.data import DataError, load_dataset
from job.training.data import fetch as fetch_module
from job.training.data import images as images_module


def data_spec(**fields: Any) -> DataSpec:
    return DataSpec.model_validate(fields)


def loader(tmp_path: Path, body: str, module: str = "user_data", **fields: Any) -> tuple[DataSpec, Path]:
    """A custom loader module beside a (virtual) spec file in tmp_path."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
    return data_spec(source="custom", loader=f"{module}:load_data", **fields), tmp_path


# -- custom loaders ------------------------------------------------------------------------------


def test_a_loader_returning_arrays_keeps_them_as_they_are(tmp_path: Path) -> None:
    spec, where = loader(
        tmp_path,
        """
        import numpy as np

        def load_data(n=30):
            x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
            y = np.arange(n) % 3
            return (x[:20], y[:20]), (x[20:], y[20:])
        """,
        module="arrays_loader",
        args={"n": 30},
    )
    data = load_dataset(spec, spec_dir=where)
    assert not data.streamed
    assert data.x_train.shape == (20, 4) and data.x_train.dtype == np.float32
    assert data.y_train.dtype.kind == "i"  # labels as returned: no one-hot, no rescaling
    assert (data.num_classes, data.output_units, data.input_shape) == (3, 3, (4,))
    assert data.description == "custom (arrays_loader:load_data)"


def test_float_targets_are_a_regression(tmp_path: Path) -> None:
    spec, where = loader(
        tmp_path,
        """
        import numpy as np

        def load_data():
            x = np.ones((10, 3), np.float32)
            return {"train": (x, np.linspace(0, 1, 10)), "validation": (x[:4], np.zeros(4))}
        """,
        module="regression_loader",
    )
    data = load_dataset(spec, spec_dir=where)
    assert (data.num_classes, data.output_units) == (0, 1)


def test_a_loader_may_return_tf_data_datasets(tmp_path: Path) -> None:
    spec, where = loader(
        tmp_path,
        """
        import numpy as np
        import tensorflow as tf

        def load_data(batch_size):
            x = np.zeros((40, 6), np.float32)
            y = np.eye(5, dtype=np.float32)[np.arange(40) % 5]
            make = lambda n: tf.data.Dataset.from_tensor_slices((x[:n], y[:n])).batch(batch_size)
            return {"train": make(40), "validation": make(10)}
        """,
        module="tfdata_loader",
        args={"batch_size": 8},
    )
    data = load_dataset(spec, spec_dir=where)
    assert data.streams is not None and data.streams.batched
    assert (data.input_shape, data.num_classes, data.streams.train_batches) == ((6,), 5, 5)
    assert data.steps_per_epoch(32) == 5  # the loader's batches, whatever the spec's batch size
    args, kwargs = data.fit_arguments(32, 64)
    assert args == (data.streams.train,) and "batch_size" not in kwargs


def test_a_loader_may_return_py_datasets(tmp_path: Path) -> None:
    spec, where = loader(
        tmp_path,
        """
        import keras
        import numpy as np

        class Batches(keras.utils.PyDataset):
            def __init__(self, batches):
                super().__init__()
                self.batches = batches

            def __len__(self):
                return self.batches

            def __getitem__(self, index):
                return np.zeros((4, 3), np.float32), np.zeros((4,), np.float32)

        def load_data():
            return {"train": Batches(6), "validation": Batches(2)}
        """,
        module="pydataset_loader",
    )
    data = load_dataset(spec, spec_dir=where)
    assert data.streams is not None and data.streams.kind == "keras.utils.PyDataset"
    assert (data.input_shape, data.output_units, data.streams.train_batches) == ((3,), 1, 6)


BAD_LOADERS = [
    (
        "raises",
        """
        def load_data():
            return read_table()

        def read_table():
            raise ValueError("no table named wines")
        """,
        {},
        [
            "spec.data.loader: bad_raises:load_data raised ValueError: no table named wines",
            'bad_raises.py", line 6, in read_table',
            'raise ValueError("no table named wines")',
        ],
    ),
    (
        "mapping-without-validation",
        "def load_data():\n    return {'train': ([1], [1])}\n",
        {},
        ["returned a mapping with keys ['train']; it needs exactly train and validation"],
    ),
    (
        "three-parts",
        "def load_data():\n    return (1, 2, 3)\n",
        {},
        ["returned a tuple of 3; expected ((x_train, y_train), (x_val, y_val))"],
    ),
    (
        "not-data",
        "def load_data():\n    return ('x', 'y')\n",
        {},
        ["returned a str as its train data"],
    ),
    (
        "lengths-differ",
        """
        import numpy as np

        def load_data():
            return (np.zeros((10, 2)), np.zeros(9)), (np.zeros((3, 2)), np.zeros(3))
        """,
        {},
        ["returned train x with 10 samples but train y with 9"],
    ),
    (
        "text-features",
        """
        import numpy as np

        def load_data():
            x = np.array([["a", "b"]] * 4)
            return (x, np.zeros(4)), (x, np.zeros(4))
        """,
        {},
        ["returned train x of dtype <U1; expected numbers"],
    ),
    (
        "shapes-differ",
        """
        import numpy as np

        def load_data():
            return (np.zeros((4, 4)), np.zeros(4)), (np.zeros((2, 5)), np.zeros(2))
        """,
        {},
        ["train x samples of shape (4,) but validation x samples of shape (5,)"],
    ),
    (
        "mixed-kinds",
        """
        import numpy as np
        import tensorflow as tf

        def load_data():
            x, y = np.zeros((4, 2)), np.zeros(4)
            return (x, y), tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
        """,
        {},
        ["arrays for train but tf.data.Dataset for validation"],
    ),
    (
        "unbatched",
        """
        import numpy as np
        import tensorflow as tf

        def load_data():
            ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4)))
            return {"train": ds, "validation": ds}
        """,
        {},
        ["an unbatched tf.data.Dataset for train", "dataset.batch(32)"],
    ),
    (
        "endless",
        """
        import numpy as np
        import tensorflow as tf

        def load_data():
            ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4))).batch(2)
            return {"train": ds.repeat(), "validation": ds}
        """,
        {},
        ["an endless tf.data.Dataset for train (repeat())"],
    ),
    (
        "wrong-args",
        "def load_data(path):\n    return None\n",
        {"args": {"paht": "x.csv"}},
        ["spec.data.args: bad_wrong_args:load_data cannot be called with ['paht']"],
    ),
]


@pytest.mark.parametrize(("case", "body", "fields", "says"), BAD_LOADERS, ids=[c[0] for c in BAD_LOADERS])
def test_what_a_loader_returns_is_checked(
    tmp_path: Path, case: str, body: str, fields: dict[str, Any], says: list[str]
) -> None:
    spec, where = loader(tmp_path, body, module=f"bad_{case.replace('-', '_')}", **fields)
    with pytest.raises(DataError) as caught:
        load_dataset(spec, spec_dir=where)
    message = str(caught.value)
    for fragment in says:
        assert fragment in message, message
    assert "Traceback" not in message and "job/training" not in message


def test_a_missing_loader_module_names_where_it_looked(tmp_path: Path) -> None:
    spec = data_spec(source="custom", loader="nowhere_to_be_found:load_data")
    with pytest.raises(
        DataError, match=r"spec.data.loader: cannot import module 'nowhere_to_be_found' \(looked in"
    ):
        load_dataset(spec, spec_dir=tmp_path)


# -- image folders -------------------------------------------------------------------------------


def image_folder(root: Path, classes: dict[str, int], size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_an_image_folder_is_read_into_arrays(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "pics", {"cat": 6, "dog": 6, "eel": 8})
    spec = data_spec(source="images", path=str(folder), imageSize=[8, 8], validation={"fraction": 0.25})
    data = load_dataset(spec)
    assert not data.streamed
    assert (len(data.x_train), len(data.x_val)) == (15, 5)
    assert data.x_train.shape[1:] == (8 * 8 * 3,) and data.x_train.max() <= 1.0
    assert data.y_train.shape == (15, 3) and data.num_classes == 3


def test_a_big_image_folder_is_streamed_and_batched_per_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images_module, "RESIDENT_BYTES", 0)
    folder = image_folder(tmp_path / "pics", {"a": 5, "b": 5})
    spec = data_spec(
        source="images",
        path=str(folder),
        imageSize=[8, 8],
        colorMode="grayscale",
        preprocessing={"flatten": False},
    )
    data = load_dataset(spec)
    assert data.streams is not None and not data.streams.batched
    assert data.input_shape == (8, 8, 1) and data.train_samples == 8
    (train,), _ = data.fit_arguments(4, 2)
    x, y = next(iter(train))
    assert tuple(x.shape) == (4, 8, 8, 1) and tuple(y.shape) == (4, 2)
    assert data.steps_per_epoch(4) == 2


@pytest.mark.parametrize(
    ("classes", "loose", "says"),
    [
        ({}, 0, "has no class subdirectories"),
        ({}, 3, "has 3 images but no class subdirectories"),
        ({"cats": 4}, 0, "has a single class ('cats', 4 images); classification needs at least two"),
        ({"cats": 4, "dogs": 0}, 0, "the class subdirectories ['dogs'] hold no images"),
    ],
    ids=["empty", "no-subdirectories", "single-class", "empty-class"],
)
def test_an_image_folder_that_cannot_be_learned_from_is_refused(
    tmp_path: Path, classes: dict[str, int], loose: int, says: str
) -> None:
    folder = image_folder(tmp_path / "pics", classes)
    folder.mkdir(exist_ok=True)
    for i in range(loose):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(DataError) as caught:
        load_dataset(data_spec(source="images", path=str(folder)))
    assert f"spec.data.path={folder}: " in str(caught.value)
    assert says in str(caught.value)


# -- tables --------------------------------------------------------------------------------------


def table_file(path: Path, columns: dict[str, list[Any]]) -> Path:
    table = pa.table(columns)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)
    return path


def wines(n: int = 40) -> dict[str, list[Any]]:
    rng = np.random.default_rng(1)
    return {
        "acidity": rng.normal(3, 2, n).tolist(),
        "alcohol": rng.normal(12, 1, n).tolist(),
        "region": [["north", "south", "east"][i % 3] for i in range(n)],
        "note": [f"bottle {i}" for i in range(n)],
        "grape": [["merlot", "syrah"][i % 2] for i in range(n)],
    }


def test_a_csv_table_gives_classes_and_one_hot_categories(tmp_path: Path) -> None:
    path = table_file(tmp_path / "wines.csv", wines())
    spec = data_spec(source="table", path=str(path), label="grape", categorical=["region"])
    data = load_dataset(spec)
    # acidity, alcohol, then region one-hot (3); "note" is text and not listed: left out.
    assert data.x_train.shape == (32, 5) and data.x_val.shape == (8, 5)
    assert data.num_classes == 2 and data.y_train.shape == (32, 2)
    assert abs(float(data.x_train[:, 0].mean())) < 1e-5 and set(np.unique(data.x_train[:, 2:])) <= {0.0, 1.0}


def test_a_parquet_table_gives_a_regression(tmp_path: Path) -> None:
    columns = {
        "size": list(range(30)),
        "rooms": [i % 4 for i in range(30)],
        "price": [1.5 * i for i in range(30)],
    }
    path = table_file(tmp_path / "houses.parquet", columns)
    spec = data_spec(source="table", path=str(path), label="price", task="regression", features=["size"])
    data = load_dataset(spec)
    assert data.x_train.shape == (24, 1) and data.y_train.shape == (24, 1)
    assert (data.num_classes, data.output_units) == (0, 1)


@pytest.mark.parametrize(
    ("fields", "columns", "says"),
    [
        ({"label": "grap"}, None, "spec.data.label: no column 'grap' in {path} (did you mean 'grape'?)"),
        (
            {"label": "grape", "features": ["alcohol", "note"]},
            None,
            "spec.data.features: column 'note' of {path} holds string values, not numbers; list it under "
            "spec.data.categorical",
        ),
        ({"label": "grape", "features": ["colour"]}, None, "spec.data.features: no column(s) ['colour']"),
        (
            {"label": "grape"},
            {"alcohol": [1.0, None, 3.0, 4.0], "grape": ["a", "b", "a", "b"]},
            "column 'alcohol' has 1 missing value(s)",
        ),
        (
            {"label": "grape"},
            {"alcohol": [1.0, 2.0, 3.0, 4.0], "grape": ["a", "a", "a", "a"]},
            "spec.data.label: column 'grape' of {path} has a single class ('a')",
        ),
        (
            {"label": "alcohol"},
            {"acidity": [1.0, 2.0, 3.0, 4.0], "alcohol": [12.5, 13.0, 11.0, 12.0]},
            "holds numbers that are not whole (12.5); as classes they must be; to predict numbers set "
            "spec.data.task: regression",
        ),
        (
            {"label": "grape"},
            {"note": ["x", "y", "x", "y"], "grape": ["a", "b", "a", "b"]},
            "has no numeric feature columns besides the label 'grape'",
        ),
    ],
    ids=[
        "missing-label",
        "text-feature",
        "missing-feature",
        "missing-values",
        "one-class",
        "fractional-classes",
        "no-features",
    ],
)
def test_a_table_that_cannot_be_learned_from_is_refused(
    tmp_path: Path, fields: dict[str, Any], columns: dict[str, list[Any]] | None, says: str
) -> None:
    path = table_file(tmp_path / "t.csv", columns or wines())
    with pytest.raises(DataError) as caught:
        load_dataset(data_spec(source="table", path=str(path), **fields))
    assert says.format(path=path) in str(caught.value)


def test_a_table_of_unknown_format_asks_for_one(tmp_path: Path) -> None:
    path = table_file(tmp_path / "t.data", wines())
    with pytest.raises(DataError, match=r"cannot tell CSV from Parquet by its name; set spec\.data\.format"):
        load_dataset(data_spec(source="table", path=str(path), label="grape"))
    data = load_dataset(data_spec(source="table", path=str(path), label="grape", format="csv"))
    assert data.num_classes == 2


# -- remote data ---------------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """fsspec's memory:// filesystem as the remote store; the scratch space under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    fs = fsspec.filesystem("memory")
    yield fs
    fs.rm("/hptune-test", recursive=True)


def test_a_remote_folder_is_fetched_once_per_machine(
    remote: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = image_folder(tmp_path / "pics", {"a": 3, "b": 3})
    remote.put(str(local), "/hptune-test/pics", recursive=True)
    spec = data_spec(
        source="images", path="memory://hptune-test/pics", imageSize=[8, 8], validation={"fraction": 0.5}
    )
    caplog.set_level(logging.INFO, logger="job.training.data")
    data = load_dataset(spec)
    assert len(data.x_train) + len(data.x_val) == 6
    fetched = [r.getMessage() for r in caplog.records if "fetched" in r.getMessage()]
    assert (
        fetched
        and "in 6 file(s) into" in fetched[-1]
        and str(tmp_path / "scratch" / "hptune-data") in fetched[-1]
    )
    caplog.clear()
    load_dataset(spec)  # a restarted worker, or another trial process on the machine
    assert any("fetched before" in r.getMessage() for r in caplog.records)


def test_a_remote_table_is_fetched_within_the_limit(remote: Any, tmp_path: Path) -> None:
    path = table_file(tmp_path / "w.csv", wines())
    remote.put(str(path), "/hptune-test/w.csv")
    size = path.stat().st_size
    data = load_dataset(data_spec(source="table", path="memory://hptune-test/w.csv", label="grape"))
    assert data.num_classes == 2
    with pytest.raises(DataError, match=r"is more than spec.data.maxFetchBytes \(10 bytes\)"):
        fetch_module.local_copy("memory://hptune-test/w.csv", 10)
    assert size > 10
    with pytest.raises(
        DataError, match=r"spec.data.path=memory://hptune-test/gone.csv: no such file or folder"
    ):
        load_dataset(data_spec(source="table", path="memory://hptune-test/gone.csv", label="grape"))
