"""The offline datasets: MNIST-1D (generated), scikit-learn digits (bundled), a teacher network."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import stat
import tempfile

import numpy as np

from scaling_data.dataset import Dataset, make_dataset

MNIST1D_KEYS = ("x", "y", "x_test", "y_test")


def _cache_dir() -> str:
    """$SCALING_RULES_CACHE, else $XDG_CACHE_HOME/scaling-rules, else ~/.cache/scaling-rules."""
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("SCALING_RULES_CACHE") or os.path.join(xdg, "scaling-rules")


def _generate_mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset as generate

    raw = generate(get_dataset_args())  # deterministic (seed 42); never the pickle download
    return {k: np.asarray(raw[k]) for k in MNIST1D_KEYS}


def _save_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz via a temporary file and a rename; skip a cache that cannot be written."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: concurrent runs never read half a file
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def mnist1d() -> Dataset:
    """MNIST-1D (Greydanus 2020), generated locally with its standard arguments (4000/1000, 40).

    Importing and running the generator takes ~4 s, so the arrays are kept in an .npz in the
    cache directory (keyed by the mnist1d version) and read back bit for bit by later runs.
    """
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:  # no version to key a cache by
        raw = _generate_mnist1d()
        return make_dataset("mnist1d", raw["x"], raw["y"], raw["x_test"], raw["y_test"], 10)
    path = os.path.join(_cache_dir(), f"mnist1d-{version}-standard.npz")
    special = _is_special(path)  # a FIFO or device there: never opened (it could block)
    raw = None if special else _read_verified(path)
    if raw is None:  # missing, truncated, or other arrays: generate afresh
        raw = _generate_mnist1d()
        if not special:
            _save_atomically(path, raw | {"sha256": np.asarray(_checksum(raw))})
    return make_dataset("mnist1d", raw["x"], raw["y"], raw["x_test"], raw["y_test"], 10)


def _is_special(path: str) -> bool:
    """Whether `path` exists as something other than a regular file (links followed)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # absent, or a dangling link: written afresh
        return False


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in MNIST1D_KEYS:
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _read_verified(path: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if the file is whole and holds what the generator makes (shapes and
    the checksum written beside them); None otherwise."""
    try:
        with np.load(path, allow_pickle=False) as f:
            raw = {k: f[k] for k in MNIST1D_KEYS}
            stored = str(f["sha256"])
    except Exception:  # missing, truncated (BadZipFile, EOFError), or lacking a key
        return None
    x, y, x_test, y_test = (raw[k] for k in MNIST1D_KEYS)
    consistent = (
        x.ndim == 2
        and x_test.ndim == 2
        and x.shape[1] == x_test.shape[1]
        and y.shape == x.shape[:1]
        and y_test.shape == x_test.shape[:1]
    )
    if not consistent or stored != _checksum(raw):
        return None
    return raw


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (images [1797, 8, 8] float64, labels int), read from the file it
    ships as `load_digits` reads it, without importing scikit-learn (~2 s CPU a process);
    `load_digits` itself where that file is not where this version keeps it."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    folders = (spec and spec.submodule_search_locations) or []
    path = os.path.join(*folders[:1], "datasets", "data", "digits.csv.gz")
    if folders and os.path.isfile(path):
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images) as 8x8x1, a fixed 80/20 split."""
    images, target = _bundled_digits()
    images = images.astype(np.float32)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    split = int(0.8 * len(images))
    train, test = order[:split], order[split:]
    return make_dataset("digits", images[train], target[train], images[test], target[test], 10)


def teacher(
    num_train: int = 8000, num_test: int = 2000, dim: int = 32, classes: int = 10
) -> Dataset:
    """Gaussian inputs labelled by the argmax of a fixed random two-layer ReLU teacher."""
    rng = np.random.default_rng(1234)
    w1 = rng.normal(0, np.sqrt(2 / dim), (dim, 4 * dim))
    w2 = rng.normal(0, np.sqrt(1 / (4 * dim)), (4 * dim, classes))
    x = rng.normal(size=(num_train + num_test, dim))
    y = np.argmax(np.maximum(x @ w1, 0) @ w2, axis=1)
    return make_dataset(
        "teacher", x[:num_train], y[:num_train], x[num_train:], y[num_train:], classes
    )


def two_gaussians(
    per_class_train: int = 9000, per_class_test: int = 1000, dim: int = 32, separation: float = 2.0
) -> Dataset:
    """Iyer et al.'s binary task, N(+m, I) against N(-m, I), 9k/1k examples per class.

    |m| = `separation` along a fixed random direction, so the Bayes accuracy is
    Phi(separation) (0.977 for 2); the paper's exact means are not restated here.
    """
    rng = np.random.default_rng(4321)
    direction = rng.normal(size=dim)
    mean = separation * direction / np.linalg.norm(direction)
    n = per_class_train + per_class_test
    x = np.concatenate([rng.normal(size=(n, dim)) + mean, rng.normal(size=(n, dim)) - mean])
    y = np.concatenate([np.zeros(n, int), np.ones(n, int)])
    is_test = np.tile(np.arange(n) >= per_class_train, 2)
    order_train = rng.permutation(np.flatnonzero(~is_test))
    order_test = rng.permutation(np.flatnonzero(is_test))
    return make_dataset(
        "two_gaussians", x[order_train], y[order_train], x[order_test], y[order_test], 2
    )


SOURCES = {
    "mnist1d": mnist1d,
    "digits": digits,
    "teacher": teacher,
    "two_gaussians": two_gaussians,
}
