"""predict.py: real test-set images as photos of ink on paper (inverted, padded, rescaled) are classified right."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edge_mnist.datasets import DATASETS
from edge_mnist.errors import EdgeMnistError
from edge_mnist.predict import load_image, preprocess
from tests.test_cli import run_cli

pytestmark = pytest.mark.device
MNIST, FASHION = DATASETS["mnist"].task, DATASETS["fashion-mnist"].task


@pytest.fixture(scope="module")
def confident_digits(fixture_data_dir):
    """Per class, a test image the committed int8 model gets right with the highest probability."""
    from edge_mnist.data import load_dataset, to_float
    from edge_mnist.runtime import open_model
    from tests.conftest import FIXTURES

    data = load_dataset("fashion-mnist", fixture_data_dir)
    probs = open_model(FIXTURES / "device_export" / "model_int8.tflite").predict(to_float(data.x_test))
    ok = np.flatnonzero(probs.argmax(1) == data.y_test)
    picks = [max(ok[data.y_test[ok] == c], key=lambda i: probs[i].max()) for c in np.unique(data.y_test[ok])][:6]
    return [(data.x_test[i], int(data.y_test[i])) for i in picks]


def save_variants(tmp_path, image: np.ndarray, idx: int) -> list:
    """The same test image as dark ink on white paper: inverted at its size, and padded, 3x rescaled, in RGB."""
    inverted = tmp_path / f"{idx}_inverted.png"
    Image.fromarray(255 - image).save(inverted)
    canvas = Image.new("L", (130, 110), 255)
    canvas.paste(Image.fromarray(255 - image).resize((84, 84), Image.Resampling.BICUBIC), (30, 12))
    padded = tmp_path / f"{idx}_padded.jpg"
    canvas.convert("RGB").save(padded, quality=90)
    return [inverted, padded]


def test_predict_cli_labels_photos_of_real_images(device_export, confident_digits, tmp_path):
    files, expected = [], []
    for i, (image, label) in enumerate(confident_digits):
        variants = save_variants(tmp_path, image, i)
        files += [str(p) for p in variants]
        expected += [label] * len(variants)
    code, out, err = run_cli(["predict", "--out", str(device_export), "--json", *files])
    assert code == 0, err
    got = [json.loads(line)["class"] for line in out.strip().splitlines()]
    correct = np.mean(np.array(got) == np.array(expected))
    assert correct >= 0.9, list(zip(got, expected))


def test_predict_refuses_a_tampered_artifact(device_export, confident_digits, tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, confident_digits[0][0])
    target = device_export / "model_int8.tflite"
    data = bytearray(target.read_bytes())
    data[-100] ^= 0xFF
    target.write_bytes(bytes(data))
    code, _, err = run_cli(["predict", "--out", str(device_export), str(npy)])
    assert code == 2 and "model_int8.tflite: sha256 does not match manifest.json" in err


def test_preprocess_centres_a_digit_on_paper():
    paper = np.ones((200, 150), np.float32)
    paper[20:80, 10:30] = 0.0  # a dark stroke far off-centre
    img = preprocess(paper, MNIST)
    assert img.shape == (28, 28) and img.max() == pytest.approx(1.0)
    rows, cols = np.nonzero(img > 0.5)
    assert rows.max() - rows.min() + 1 <= 21  # fitted into the 20x20 box
    ys, xs = np.indices(img.shape)
    assert abs((ys * img).sum() / img.sum() - 13.5) < 1.5 and abs((xs * img).sum() / img.sum() - 13.5) < 1.5


def test_fashion_items_fill_the_frame():
    paper = np.ones((90, 60), np.float32)
    paper[10:70, 20:50] = 0.2  # a 60x30 dark item on light paper
    img = preprocess(paper, FASHION)
    rows, cols = np.nonzero(img > 0.5)
    assert rows.max() - rows.min() + 1 >= 27 and cols.max() - cols.min() + 1 >= 13


def test_blank_and_bad_images(tmp_path):
    with pytest.raises(EdgeMnistError, match="blank image"):
        preprocess(np.ones((50, 50), np.float32), MNIST, "blank.png")
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(EdgeMnistError, match="x.png: not a readable image"):
        load_image(tmp_path / "x.png")
    np.save(tmp_path / "nan.npy", np.full((28, 28), np.nan))
    with pytest.raises(EdgeMnistError, match="nan.npy: image contains NaN"):
        load_image(tmp_path / "nan.npy")
    np.save(tmp_path / "cube.npy", np.zeros((3, 28, 28)))
    with pytest.raises(EdgeMnistError, match="cube.npy: expected a non-empty 2-D"):
        load_image(tmp_path / "cube.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 28)))
    with pytest.raises(EdgeMnistError, match="empty.npy: expected a non-empty 2-D"):
        load_image(tmp_path / "empty.npy")


def test_npy_whose_header_claims_a_huge_shape_is_refused_without_reading(tmp_path):
    path = tmp_path / "huge.npy"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((99999, 99999), np.uint8))
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\0" * 784)
    with pytest.raises(EdgeMnistError, match="huge.npy: not a readable .npy array"):
        load_image(path)


@pytest.mark.parametrize("size", [(28, 28), (300, 200)])
@pytest.mark.parametrize("value", [0, 255])
def test_blank_images_are_refused_at_every_size(tmp_path, size, value):
    path = tmp_path / "blank.png"
    Image.new("L", size, value).save(path)
    with pytest.raises(EdgeMnistError, match="blank.png: no digit or object found"):
        load_image(path)


def test_image_over_the_pixel_cap_is_refused_before_decoding(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "big.png"
    Image.new("1", (12000, 12000), 1).save(path)  # a small file that would decode to 144 megapixels
    code = f"""
