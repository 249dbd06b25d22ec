"""predict.py: real test-set images as photos of ink on paper are classified right.

Fashion-MNIST items inverted and padded, and real MNIST digits rendered as phone photos (dark ink
on paper, enlarged, turned, off-centre, lit with a gradient, noisy, JPEG), through the committed
int8 models of tests/fixtures.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.photos import phone_photo  # the renderer of the photo benchmark
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.predict.preprocess import load_image, preprocess
from edge_mnist.registry.datasets import DATASETS
from tests.cli.test_commands import run_cli
from tests.conftest import FIXTURES

pytestmark = pytest.mark.device
MNIST, FASHION = DATASETS["mnist"].task, DATASETS["fashion-mnist"].task
MNIST_EXPORT = FIXTURES / "mnist_export"  # manifest + int8 TFLite of a small CNN, >= 95% on the test digits


def confident_examples(dataset: str, data_dir, model_file, count: int = 6) -> list[tuple[np.ndarray, int]]:
    """Per class (the first `count`), the test image the int8 model gets right with the highest probability."""
    from edge_mnist.data import load_dataset, to_float
    from edge_mnist.runtime import open_model

    data = load_dataset(dataset, data_dir)
    probs = open_model(model_file).predict(to_float(data.x_test))
    ok = np.flatnonzero(probs.argmax(1) == data.y_test)
    picks = [max(ok[data.y_test[ok] == c], key=lambda i: probs[i].max()) for c in np.unique(data.y_test[ok])][:count]
    return [(data.x_test[i], int(data.y_test[i])) for i in picks]


@pytest.fixture(scope="module")
def confident_digits(fixture_data_dir):
    """Fashion-MNIST items the committed tiny model gets right (the fixture's name is historical)."""
    return confident_examples("fashion-mnist", fixture_data_dir, FIXTURES / "device_export" / "model_int8.tflite")


@pytest.fixture(scope="module")
def confident_mnist():
    """Real MNIST digits the committed MNIST model gets right."""
    return confident_examples("mnist", FIXTURES / "mnist-digits", MNIST_EXPORT / "model_int8.tflite", count=10)


@pytest.fixture(scope="module")
def mnist_digits():
    """The 1000 committed real MNIST test digits and labels."""
    from edge_mnist.data import load_dataset

    data = load_dataset("mnist", FIXTURES / "mnist-digits")
    return data.x_test, data.y_test


def predict_json(*args) -> tuple[int, list[dict], str]:
    """`edge-mnist predict --json ARGS`: exit code, one parsed entry per line, stderr."""
    code, out, err = run_cli(["predict", "--json", *map(str, args)])
    return code, [json.loads(line) for line in out.splitlines()], err


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
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.predict.preprocess import load_image
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


def test_16bit_palette_and_transparent_pngs_become_the_same_input(tmp_path, confident_mnist):
    digit, label = confident_mnist[3]
    gray = ink_on_paper(digit)
    Image.fromarray((gray * 255).round().astype(np.uint8)).save(tmp_path / "plain.png")
    Image.fromarray((gray * 65535).round().astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray((gray * 255).round().astype(np.uint8)).convert("P").save(tmp_path / "palette.png")
    strokes = Image.new("RGBA", gray.shape[::-1], (0, 0, 0, 0))  # black strokes on a transparent sheet
    strokes.putalpha(Image.fromarray(((1 - gray) * 255).round().astype(np.uint8)))
    strokes.save(tmp_path / "transparent.png")
    names = ["plain.png", "deep.png", "palette.png", "transparent.png"]
    assert Image.open(tmp_path / "deep.png").mode.startswith("I") and Image.open(tmp_path / "palette.png").mode == "P"
    for name in names[1:]:
        assert np.abs(load_image(tmp_path / name) - gray).max() < 0.02, name
    code, lines, err = predict_json("--out", MNIST_EXPORT, "--save-preprocessed", tmp_path / "seen",
                                    *[tmp_path / name for name in names])
    assert code == 0, err
    assert [item["class"] for item in lines] == [label] * 4
    seen = [np.asarray(Image.open(item["preprocessed"]), np.float32) for item in lines]
    for name, image in zip(names[1:], seen[1:]):
        assert np.abs(image - seen[0]).max() <= 2, name  # grey levels of the 28x28 the model got


def test_every_file_gets_its_line_and_a_failure_exits_2(device_export, confident_digits, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, confident_digits[0][0])
    Image.new("L", (28, 28), 0).save(tmp_path / "black.png")
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(["predict", "--out", str(device_export), "--json", str(good),
                              str(tmp_path / "black.png"), str(tmp_path / "missing.png"), str(tmp_path / "empty")])
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 2 and len(lines) == 4
    assert lines[0]["class"] == confident_digits[0][1]
    assert "blank" in lines[1]["error"] and "not found" in lines[2]["error"]
    assert "empty: folder holds no image files" in lines[3]["error"]
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


@pytest.mark.parametrize("gradient", [0, 50])
def test_photos_of_real_digits_score_nearly_as_well_as_the_digits(tmp_path, mnist_digits, gradient):
    """200 real test digits as 28x28 files and as phone photos (gradient: grey levels of light fall-off
    across the page, the case the old crop failed on), through the same int8 TFLite model."""
    images, labels = mnist_digits[0][:200], mnist_digits[1][:200]
    rng = np.random.default_rng(gradient)
    (tmp_path / "digits").mkdir()
    (tmp_path / "photos").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "digits" / f"{i:03d}.png")
        phone_photo(image, rng, gradient).save(tmp_path / "photos" / f"{i:03d}.jpg", quality=75)
    code, lines, err = predict_json("--out", MNIST_EXPORT, tmp_path / "digits", tmp_path / "photos")
    assert code == 0, err
    assert [item["file"] for item in lines[:3]] == [str(tmp_path / "digits" / f"{i:03d}.png") for i in range(3)]
    digit_accuracy, photo_accuracy = (np.array([item["class"] for item in lines]).reshape(2, -1) == labels).mean(1)
    assert digit_accuracy >= 0.9
    assert photo_accuracy >= 0.9 * digit_accuracy, (digit_accuracy, photo_accuracy)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path, confident_mnist):
    digit, label = confident_mnist[7]
    upright = phone_photo(digit, np.random.default_rng(7))
    upright.save(tmp_path / "upright.jpg", quality=90)
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # how the sensor stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    sideways.save(tmp_path / "tagged.jpg", quality=90, exif=exif)
    sideways.save(tmp_path / "untagged.jpg", quality=90)
    code, lines, err = predict_json("--out", MNIST_EXPORT, "--save-preprocessed", tmp_path / "seen",
                                    *[tmp_path / f"{name}.jpg" for name in ("upright", "tagged", "untagged")])
    assert code == 0, err
    upright_seen, tagged_seen, untagged_seen = (np.asarray(Image.open(item["preprocessed"]), np.float32) / 255
                                                for item in lines)
    assert lines[0]["class"] == lines[1]["class"] == label
    assert np.abs(tagged_seen - upright_seen).mean() < 0.02
    assert np.abs(untagged_seen - upright_seen).mean() > 0.1  # without the tag the digit lies on its side


