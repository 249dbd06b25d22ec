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
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import Manifest
from tests.cli.test_commands import run_cli
from tests.export.test_micro_c import assert_same_as_tflm
from tests.predict.test_preprocess import enlarged

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
    data = read_folder(exported).dataset
    assert_same_as_tflm(exported / "model_int8.tflite", Manifest.load(exported).task, to_float(data.x_test[:100]),
                        tmp_path)


def test_predict_at_8x8_takes_the_test_images_as_they_are_and_resizes_a_larger_one_whole(exported, digits_dir,
                                                                                         tmp_path):
    """The test digits through the CLI get the runtime's classes on the folder's own pixels; the same digits saved
    4x larger (32x32) are resized whole to 8x8 (no cut, no centring), which --save-preprocessed shows. (The
    one-epoch model's scores are too even for the enlarged copies' classes to be asserted.)"""
    from edge_mnist.runtime import open_model

    files = sorted((digits_dir / "test").rglob("*.png"))[:60]
    code, stdout, err = run_cli(["predict", "--out", str(exported), "--json", *map(str, files)])
    assert code == 0, err
    x = np.stack([np.asarray(Image.open(f)) for f in files])
    expected = open_model(exported / "model_int8.tflite").predict(to_float(x)).argmax(1)
    assert [json.loads(line)["class"] for line in stdout.splitlines()] == expected.tolist()
    big = [enlarged(image, tmp_path / f"{i}.png", 4) for i, image in enumerate(x)]
    code, _, err = run_cli(["predict", "--out", str(exported), "--save-preprocessed", str(tmp_path / "seen"),
                            *map(str, big)])
    assert code == 0, err
    seen = np.stack([np.asarray(Image.open(tmp_path / "seen" / f"{i}.8x8.png")) for i in range(len(x))])
    assert np.abs(seen.astype(int) - x).mean() < 30


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


@pytest.mark.slow
def test_run_on_the_folder_passes_the_gate_with_every_format(digits_dir, tmp_path):
    """Issue 26's done-when on the digits: `run --dataset DIR` trains (float >= 95%), exports PTQ and QAT in
    every format, benches each, passes the gate and writes the report."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(["run", "--dataset", str(digits_dir), "--arch", "compact", "--epochs", "10",
                                 "--method", "both", "--out", str(out)])
    assert code == 0, err
    assert "PASS: all" in stdout and "BatchNorm statistics recomputed" in err + stdout
    history = json.loads((out / "history.json").read_text())
    assert history["test_accuracy"] >= 0.95, history["test_accuracy"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["user_data"]["path"] == str(digits_dir.resolve())
    files = {a["file"] for a in manifest["artifacts"]}
    assert {"model_int8.tflite", "model_qat_int8.tflite", "model_int8.onnx", "model_qat_int8.onnx",
            "model_int8.ort", "model_qat_int8_micro.c", "web/index.html"} <= files
    bench = json.loads((out / "bench.json").read_text())
    assert bench["user_data"] == manifest["user_data"]
    benched = {row["file"] for row in bench["rows"]}
    assert {f for f in files if f.endswith((".tflite", ".onnx", ".ort"))} <= benched
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


@pytest.mark.parametrize("argv, says", [
    (["train", "--dataset", "no/such/folder"], "no/such/folder: no such file or folder"),
    (["run", "--dataset", "./gone.npz"], "./gone.npz: no such file or folder"),
    (["export", "--model", "no/such.keras"], "no/such.keras: model file not found"),
    (["run", "--model", "no/such.keras", "--dataset", "fashion-mnist"], "no/such.keras: model file not found"),
])
def test_a_missing_path_is_one_line_naming_it_before_any_data_is_read(argv, says, tmp_path):
    """A missing data path or model file is the library's one line, not click's usage text, and a missing model
    is refused before its dataset is loaded (for mnist that would mean a download)."""
    code, _, err = run_cli([*argv, "--out", str(tmp_path / "out")])
    assert code == 2 and one_line_error(err) == f"edge-mnist: error: {says}", err


@pytest.mark.slow
def test_run_on_a_colour_folder_exports_benches_checks_and_reports(tinted_run, tinted_dir):
    """32x32x3 (conftest.tinted_run): every format exported, bench.json times every artifact, check gives a
    verdict, report.html written with the colour samples in colour. The tints make the classes easy, so the
    float model must learn them (99.5% when written) and every int8 file pass the gate."""
    code, stdout, err, out = tinted_run
    assert code == 0 and "PASS: all" in stdout, err[-3000:]
    assert json.loads((out / "history.json").read_text())["test_accuracy"] >= 0.9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"]["input_shape"] == [32, 32, 3] and manifest["user_data"]["channels"] == 3
    files = {a["file"] for a in manifest["artifacts"]}
    for prefix in ("model_int8", "model_qat_int8"):
        for suffix in (".tflite", ".onnx", ".ort", ".h", ".cc", "_micro.h", "_micro.c"):
            assert prefix + suffix in files, prefix + suffix
    assert "web/index.html" in files and "model_float32.tflite" in files
    timed = {row["file"] for row in json.loads((out / "bench.json").read_text())["rows"]}
    runnable = {a["file"] for a in manifest["artifacts"] if a["file"].endswith((".tflite", ".onnx", ".ort", ".keras"))}
    assert runnable <= timed, runnable - timed
    assert (out / "report.html").is_file()
    rgb = np.asarray(Image.open(out / "dataset_samples.png").convert("RGB"), np.int32)
    assert ((rgb.max(2) - rgb.min(2)) > 60).mean() > 0.02  # the tints are drawn, not one channel in grey


@pytest.mark.slow
def test_the_micro_c_at_32x32x3_equals_tflm_byte_for_byte(tinted_run, tmp_path):
    """The interpreter-free C of both int8 models, built by the host's gcc, on 100 colour test images; its
    header's constants are the task's."""
    out = tinted_run[3]
    task = Manifest.load(out).task
    data = read_folder(out).dataset
    for prefix in ("model_int8", "model_qat_int8"):
        header = (out / f"{prefix}_micro.h").read_text()
        upper = prefix.upper()
        for name, value in (("INPUT_HEIGHT", 32), ("INPUT_WIDTH", 32), ("INPUT_CHANNELS", 3), ("NUM_CLASSES", 10)):
            assert f"#define {upper}_{name} {value}" in header, name
        assert "constexpr int kInputChannels = 3;" in (out / f"{prefix}.h").read_text()
        (tmp_path / prefix).mkdir()
        assert_same_as_tflm(out / f"{prefix}.tflite", task, to_float(data.x_test[:100]), tmp_path / prefix)


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
