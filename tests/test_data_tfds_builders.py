"""Offline sets served through tensorflow-datasets builders (array_record, no TensorFlow)."""

import numpy as np

import scaling_data as data


def test_offline_set_through_tfds_matches_the_in_memory_one(tmp_path):
    direct = data.load("digits")
    served = data.load("digits", data_dir=str(tmp_path))
    assert (tmp_path / "digits_offline" / "1.0.0").is_dir()
    assert list((tmp_path / "digits_offline" / "1.0.0").glob("*.array_record*"))
    np.testing.assert_allclose(served.x_train, direct.x_train, atol=1e-5)
    np.testing.assert_array_equal(served.y_test, direct.y_test)
    assert served.num_classes == 10 and served.input_shape == (8, 8, 1)
    again = data.load("digits", data_dir=str(tmp_path))  # prepared once, then only read
    np.testing.assert_array_equal(again.x_test, served.x_test)
