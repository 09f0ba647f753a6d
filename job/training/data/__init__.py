"""Datasets, loaded once per process and reused by every trial there.

dataset.py   `Dataset` (arrays or streams), `DataError`, the preprocessing sources share
builtin.py   mnist, fashion_mnist (Keras), digits (scikit-learn, offline), npz at any URI
custom.py    source: custom, the user's own loader, and the checks on what it returned
images.py    source: images, a folder of class subdirectories (image_dataset_from_directory)
tables.py    source: table, CSV or Parquet (pyarrow)
fetch.py     a remote file or folder fetched once per machine into the temporary directory
"""

from __future__ import annotations

import logging
from pathlib import Path

from job.spec.data import DataSpec
from job.training.data.dataset import Array, DataError, Dataset, Streams

log = logging.getLogger(__name__)

__all__ = ["Array", "DataError", "Dataset", "Streams", "load_dataset"]


def load_dataset(spec: DataSpec, data_dir: Path | None = None, spec_dir: Path | None = None) -> Dataset:
    """Load and check the dataset the spec names. `data_dir` is HPTUNE_DATA_DIR (MNIST without a
    download); `spec_dir`, the spec file's directory, is where a custom loader is imported from."""
    if spec.source == "custom":
        from job.training.data.custom import load_custom

        dataset = load_custom(spec, spec_dir)
    elif spec.source == "images":
        from job.training.data.images import load_images

        dataset = load_images(spec)
    elif spec.source == "table":
        from job.training.data.tables import load_table

        dataset = load_table(spec)
    else:
        from job.training.data.builtin import load_builtin

        dataset = load_builtin(spec, data_dir)
    if dataset.streams is None:
        log.info(
            "dataset %s: %d training and %d validation samples, input shape %s, %s",
            dataset.description,
            len(dataset.x_train),
            len(dataset.x_val),
            dataset.input_shape,
            f"{dataset.num_classes} classes" if dataset.num_classes else f"{dataset.output_units} output(s)",
        )
    else:
        log.info(
            "dataset %s: streamed (%s), input shape %s",
            dataset.description,
            dataset.streams.kind,
            dataset.input_shape,
        )
    return dataset
