"""The digits set is scikit-learn's, read from the file scikit-learn ships without importing
scikit-learn (its import costs ~2 s CPU in every process that trains on digits)."""

import sys

import numpy as np

from scaling_data import sources


def test_bundled_digits_are_load_digits_own_arrays():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, target = sources._bundled_digits()
    assert images.dtype == bunch.images.dtype and target.dtype == bunch.target.dtype
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)


def test_digits_load_without_importing_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # importing it now fails
    dataset = sources.digits()
    assert dataset.x_train.shape == (1437, 8, 8, 1) and dataset.x_test.shape == (360, 8, 8, 1)
    assert sorted(set(dataset.y_train.tolist())) == list(range(10))
