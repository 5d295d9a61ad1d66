"""Real datasets through tensorflow-datasets, read without TensorFlow.

`tfds.builder(name, data_dir=...).as_data_source(split)` reads prepared array_record
files with random access and needs no TensorFlow (`tfds.load` would). Missing files give
a `TfdsMissing` error whose message says how to prepare them.
"""

from __future__ import annotations

import numpy as np

from scaling_data.dataset import Dataset, make_dataset

# name -> (label feature, number of classes)
TFDS_DATASETS = {
    "mnist": ("label", 10),
    "fashion_mnist": ("label", 10),
    "cifar10": ("label", 10),
    "cifar100": ("label", 100),
}


class TfdsMissing(ValueError):
    """The dataset's prepared files are not under data_dir (or tfds is missing)."""


def _read_split(source, label_key: str, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for start in range(0, len(source), chunk):
        keys = list(range(start, min(start + chunk, len(source))))
        try:
            rows = source.__getitems__(keys)  # batched reads of the array_record files
        except TypeError:  # tfds.testing.mock_data's source reads one record at a time
            rows = [source[k] for k in keys]
        images.extend(np.asarray(row["image"]) for row in rows)
        labels.extend(int(row[label_key]) for row in rows)
    return np.stack(images).astype(np.float32), np.asarray(labels, np.int32)


def load_tfds(name: str, data_dir: str = "") -> Dataset:
    """`name`'s train and test splits as a Dataset (inputs standardised, HWC float32)."""
    label_key, num_classes = TFDS_DATASETS[name]
    where = data_dir or "~/tensorflow_datasets"
    how = (
        f"prepare it once with `tfds build {name} --data_dir={where} --file_format=array_record` "
        "(needs network; or copy such a folder here), or pick an offline --dataset"
    )
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise TfdsMissing(
            f"{name} needs tensorflow-datasets (pip install tensorflow-datasets)"
        ) from None
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
        train = builder.as_data_source(split="train")
        test = builder.as_data_source(split="test")
    except Exception as e:  # tfds raises NotImplementedError, FileNotFoundError, ... here
        if isinstance(e, NotImplementedError):  # the folder holds no array_record files
            first = "no array_record files"
        else:
            first = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise TfdsMissing(f"{name} is not prepared under {where} ({first}); {how}") from None
    return dataset_from_sources(name, train, test, label_key, num_classes)


def dataset_from_sources(name: str, train, test, label_key: str, num_classes: int) -> Dataset:
    """A Dataset from tfds data sources of the train and test splits (array_record, no TF)."""
    x_train, y_train = _read_split(train, label_key)
    x_test, y_test = _read_split(test, label_key)
    return make_dataset(name, x_train, y_train, x_test, y_test, num_classes)