def test_folders_and_patterns_expand_to_their_image_files(tmp_path, confident_mnist):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    (digit_a, label_a), (digit_b, label_b), (digit_c, label_c) = confident_mnist[:3]
    Image.fromarray(digit_b).save(folder / "b.png")
    Image.fromarray(digit_a).convert("RGB").save(folder / "a.JPG", quality=95)
    np.save(folder / "c.npy", digit_c)
    Image.fromarray(digit_a).save(folder / "sub" / "nested.png")  # folders are not searched recursively
    Image.fromarray(digit_a).save(folder / ".hidden.png")
    (folder / "notes.txt").write_text("not an image")
    code, lines, err = predict_json("--out", MNIST_EXPORT, folder)
    assert code == 0, err
    assert [(item["file"], item["class"]) for item in lines] == [
        (str(folder / "a.JPG"), label_a), (str(folder / "b.png"), label_b), (str(folder / "c.npy"), label_c)]
    (tmp_path / "empty").mkdir()
    code, lines, err = predict_json("--out", MNIST_EXPORT, f"{folder}/*.png", f"{folder}/[ab].*",
                                    tmp_path / "empty", f"{folder}/*.gif")
    assert code == 2
    assert [item["file"] for item in lines[:3]] == [str(folder / "b.png"), str(folder / "a.JPG"), str(folder / "b.png")]
    assert "folder holds no image files" in lines[3]["error"] and "no file matches the pattern" in lines[4]["error"]
    assert "2 of 5 images could not be classified" in err


def test_saved_preprocessed_image_is_what_the_model_got_and_no_input_is_overwritten(tmp_path, mnist_digits):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    phone_photo(mnist_digits[0][0], np.random.default_rng(0)).save(inbox / "seven.jpg", quality=80)
    phone_photo(mnist_digits[0][1], np.random.default_rng(1)).save(inbox / "seven.png")
    Image.fromarray(mnist_digits[0][2]).save(inbox / "seven.28x28.png")  # an earlier output, classified again
    inputs = [inbox / name for name in ("seven.jpg", "seven.png", "seven.28x28.png")]
    before = {path: path.read_bytes() for path in inputs}
    code, lines, err = predict_json("--out", MNIST_EXPORT, "--save-preprocessed", inbox, *inputs)
    assert code == 0, err
    assert {path: path.read_bytes() for path in inputs} == before
    saved = [Path(item["preprocessed"]) for item in lines]
    assert len(set(saved)) == 3 and not set(saved) & set(inputs) and all(p.parent == inbox for p in saved)
    for path, item in zip(inputs, lines):
        seen = Image.open(item["preprocessed"])
        assert (seen.mode, seen.size) == ("L", (28, 28))
        expected = np.round(preprocess(load_image(path), MNIST) * 255)
        assert np.array_equal(np.asarray(seen, np.float32), expected), path.name
    code, again, err = predict_json("--out", MNIST_EXPORT, *saved)
    assert code == 0, err
    assert [(i["class"], i["probability"]) for i in again] == [(i["class"], i["probability"]) for i in lines]