import re
from edge_mnist.errors import EdgeMnistError
from edge_mnist.predict import load_image
try:
    load_image(r"{path}")
except EdgeMnistError as exc:
    print(exc)
status = open("/proc/self/status").read()  # VmHWM starts afresh at exec, unlike ru_maxrss
print("peak_mb", int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "big.png: 12000x12000 pixels, more than the limit" in proc.stdout, proc.stderr
    assert float(proc.stdout.split("peak_mb")[1]) < 200  # decoding alone would take 144 MB, as floats 576 MB


def ink_on_paper(image: np.ndarray) -> np.ndarray:
    """A test image as dark ink on light paper, 3x larger, as 0..1 floats."""
    big = Image.fromarray(255 - image).resize((84, 84), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (120, 120), 255)
    canvas.paste(big, (18, 18))
    return np.asarray(canvas, np.float32) / 255.0


def test_16bit_palette_and_transparent_images_read_like_8bit(tmp_path, confident_digits):
    gray = ink_on_paper(confident_digits[0][0])
    Image.fromarray((gray * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray((gray * 255).astype(np.uint8)).convert("P").save(tmp_path / "palette.png")
    alpha = Image.new("RGBA", (120, 120), (0, 0, 0, 0))  # black ink on a transparent sheet, as drawing apps save it
    alpha.putalpha(Image.fromarray(((1 - gray) * 255).astype(np.uint8)))
    alpha.save(tmp_path / "transparent.png")
    for name in ("deep.png", "palette.png", "transparent.png"):
        img = load_image(tmp_path / name)
        assert np.abs(img - gray).max() < 0.02, name


def test_every_file_gets_its_line_and_a_failure_exits_2(device_export, confident_digits, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, confident_digits[0][0])
    Image.new("L", (28, 28), 0).save(tmp_path / "black.png")
    code, out, err = run_cli(["predict", "--out", str(device_export), "--json", str(good),
                              str(tmp_path / "black.png"), str(tmp_path / "missing.png"), str(tmp_path)])
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 2 and len(lines) == 4
    assert lines[0]["class"] == confident_digits[0][1]
    assert "blank" in lines[1]["error"] and "not found" in lines[2]["error"] and "is a folder" in lines[3]["error"]
    assert "3 of 4 images could not be classified" in err and "Traceback" not in err


def test_a_model_outside_the_manifest_runs_unverified_and_says_so(device_export, confident_digits, tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, confident_digits[0][0])
    lone = tmp_path / "elsewhere" / "model.tflite"
    lone.parent.mkdir()
    lone.write_bytes((device_export / "model_int8.tflite").read_bytes())
    code, out, err = run_cli(["predict", "--out", str(tmp_path / "elsewhere"), "--model", str(lone), str(npy)])
    assert code == 0, err
    assert "running it unverified" in err
    assert out.startswith(f"{npy}: {FASHION.class_names[confident_digits[0][1]]}")
    code, _, err = run_cli(["predict", "--out", str(device_export), "--model", str(device_export / "model_int8.onnx"),
                            str(npy)])
    assert code == 0 and "unverified" not in err


def test_the_same_file_twice_gets_two_lines(device_export, confident_digits, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, confident_digits[0][0])
    code, out, err = run_cli(["predict", "--out", str(device_export), "--json", str(good), str(good)])
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 0, err
    assert [item["class"] for item in lines] == [confident_digits[0][1]] * 2


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx", "model_int8.ort", "model_qat_int8.tflite",
                                  "model_qat_int8.onnx", "model_qat_int8.ort"])
def test_a_lone_model_file_is_enough(device_export, confident_digits, tmp_path, name):
    """`predict --model FILE IMAGE` with nothing else: labels, input quantization and preprocessing
    come from the file's own metadata (no manifest, no export folder in the working directory)."""
    from tests.conftest import run_process

    image, label = confident_digits[0]
    Image.fromarray(255 - image).save(tmp_path / "photo.png")
    (tmp_path / name).write_bytes((device_export / name).read_bytes())
    done = run_process(["predict", "--model", name, "--json", "photo.png"], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["class"], result["label"]) == (label, FASHION.class_names[label])
