"""Offline datasets and deterministic batching."""

import numpy as np
import pytest

import scaling_data as data


@pytest.mark.parametrize(
    "name, train, test, shape",
    [
        ("mnist1d", 4000, 1000, (40,)),
        ("digits", 1437, 360, (8, 8, 1)),
        ("teacher", 8000, 2000, (32,)),
    ],
)
def test_dataset_shapes_and_standardisation(name, train, test, shape):
    ds = data.load(name)
    assert ds.x_train.shape == (train, *shape) and ds.x_test.shape == (test, *shape)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert abs(ds.x_train.mean()) < 1e-4 and abs(ds.x_train.std() - 1) < 1e-3
    assert set(np.unique(ds.y_train)) == set(range(ds.num_classes))


def test_datasets_are_deterministic():
    a, b = data.load("mnist1d"), data.load("mnist1d")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="choose one of: digits, mnist1d, teacher"):
        data.load("imagenet")


def test_batches_depend_only_on_seed_and_step():
    whole = data.batch_indices(100, 32, 10, seed=3)
    tail = data.batch_indices(100, 32, 4, seed=3, start_step=6)
    np.testing.assert_array_equal(whole[6:], tail)
    assert not np.array_equal(whole, data.batch_indices(100, 32, 10, seed=4))
    # each epoch (3 batches of 32 from 100) draws distinct examples
    assert len(np.unique(whole[:3])) == 96


def test_batch_larger_than_dataset_fails():
    with pytest.raises(ValueError, match="exceeds"):
        data.batch_indices(10, 32, 1, seed=0)
