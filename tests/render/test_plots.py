"""render.plots at your data's shapes: colour samples drawn in colour, 100+ classes kept readable.

Real Fashion-MNIST test items from the committed fixture (tinted at 32x32x3 by tests/test_userdata.py's `tinted`).
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_mnist.render import plots
from tests.test_userdata import tinted

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def fashion():
    """The fixture's 500 real test items and labels."""
    from edge_mnist.data import load_dataset
    from tests.conftest import FIXTURES

    data = load_dataset("fashion-mnist", FIXTURES / "fashion-small")
    return data.x_test, data.y_test.astype(np.int64)


def _saturated_share(path) -> float:
    """Share of a PNG's pixels whose channels differ by more than 60 levels (coloured, not grey)."""
    rgb = np.asarray(Image.open(path).convert("RGB"), np.int32)
    return float(((rgb.max(2) - rgb.min(2)) > 60).mean())


def test_colour_samples_are_drawn_in_colour(fashion, tmp_path):
    x, y = fashion
    colour = plots.samples(tinted(x, y), y, [f"class {i}" for i in range(10)], tmp_path / "c.png", "tinted")
    grey = plots.samples(x, y, [f"class {i}" for i in range(10)], tmp_path / "g.png", "grey")
    assert _saturated_share(colour) > 0.02 and _saturated_share(grey) == 0
    wrong = plots.misclassified(tinted(x, y), y, (y + 1) % 10, [str(i) for i in range(10)], tmp_path / "m.png", "m")
    assert _saturated_share(wrong) > 0.02


def test_a_hundred_and_twenty_classes_keep_the_pictures_readable(fashion, tmp_path):
    """120 classes (the items relabelled by index): the matrices stay a few thousand pixels across with about 30
    class names, and the samples show one image of each of the first 100 classes, 20 to a row."""
    x, y = fashion
    labels = np.arange(len(y)) % 120
    names = [f"a long class name {i}" for i in range(120)]
    preds = (labels + (np.arange(len(y)) % 7 == 0)) % 120
    for path in (plots.confusion(labels, preds, names, tmp_path / "c.png", "float"),
                 plots.disagreement(labels, {"a.tflite": preds}, names, tmp_path / "d.png", "float")):
        width, height = Image.open(path).size
        assert 800 < width < 2000 and 800 < height < 2000, (path, width, height)
    samples = plots.samples(x, labels, names, tmp_path / "s.png", "many")
    width, height = Image.open(samples).size
    assert width == round(1.35 * 20 * 100) and height == round((1.55 * 5 + 0.5) * 100)


def test_a_few_classes_keep_one_column_each(fashion, tmp_path):
    x, y = fashion
    width, height = Image.open(plots.samples(x, y, [str(i) for i in range(10)], tmp_path / "s.png", "t")).size
    assert width == round(1.35 * 10 * 100) and height == round((1.55 * 4 + 0.5) * 100)


def test_the_curves_title_names_dataset_architecture_and_accuracy():
    assert plots.curves_title("fashion-mnist", "compact", 0.88236) == "fashion-mnist · compact · float test accuracy 88.24%"