def test_top_lists_the_best_classes_with_their_names(device_export, confident_digits, tmp_path):
    files = []
    for i, (image, _) in enumerate(confident_digits[:3]):
        np.save(tmp_path / f"{i}.npy", image)
        files.append(tmp_path / f"{i}.npy")
    code, lines, err = predict_json("--out", device_export, "--top", "3", *files)
    assert code == 0, err
    for item, (_, label) in zip(lines, confident_digits):
        top = item["top"]
        probs = [entry["probability"] for entry in top]
        assert len(top) == 3 and len({entry["class"] for entry in top}) == 3 and probs == sorted(probs, reverse=True)
        assert (top[0]["class"], top[0]["label"], top[0]["probability"]) == (label, item["label"], item["probability"])
        assert all(entry["label"] == FASHION.class_names[entry["class"]] for entry in top)
    code, out, err = run_cli(["predict", "--out", str(device_export), "--top", "3", str(files[0])])
    assert code == 0, err
    best = lines[0]["top"]
    assert out.strip() == f"{files[0]}: " + "; ".join(f"{e['label']} (class {e['class']}, p={e['probability']:.3f})"
                                                      for e in best)
    code, lines, err = predict_json("--out", device_export, "--top", "25", files[0])
    assert code == 0 and len(lines[0]["top"]) == FASHION.num_classes


def test_page_edges_and_specks_are_left_out(confident_mnist):
    """A dark table along two edges of the photo and dirt on the page change nothing the model gets."""
    page = np.full((300, 400), 0.85, np.float32)
    page[90:174, 150:234] = ink_on_paper(confident_mnist[4][0])[18:102, 18:102] * 0.85
    messy = page.copy()
    messy[:, :30] = 0.2  # the table beside the sheet
    messy[270:, :] = 0.25
    messy[40:44, 320:324] = 0.1  # a speck far off
    messy[180:182, 240:242] = 0.1  # and one close by
    assert np.abs(preprocess(messy, MNIST) - preprocess(page, MNIST)).max() < 0.05


def test_uneven_light_is_flattened_away(confident_mnist):
    """Light falling off by up to 40% across the sheet gives the input an evenly lit sheet gives."""
    even = np.full((300, 400), 0.85, np.float32)
    even[90:174, 150:234] = ink_on_paper(confident_mnist[4][0])[18:102, 18:102] * 0.85
    light = 1 - 0.4 * np.linspace(0, 1, 400)[None, :] * np.linspace(0.5, 1, 300)[:, None]
    assert np.abs(preprocess(even * light, MNIST) - preprocess(even, MNIST)).max() < 0.05


def test_components_match_a_flood_fill():
    from importlib import import_module

    components = import_module("edge_mnist.predict.preprocess")._components
    rng = np.random.default_rng(0)
    for density in (0.3, 0.5, 0.6):
        mask = rng.random((40, 50)) < density
        labels, count = components(mask)
        expected, expected_count = flood_fill(mask)
        assert count == expected_count
        pairs = set(zip(labels[mask].tolist(), expected[mask].tolist()))
        assert len(pairs) == count and (labels[~mask] == -1).all()  # the same partition


def flood_fill(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components by breadth-first search, the slow obvious way."""
    labels = np.full(mask.shape, -1)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if labels[start] >= 0:
            continue
        labels[start], queue = count, [start]
        while queue:
            y, x = queue.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and labels[ny, nx] < 0:
                        labels[ny, nx] = count
                        queue.append((ny, nx))
        count += 1
    return labels, count


def test_an_empty_page_under_uneven_light_is_blank(tmp_path):
    rng = np.random.default_rng(0)
    page = 230 - 60 * np.linspace(0, 1, 480)[None, :] + rng.normal(0, 6, (360, 480))
    Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).save(tmp_path / "page.jpg", quality=75)
    with pytest.raises(EdgeMnistError, match="page.jpg: no digit or object found"):
        preprocess(load_image(tmp_path / "page.jpg"), MNIST, str(tmp_path / "page.jpg"))


def test_a_large_phone_photo_is_reduced_and_classified(tmp_path, confident_mnist):
    """A 2048x1536 photo (the reduction cap) with a digit 40x its size: the same class as the digit itself."""
    digit, label = confident_mnist[3]
    phone_photo(digit, np.random.default_rng(5), page=(1536, 2048), scale=40).save(tmp_path / "big.jpg", quality=90)
    code, lines, err = predict_json("--out", MNIST_EXPORT, tmp_path / "big.jpg")
    assert code == 0 and lines[0]["class"] == label, (lines, err)
