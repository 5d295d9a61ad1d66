"""Probe plots are written whole or not at all."""

import os

import matplotlib.figure
import pytest

from scaling import plots


def draw(path: str) -> None:
    plots.lines(path, "t", "width", "C", {"mup": ([64, 128], [1.0, 1.1])})


def test_plot_written_and_no_temporary_left(tmp_path):
    path = str(tmp_path / "coord.png")
    draw(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["coord.png"]


def test_failed_write_keeps_the_earlier_plot(tmp_path, monkeypatch):
    path = tmp_path / "coord.png"
    path.write_bytes(b"earlier plot")

    def half_written(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(OSError):
        draw(str(path))
    assert path.read_bytes() == b"earlier plot"
    assert os.listdir(tmp_path) == ["coord.png"]
