"""predict.preprocess for a task of the user's own data: any size, grey or colour, the photo resized whole.

Real images: scikit-learn's 8x8 digits and Fashion-MNIST items tinted at 32x32x3 (tests/test_userdata.py's
`tinted`); the slow tests classify them through the CLI with the session's colour export (conftest.tinted_run).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_mnist.folder.records import Manifest
from edge_mnist.predict.preprocess import load_image, preprocess
from edge_mnist.registry.datasets import FASHION, Task
from tests.cli.test_commands import run_cli
from tests.test_userdata import tinted

pytestmark = pytest.mark.device
COLOUR = Task("tinted", (32, 32, 3), FASHION, fit_box=32)
DIGITS8 = Task("digits", (8, 8, 1), tuple(str(i) for i in range(10)), fit_box=8)


@pytest.fixture(scope="module")
def tinted_items() -> np.ndarray:
    """20 real Fashion-MNIST test items (two per class) tinted at 32x32x3, from the committed fixture."""
    from edge_mnist.data import load_dataset
    from tests.conftest import FIXTURES

    data = load_dataset("fashion-mnist", FIXTURES / "fashion-small")
    picked = np.concatenate([np.flatnonzero(data.y_test == c)[:2] for c in range(10)])
    return tinted(data.x_test[picked], data.y_test[picked])


def enlarged(image: np.ndarray, path: Path, factor: int = 3) -> Path:
    """The image saved `factor` times larger (Lanczos) in the format path's suffix names."""
    Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor), Image.LANCZOS).save(
        path, quality=95)
    return path


def test_a_frame_sized_image_is_the_model_input_as_it_is(tinted_items, tmp_path):
    path = tmp_path / "item.png"
    Image.fromarray(tinted_items[3]).save(path)
    x = preprocess(load_image(path, 3), COLOUR)
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, tinted_items[3] / np.float32(255))


@pytest.mark.parametrize("suffix, tolerance", [(".png", 6.0), (".jpg", 8.0)])
def test_a_larger_colour_photo_is_resized_whole_and_keeps_its_colour(tinted_items, tmp_path, suffix, tolerance):
    """Each item 3x larger comes back to 32x32 within a few of 255 levels on average, in its own colour."""
    for i, item in enumerate(tinted_items):
        x = preprocess(load_image(enlarged(item, tmp_path / f"{i}{suffix}"), 3), COLOUR)
        assert x.shape == (32, 32, 3)
        assert np.abs(x * 255 - item).mean() < tolerance, i
        ink = item.sum(2) > 96
        got, want = x[ink].mean(0), item[ink].mean(0) / 255
        assert np.abs(got - want).max() < 0.05, (i, got, want)


def test_a_grey_photo_for_a_colour_task_is_repeated_and_a_colour_one_for_a_grey_task_is_luma(tinted_items,
                                                                                              tmp_path):
    grey = tinted_items[0].max(2)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    x = preprocess(load_image(tmp_path / "grey.png", 3), COLOUR)
    assert x.shape == (32, 32, 3) and (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()
    np.testing.assert_array_equal(x[..., 0], grey / np.float32(255))
    Image.fromarray(tinted_items[0]).save(tmp_path / "colour.png")
    grey_task = Task("tinted", (32, 32, 1), FASHION, fit_box=32)
    y = preprocess(load_image(tmp_path / "colour.png", 1), grey_task)
    luma = np.asarray(Image.fromarray(tinted_items[0]).convert("L"))
    assert y.shape == (32, 32)
    assert np.abs(y * 255 - luma).max() <= 1  # Pillow's convert("L"), as the reader makes a grey task's images


def test_an_rgb_npy_and_a_rgba_png_are_read_for_a_colour_task(tinted_items, tmp_path):
    np.save(tmp_path / "item.npy", tinted_items[5])
    np.testing.assert_array_equal(load_image(tmp_path / "item.npy", 3), tinted_items[5] / np.float32(255))
    assert load_image(tmp_path / "item.npy", 1).shape == (32, 32)
    rgba = np.dstack([tinted_items[5], np.full((32, 32), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "item.png")
    np.testing.assert_array_equal(load_image(tmp_path / "item.png", 3), tinted_items[5] / np.float32(255))


def test_an_8x8_digit_photographed_larger_comes_back_to_8x8():
    """scikit-learn's real digits, 4x larger: the whole image resized (bilinear, as the reader resizes, which
    at 8x8 blurs each pixel into its neighbours by some 18 of 255 levels on average), not cut to the ink."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = np.round(sklearn_datasets.load_digits().images[:50] * (255 / 16)).astype(np.uint8)
    for digit in digits:
        big = np.asarray(Image.fromarray(digit).resize((32, 32), Image.LANCZOS), np.float32) / 255
        x = preprocess(big, DIGITS8)
        assert x.shape == (8, 8)
        assert np.abs(x * 255 - digit).mean() < 30


def confident(out: Path, model: str, files: list[Path], steps: int = 4) -> list[tuple[Path, int]]:
    """(file, class) of the frame-sized test files whose best class the model puts at least `steps` int8 output
    steps (of 1/256) ahead of the next: a 3x larger copy, a few levels off per pixel, must not change those
    (measured on the session's colour export: 56 of 200 for the QAT model, all kept; at 2 steps 97% kept)."""
    from edge_mnist.runtime import open_model

    task = Manifest.load(out).task
    x = np.stack([load_image(f, task.input_shape[2]) for f in files]).reshape(len(files), *task.input_shape)
    probs = open_model(out / model).predict(x)
    ranked = np.sort(probs, axis=1)
    ahead = ranked[:, -1] - ranked[:, -2] >= steps / 256 - 1e-6
    return [(f, int(p.argmax())) for f, p, sure in zip(files, probs, ahead) if sure]


def assert_larger_copies_keep_their_class(out: Path, model: str, files: list[Path], folder: Path, suffix: str,
                                          factor: int = 3) -> None:
    """Through the CLI: each test file the model is clear about (`confident`), saved `factor` times larger, is
    given the class the runtime gives the file itself."""
    sure = confident(out, model, files)
    assert len(sure) >= 10
    photos = [enlarged(np.asarray(Image.open(f)), folder / f"{i}{suffix}", factor) for i, (f, _) in enumerate(sure)]
    code, stdout, err = run_cli(["predict", "--out", str(out), "--model", str(out / model), "--json",
                                 *map(str, photos)])
    assert code == 0, err
    assert [json.loads(line)["class"] for line in stdout.splitlines()] == [c for _, c in sure]


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_predict_gives_a_larger_colour_photo_the_class_of_its_test_image(tinted_run, tinted_dir, tmp_path, suffix):
    """Against the colour export: the QAT int8 model (the float model's BatchNorm lags on a run this short, so
    the PTQ model is weak) on the test images it is clear about, each saved 3x larger."""
    files = sorted((tinted_dir / "test").rglob("*.png"))
    assert_larger_copies_keep_their_class(tinted_run[3], "model_qat_int8.tflite", files, tmp_path, suffix)
