"""source: images: a folder with one subdirectory of images per class (labels: inferred), at any
fsspec URI, fetched once per worker (`fetch.py`) and read with Keras' own
`image_dataset_from_directory`.

A folder whose decoded images fit in `RESIDENT_BYTES` is held as arrays, the resident fast path
every trial reuses; a bigger one is streamed from the local copy, decoded as it goes, and batched for
each trial with the trial's batch size.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from job.spec.data import DEFAULT_MAX_FETCH_BYTES, DataSpec, Preprocessing
from job.training.data import fetch
from job.training.data.dataset import DataError, Dataset, Streams, features, human_bytes, targets

log = logging.getLogger(__name__)

# The formats image_dataset_from_directory reads.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
DEFAULT_SIZE = (256, 256)
# Decoded (float32) images up to this size are held as arrays; more are streamed.
RESIDENT_BYTES = 2 * 2**30


def load_images(spec: DataSpec) -> Dataset:
    assert spec.path is not None
    uri = spec.path
    folder, size = fetch.local_copy(uri, spec.max_fetch_bytes or DEFAULT_MAX_FETCH_BYTES)
    classes = survey(folder, uri)
    count = sum(classes.values())
    fraction = spec.validation.fraction
    held_out = int(fraction * count)  # as image_dataset_from_directory splits
    if held_out < 1 or held_out >= count:
        raise DataError(
            f"spec.data.path={uri}: a validation fraction of {fraction} leaves no training or "
            f"validation images out of {count}"
        )
    height, width = spec.image_size or DEFAULT_SIZE
    mode = spec.color_mode or "rgb"
    train, validation = _read(folder, uri, sorted(classes), (height, width), mode, fraction)
    log.info(
        "images at %s: %d in %d classes (%s), %s; %d for training, %d for validation, read as %dx%d %s",
        uri,
        count,
        len(classes),
        ", ".join(f"{name} {n}" for name, n in sorted(classes.items())),
        human_bytes(size),
        count - held_out,
        held_out,
        height,
        width,
        mode,
    )
    num_classes = len(classes)
    description = f"images ({uri})"
    decoded = count * height * width * CHANNELS[mode] * 4
    if decoded <= RESIDENT_BYTES:
        x_train, y_train = _arrays(train, uri)
        x_val, y_val = _arrays(validation, uri)
        if spec.max_train_samples:
            x_train, y_train = x_train[: spec.max_train_samples], y_train[: spec.max_train_samples]
        if spec.max_validation_samples:
            x_val, y_val = x_val[: spec.max_validation_samples], y_val[: spec.max_validation_samples]
        pre = spec.preprocessing
        return Dataset(
            features(x_train, pre, 255.0),
            targets(y_train, pre, num_classes),
            features(x_val, pre, 255.0),
            targets(y_val, pre, num_classes),
            num_classes,
            description,
        )
    log.info(
        "images at %s: %s decoded, more than the %s held in memory: streamed from %s",
        uri,
        human_bytes(decoded),
        human_bytes(RESIDENT_BYTES),
        folder,
    )
    if spec.max_train_samples:
        train = train.take(spec.max_train_samples)
    if spec.max_validation_samples:
        validation = validation.take(spec.max_validation_samples)
    prepare = _prepare(spec.preprocessing, num_classes)
    shape = (
        (height * width * CHANNELS[mode],) if spec.preprocessing.flatten else (height, width, CHANNELS[mode])
    )
    samples = min(count - held_out, spec.max_train_samples or count)
    streams = Streams(train.map(prepare), validation.map(prepare), False, shape, train_samples=samples)
    return Dataset(None, None, None, None, num_classes, description, streams=streams)


def survey(folder: Path, uri: str) -> dict[str, int]:
    """Images per class subdirectory; a DataError for a folder that cannot be learned from."""
    where = f"spec.data.path={uri}"
    if not folder.is_dir():
        raise DataError(
            f"{where}: not a folder; source: images wants a folder with one subdirectory per class"
        )
    subdirectories = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = {p.name: sum(1 for f in p.rglob("*") if _is_image(f)) for p in subdirectories}
    loose = sum(1 for f in folder.iterdir() if _is_image(f))
    if not classes:
        found = f"{loose} images but no" if loose else "no"
        raise DataError(
            f"{where}: has {found} class subdirectories; labels: inferred wants one subdirectory of "
            f"images per class (cats/1.png, dogs/2.png, ...)"
        )
    if not sum(classes.values()):
        raise DataError(
            f"{where}: holds no images ({', '.join(IMAGE_SUFFIXES)}) in its subdirectories {sorted(classes)}"
        )
    empty = sorted(name for name, n in classes.items() if not n)
    if empty:
        raise DataError(
            f"{where}: the class subdirectories {empty} hold no images; remove them or add images"
        )
    if len(classes) < 2:
        ((name, n),) = classes.items()
        raise DataError(
            f"{where}: has a single class ({name!r}, {n} images); classification needs at least two "
            "class subdirectories"
        )
    return classes


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _read(
    folder: Path, uri: str, class_names: list[str], size: tuple[int, int], mode: str, fraction: float
) -> tuple[Any, Any]:
    try:
        import tensorflow  # noqa: F401  (image_dataset_from_directory is tf.data)
        from keras.utils import image_dataset_from_directory
    except ImportError as err:
        raise DataError(
            f"source: images reads with Keras' image_dataset_from_directory, which needs TensorFlow: {err}"
        ) from None
    chatter = io.StringIO()  # Keras prints "Found N files belonging to K classes."
    try:
        with contextlib.redirect_stdout(chatter):
            train, validation = image_dataset_from_directory(
                str(folder),
                labels="inferred",
                label_mode="int",
                class_names=class_names,
                color_mode=mode,
                batch_size=None,
                image_size=size,
                shuffle=True,
                seed=0,
                validation_split=fraction,
                subset="both",
            )
    except Exception as err:
        raise DataError(
            f"spec.data.path={uri}: cannot be read as images: {type(err).__name__}: {err}"
        ) from None
    log.debug("image_dataset_from_directory: %s", chatter.getvalue().strip())
    return train, validation


def _arrays(dataset: Any, uri: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    try:
        for x, y in dataset.batch(512).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
    except Exception as err:  # an image that does not decode
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(
            f"spec.data.path={uri}: an image cannot be decoded: {type(err).__name__}: {message}"
        ) from None
    return np.concatenate(xs), np.concatenate(ys)


def _prepare(pre: Preprocessing, num_classes: int) -> Any:
    """The preprocessing `features` and `targets` do on arrays, as a tf.data map for streams."""
    import tensorflow as tf

    def prepare(x: Any, y: Any) -> tuple[Any, Any]:
        x = tf.cast(x, tf.float32)
        if pre.scale:
            x = x / 255.0
        if pre.flatten:
            x = tf.reshape(x, [-1])
        y = tf.one_hot(y, num_classes) if pre.one_hot else tf.cast(y, tf.int32)
        return x, y

    return prepare
