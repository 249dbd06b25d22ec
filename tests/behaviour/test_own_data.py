"""A user's own data end to end (issue 26): scikit-learn's real 8x8 digits as an image folder, trained, exported
int8, gated and described through the CLI; the folder records the data and refuses it once it changed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_mnist.data import to_float
from edge_mnist.folder.records import Manifest
from edge_mnist.userdata import load_for_folder
from tests.behaviour.test_cli import run_cli
from tests.export.test_micro_c import assert_same_as_tflm

pytestmark = pytest.mark.tf

CLASSES = [f"digit{i}" for i in range(10)]


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    """The 1,797 digits (0..16 scaled to uint8) as PNGs: every fifth image in test/, the rest in train/."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    root = tmp_path_factory.mktemp("own") / "digits"
    for i, (image, label) in enumerate(zip(np.round(bunch.images * (255 / 16)).astype(np.uint8), bunch.target)):
        folder = root / ("test" if i % 5 == 0 else "train") / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def exported(digits_dir, tmp_path_factory) -> Path:
    """compact trained one epoch on the digits folder, then exported float and post-training int8."""
    out = tmp_path_factory.mktemp("own") / "out"
    code, _, err = run_cli(["train", "--dataset", str(digits_dir), "--arch", "compact", "--epochs", "1",
                            "--out", str(out)])
    assert code == 0, err
    code, _, err = run_cli(["export", "--int8", "--out", str(out)])
    assert code == 0, err
    return out


def one_line_error(err: str) -> str:
    """The CLI's error: exactly one line (progress may precede it), no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("edge-mnist: error:")]
    assert len(lines) == 1 and err.strip().endswith(lines[0]) and "Traceback" not in err, err
    return lines[0]


def test_the_manifest_and_history_record_the_data(exported, digits_dir):
    manifest = json.loads((exported / "manifest.json").read_text())
    recorded = manifest["user_data"]
    assert recorded["path"] == str(digits_dir.resolve()) and len(recorded["fingerprint"]) == 64
    assert recorded["channels"] == 1 and recorded["image_size"] is None
    task = manifest["task"]
    assert task["dataset"] == "digits" and task["input_shape"] == [8, 8, 1] and task["class_names"] == CLASSES
    assert json.loads((exported / "history.json").read_text())["user_data"] == recorded


def test_every_format_is_exported_at_8x8(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    files = {a["file"] for a in manifest["artifacts"]}
    for name in ("model_int8.tflite", "model_int8.onnx", "model_int8.ort", "model_int8.h", "model_int8_micro.c",
                 "web/index.html"):
        assert name in files, name


def test_the_micro_c_at_8x8_equals_tflm_byte_for_byte(exported, tmp_path):
    """The interpreter-free C, built by the host's gcc, on 100 of the test images."""
    data = load_for_folder(exported, None, None)
    assert_same_as_tflm(exported / "model_int8.tflite", Manifest.load(exported).task, to_float(data.x_test[:100]),
                        tmp_path)


def test_check_gives_a_verdict_on_the_recorded_data(exported):
    code, out, err = run_cli(["check", "--out", str(exported)])
    assert code in (0, 1), err
    assert ("PASS" if code == 0 else "FAIL") in out and "Traceback" not in err
    assert "model_int8.tflite@tflm" in out


def test_info_shows_the_task(exported):
    code, out, err = run_cli(["info", "--out", str(exported), "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert info["dataset"] == "digits" and info["classes"] == CLASSES
    assert info["user_data"] == json.loads((exported / "manifest.json").read_text())["user_data"]
    code, out, err = run_cli(["info", "--out", str(exported)])
    assert code == 0 and f"data: {info['user_data']['path']} (1 channel); fingerprint" in out, err


def test_moved_data_is_named_with_dataset(exported, digits_dir, tmp_path):
    moved = shutil.copytree(digits_dir, tmp_path / "moved")
    code, _, err = run_cli(["check", "--out", str(exported), "--dataset", str(moved)])
    assert code in (0, 1), err
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(next((moved / "test" / "digit4").iterdir()))
    code, _, err = run_cli(["check", "--out", str(exported), "--dataset", str(moved)])
    assert code == 2 and str(moved) in one_line_error(err) and "the data changed" in err


def test_a_changed_test_image_stops_check(exported, digits_dir):
    image = next((digits_dir / "test" / "digit7").iterdir())
    original = image.read_bytes()
    try:
        Image.fromarray(255 - np.asarray(Image.open(image))).save(image)
        code, _, err = run_cli(["check", "--out", str(exported)])
        assert code == 2, err
        assert str(digits_dir.resolve()) in one_line_error(err) and "the data changed" in err
    finally:
        image.write_bytes(original)


def test_an_architecture_too_big_for_the_images_is_refused_up_front(digits_dir, tmp_path):
    code, _, err = run_cli(["train", "--dataset", str(digits_dir), "--arch", "reference_cnn", "--out",
                            str(tmp_path / "out")])
    line = one_line_error(err)
    assert code == 2 and "at least 10x10" in line and "digits images are 8x8" in line
    assert "architectures that fit: mlp" in line and "compact" in line
    assert not (tmp_path / "out" / "history.json").exists()


@pytest.mark.parametrize("argv, says", [
    (["--dataset", "no/such/folder"], "no/such/folder"),
    (["--dataset", "mnist", "--channels", "3"], "apply to your own data"),
    (["--image-size", "8x"], "not H or HxW"),
])
def test_bad_data_options_exit_2_in_one_line(argv, says, tmp_path):
    code, _, err = run_cli(["train", *argv, "--out", str(tmp_path / "out")])
    assert code == 2 and says in err and "Traceback" not in err


def test_run_on_the_folder(digits_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli(["run", "--dataset", str(digits_dir), "--arch", "mlp", "--epochs", "1",
                                 "--tflm-images", "50", "--out", str(out)])
    assert code in (0, 1), err
    assert json.loads((out / "manifest.json").read_text())["user_data"]["path"] == str(digits_dir.resolve())
    assert (out / "report.html").is_file()


def test_export_model_imports_a_keras_file_for_the_folder(exported, digits_dir, tmp_path):
    out = tmp_path / "imported"
    code, _, err = run_cli(["export", "--model", str(exported / "model_float32.keras"), "--dataset", str(digits_dir),
                            "--channels", "1", "--out", str(out)])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["user_data"] == json.loads((exported / "manifest.json").read_text())["user_data"]
    code, _, err = run_cli(["export", "--channels", "3", "--out", str(out)])
    assert code == 2 and "go with --model" in one_line_error(err)


def test_a_train_image_that_cannot_be_decoded_stops_training_in_one_line(digits_dir, tmp_path):
    """The train split is streamed from its files, so a damaged one shows only when training reads it: the
    error names the file (not TensorFlow's wrapped trace), exit 2, and nothing is written."""
    broken_dir = shutil.copytree(digits_dir, tmp_path / "broken")
    broken = sorted((broken_dir / "train" / "digit4").iterdir())[-1]
    whole = broken.read_bytes()
    broken.write_bytes(whole[:whole.index(b"IDAT") + 8])  # the header intact, the pixels cut off
    code, _, err = run_cli(["train", "--dataset", str(broken_dir), "--arch", "mlp", "--epochs", "1",
                            "--out", str(tmp_path / "out")])
    line = one_line_error(err)
    assert code == 2 and str(broken) in line and "cannot decode the image" in line
    assert not (tmp_path / "out" / "history.json").exists()
