"""The MNIST-1D cache: generated once, read back identically; an unwritable cache is skipped."""

import numpy as np

from scaling_data import sources


def _fake_generator(calls: list):
    def generate():
        calls.append(1)
        rng = np.random.default_rng(0)
        return {
            "x": rng.normal(size=(20, 40)),
            "y": rng.integers(0, 10, 20),
            "x_test": rng.normal(size=(5, 40)),
            "y_test": rng.integers(0, 10, 5),
        }

    return generate


def test_mnist1d_cache_round_trip(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_generate_mnist1d", _fake_generator(calls))
    monkeypatch.setenv("SCALING_RULES_CACHE", str(tmp_path))
    a, b = sources.mnist1d(), sources.mnist1d()
    assert len(calls) == 1
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]  # no temporary file left
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype


def test_mnist1d_unwritable_cache_generates(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_generate_mnist1d", _fake_generator(calls))
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SCALING_RULES_CACHE", str(blocker / "cache"))
    sources.mnist1d(), sources.mnist1d()
    assert len(calls) == 2


def test_mnist1d_truncated_cache_is_rebuilt(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_generate_mnist1d", _fake_generator(calls))
    monkeypatch.setenv("SCALING_RULES_CACHE", str(tmp_path))
    first = sources.mnist1d()
    (cache,) = tmp_path.iterdir()
    cache.write_bytes(cache.read_bytes()[:300])  # a copy cut short (BadZipFile)
    again = sources.mnist1d()
    assert len(calls) == 2
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert sources.mnist1d() and len(calls) == 2  # the rebuilt cache is whole


def test_mnist1d_cache_with_other_arrays_is_rebuilt(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "_generate_mnist1d", _fake_generator(calls))
    monkeypatch.setenv("SCALING_RULES_CACHE", str(tmp_path))
    first = sources.mnist1d()
    (cache,) = tmp_path.iterdir()
    with np.load(cache) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["x"] = arrays["x"] + 1.0  # readable, same shapes, other values
    np.savez(cache, **arrays)
    again = sources.mnist1d()
    assert len(calls) == 2
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.savez(cache, **{k: arrays[k] for k in sources.MNIST1D_KEYS})  # no checksum at all
    sources.mnist1d()
    assert len(calls) == 3
