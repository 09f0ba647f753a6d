"""The built-in array sources: mnist and fashion_mnist (Keras), digits (scikit-learn, offline) and npz
at any fsspec URI."""

from __future__ import annotations

import gzip
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from job.spec.data import DataSpec
from job.training.data.dataset import DataError, Dataset, features, split, targets

log = logging.getLogger(__name__)

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class _Raw:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    pixel_max: float
    origin: str


def load_builtin(spec: DataSpec, data_dir: Path | None) -> Dataset:
    """Load, check and preprocess the built-in dataset the spec names."""
    raw = _load_raw(spec, data_dir)
    _check(raw)
    x_train, y_train = raw.x_train, raw.y_train
    if spec.validation.source == "test":
        if raw.x_test is None or raw.y_test is None:
            raise DataError(
                f"{raw.origin}: spec.data.validation.source is 'test' but the data has no "
                "x_test/y_test; use source: split"
            )
        x_val, y_val = raw.x_test, raw.y_test
    else:
        x_train, y_train, x_val, y_val = split(x_train, y_train, spec.validation.fraction, raw.origin)
    if spec.max_train_samples:
        x_train, y_train = x_train[: spec.max_train_samples], y_train[: spec.max_train_samples]
    if spec.max_validation_samples:
        x_val, y_val = x_val[: spec.max_validation_samples], y_val[: spec.max_validation_samples]

    labels = np.concatenate([y_train.reshape(-1), y_val.reshape(-1)])
    num_classes = int(labels.max()) + 1
    pre = spec.preprocessing
    return Dataset(
        x_train=features(x_train, pre, raw.pixel_max),
        y_train=targets(y_train, pre, num_classes),
        x_val=features(x_val, pre, raw.pixel_max),
        y_val=targets(y_val, pre, num_classes),
        num_classes=num_classes,
        description=f"{spec.source} ({raw.origin})",
    )


def _load_raw(spec: DataSpec, data_dir: Path | None) -> _Raw:
    if spec.source == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = bunch.images.astype(np.float32)
        return _Raw(images, bunch.target, None, None, 16.0, "scikit-learn load_digits")
    if spec.source == "npz":
        assert spec.path is not None
        return _load_npz_uri(spec.path)
    local = _local_keras_file(spec, data_dir)
    if local is not None:
        return _load_local_keras(spec.source, local)
    return _download(spec.source, data_dir)


def _local_keras_file(spec: DataSpec, data_dir: Path | None) -> Path | None:
    """The explicit file or directory to load instead of downloading, if one is configured."""
    candidate = Path(spec.path) if spec.path else data_dir
    if candidate is None:
        return None
    where = "spec.data.path" if spec.path else "HPTUNE_DATA_DIR"
    if not candidate.exists():
        raise DataError(f"{where}={candidate}: no such file or directory")
    return candidate


def _load_local_keras(source: str, path: Path) -> _Raw:
    if path.is_file():
        return _load_npz_file(path, str(path))
    npz = path / f"{source}.npz"
    if npz.exists():
        return _load_npz_file(npz, str(npz))
    if source == "fashion_mnist" and all((path / f).exists() for f in FASHION_FILES):
        return _load_fashion_gz(path)
    wanted = f"{source}.npz" + (" or the four Fashion-MNIST .gz files" if source == "fashion_mnist" else "")
    raise DataError(f"{path}: has no {wanted}")


def _load_npz_uri(uri: str) -> _Raw:
    import fsspec

    try:
        with fsspec.open(uri, "rb") as handle:
            payload = handle.read()
    except FileNotFoundError:
        raise DataError(f"spec.data.path={uri}: no such file") from None
    except Exception as err:
        raise DataError(f"spec.data.path={uri}: cannot be read: {type(err).__name__}: {err}") from None
    return _load_npz_file(io.BytesIO(payload), uri)


def _load_npz_file(file: Path | object, origin: str) -> _Raw:
    try:
        with np.load(file, allow_pickle=False) as npz:  # type: ignore[arg-type]
            missing = [name for name in ("x_train", "y_train") if name not in npz.files]
            if missing:
                raise DataError(
                    f"{origin}: missing array(s) {missing}; an npz dataset needs x_train and "
                    f"y_train (and x_test, y_test to validate on the test set); found {npz.files}"
                )
            arrays = {name: npz[name] for name in NPZ_ARRAYS if name in npz.files}
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{origin}: not a readable .npz file: {type(err).__name__}: {err}") from None
    x_train = arrays["x_train"]
    finite = x_train[np.isfinite(x_train)] if np.issubdtype(x_train.dtype, np.floating) else x_train
    pixel_max = 255.0 if x_train.dtype == np.uint8 else float(finite.max(initial=0) or 1.0)
    return _Raw(x_train, arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"), pixel_max, origin)


def _load_fashion_gz(path: Path) -> _Raw:
    def read(name: str, offset: int) -> np.ndarray:
        with gzip.open(path / name, "rb") as handle:
            return np.frombuffer(handle.read(), np.uint8, offset=offset)

    x_train = read(FASHION_FILES[0], 16).reshape(-1, 28, 28)
    y_train = read(FASHION_FILES[1], 8)
    x_test = read(FASHION_FILES[2], 16).reshape(-1, 28, 28)
    y_test = read(FASHION_FILES[3], 8)
    return _Raw(x_train, y_train, x_test, y_test, 255.0, str(path))


def _download(source: str, data_dir: Path | None) -> _Raw:
    import keras

    loader = keras.datasets.mnist if source == "mnist" else keras.datasets.fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:
        raise DataError(
            f"cannot download {source} ({type(err).__name__}: {err}). Without internet, point "
            f"hptune at a local copy: set HPTUNE_DATA_DIR to a directory holding {source}.npz "
            f"(the Keras layout: x_train, y_train, x_test, y_test), or set spec.data.path to the file"
        ) from None
    return _Raw(x_train, y_train, x_test, y_test, 255.0, f"keras.datasets.{source}")


def _check(raw: _Raw) -> None:
    pairs = [("x_train", raw.x_train, "y_train", raw.y_train)]
    if raw.x_test is not None or raw.y_test is not None:
        if raw.x_test is None or raw.y_test is None:
            raise DataError(f"{raw.origin}: x_test and y_test must come together")
        pairs.append(("x_test", raw.x_test, "y_test", raw.y_test))
    for x_name, x, y_name, y in pairs:
        if len(x) == 0:
            raise DataError(f"{raw.origin}: {x_name} is empty")
        if len(x) != len(y):
            raise DataError(f"{raw.origin}: {x_name} has {len(x)} samples but {y_name} has {len(y)}")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{raw.origin}: {x_name} has dtype {x.dtype}; expected numbers")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise DataError(f"{raw.origin}: {x_name} contains NaN or infinite values")
        if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
            raise DataError(f"{raw.origin}: {y_name} has shape {y.shape}; expected integer class labels (N,)")
        integral = np.issubdtype(y.dtype, np.integer) or (np.isfinite(y).all() and np.all(np.mod(y, 1) == 0))
        if not integral:
            raise DataError(f"{raw.origin}: {y_name} must hold integer class labels")
        if (y < 0).any():
            raise DataError(f"{raw.origin}: {y_name} has negative labels")
    if raw.x_test is not None and raw.x_test.shape[1:] != raw.x_train.shape[1:]:
        raise DataError(
            f"{raw.origin}: x_test samples have shape {raw.x_test.shape[1:]} but x_train samples "
            f"have {raw.x_train.shape[1:]}"
        )
