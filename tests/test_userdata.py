"""userdata.py: a user's image folder or .npz read back with the pixels, labels and class names written, on real
images (scikit-learn's 8x8 digits, Fashion-MNIST from Debian's package), and every kind of bad data refused in
one line that names the file."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.userdata_scale import safe_names, tinted
from edge_mnist import data, userdata
from edge_mnist.config import DataConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.folder.opener import read_folder
from edge_mnist.registry.datasets import DEBIAN_FASHION_DIR, FASHION, UserData


def write_folder(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], names, suffix=".png") -> Path:
    """An image folder: root/<split>/<class name>/<index>.<suffix>, one file per image."""
    for split, (x, y) in splits.items():
        for i, (image, label) in enumerate(zip(x, y)):
            folder = root / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}{suffix}")
    return root


def folder_order(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrays in the order an image folder lists them: by class, then by file name (the original index)."""
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


def save_npz(path: Path, **arrays) -> Path:
    """An .npz of the given arrays."""
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 handwritten digits as uint8 (0..16 scaled to 0..255), split 1,500 / 297."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    return {"x_train": images[:1500], "y_train": labels[:1500], "x_test": images[1500:], "y_test": labels[1500:]}


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory, digits) -> Path:
    """The digits written as a PNG image folder with class folders "0".."9"."""
    root = tmp_path_factory.mktemp("sets") / "digits"
    splits = {"train": (digits["x_train"], digits["y_train"]), "test": (digits["x_test"], digits["y_test"])}
    return write_folder(root, splits, [str(i) for i in range(10)])


@pytest.fixture(scope="module")
def fashion_subset() -> dict[str, np.ndarray]:
    """200 train and 100 test images of real Fashion-MNIST, read the IDX route, stratified so every class is in."""
    if not DEBIAN_FASHION_DIR.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    full = data.load_dataset("fashion-mnist", DEBIAN_FASHION_DIR)
    train, test = data.stratified_indices(full.y_train, 200), data.stratified_indices(full.y_test, 100)
    return {"x_train": full.x_train[train], "y_train": full.y_train[train].astype(np.int64),
            "x_test": full.x_test[test], "y_test": full.y_test[test].astype(np.int64)}


def small_folder(root: Path, digits, classes=3, train=4, test=2) -> Path:
    """A few real digits per class as an image folder: the base the bad-data cases break."""
    splits = {}
    for split, count in (("train", train), ("test", test)):
        x, y = digits[f"x_{split}"], digits[f"y_{split}"]
        picked = np.concatenate([np.flatnonzero(y == c)[:count] for c in range(classes)])
        splits[split] = (x[picked], y[picked])
    return write_folder(root, splits, [str(i) for i in range(classes)])


def refused(load, *args, names: Path | str, **kwargs) -> str:
    """The error message of a load that must fail: one line, naming `names`."""
    with pytest.raises(EdgeMnistError) as info:
        load(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert str(names) in message, message
    return message


# --- reading back what was written -------------------------------------------------------------------------

def test_digits_image_folder_round_trip(digits, digits_folder):
    ds = userdata.load_folder(digits_folder)
    for split in ("train", "test"):
        x, y = folder_order(digits[f"x_{split}"], digits[f"y_{split}"])
        np.testing.assert_array_equal(getattr(ds, f"x_{split}")[:], x)
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), y)
    assert ds.task.input_shape == (8, 8, 1) and ds.task.fit_box == 8
    assert ds.task.class_names == tuple(str(i) for i in range(10))
    assert ds.name == "digits" and ds.source == str(digits_folder)


def test_digits_npz_round_trip_with_and_without_class_names(digits, tmp_path):
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    ds = userdata.load_npz(save_npz(tmp_path / "digits.npz", **digits, class_names=names))
    for key, array in digits.items():
        np.testing.assert_array_equal(getattr(ds, key), array)
    assert ds.task.class_names == tuple(names) and ds.task.input_shape == (8, 8, 1) and ds.name == "digits"
    plain = userdata.load_npz(save_npz(tmp_path / "plain.npz", **digits))
    assert plain.task.class_names == tuple(str(i) for i in range(10))


def test_npz_with_a_channel_axis_of_one_holds_the_usual_layout(digits, tmp_path):
    arrays = {k: (v[..., None] if k.startswith("x") else v) for k, v in digits.items()}
    ds = userdata.load_npz(save_npz(tmp_path / "d.npz", **arrays))
    assert ds.x_train.shape == (1500, 8, 8)
    np.testing.assert_array_equal(ds.x_test, digits["x_test"])


def test_fashion_mnist_as_an_image_folder_matches_the_idx_route(fashion_subset, tmp_path):
    names = safe_names(FASHION)
    splits = {s: (fashion_subset[f"x_{s}"], fashion_subset[f"y_{s}"]) for s in ("train", "test")}
    ds = userdata.load_folder(write_folder(tmp_path / "fashion", splits, names))
    assert ds.task.class_names == tuple(names) and ds.task.input_shape == (28, 28, 1)
    for split in ("train", "test"):
        x, y = folder_order(fashion_subset[f"x_{split}"], fashion_subset[f"y_{split}"])
        np.testing.assert_array_equal(getattr(ds, f"x_{split}")[:], x)
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), y)


@pytest.mark.tf
@pytest.mark.slow
def test_fashion_mnist_as_an_image_folder_trains_the_same_model_as_the_idx_route(fashion_full, tmp_path):
    """3,000 train and 1,000 test images of real Fashion-MNIST written as PNG class folders give, for one seed,
    the very model (every weight equal) the IDX route's arrays give in the same order: the folder's train split
    streamed from its files (FileImages) against the arrays gathered in memory. The order is the folder's (by
    class, then file name), since class folders cannot hold the IDX file's interleaved order."""
    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.registry.datasets import get
    from edge_mnist.train import TrainConfig, train

    picked = {s: data.stratified_indices(fashion_full[f"y_{s}"], n) for s, n in (("train", 3000), ("test", 1000))}
    splits = {s: (fashion_full[f"x_{s}"][i], fashion_full[f"y_{s}"][i].astype(np.int64)) for s, i in picked.items()}
    folder = userdata.load_folder(write_folder(tmp_path / "fashion", splits, safe_names(FASHION)))
    assert isinstance(folder.x_train, userdata.FileImages)
    ordered = {s: folder_order(*splits[s]) for s in splits}
    idx_route = data.Dataset(get("fashion-mnist").task, *ordered["train"], *ordered["test"], source="IDX")
    np.testing.assert_array_equal(folder.x_test, idx_route.x_test)
    config = TrainConfig(epochs=1, architecture="compact", seed=3)
    weights = []
    for name, dataset in (("folder", folder), ("idx", idx_route)):
        history = train(dataset, tmp_path / name, config)
        weights.append(load_keras(tmp_path / name / "model_float32.keras", history["keras_sha256"]).get_weights())
    assert len(weights[0]) == len(weights[1]) > 0
    for from_folder, from_idx in zip(*weights):
        np.testing.assert_array_equal(from_folder, from_idx)


def test_colour_images_are_read_as_three_channels(fashion_subset, tmp_path):
    """A plumbing test: real items, artificially tinted, prove the three-channel path keeps every pixel (the
    colours carry no meaning)."""
    splits = {s: (tinted(fashion_subset[f"x_{s}"], fashion_subset[f"y_{s}"]), fashion_subset[f"y_{s}"])
              for s in ("train", "test")}
    root = write_folder(tmp_path / "tinted", splits, safe_names(FASHION))
    ds = userdata.load_folder(root)
    assert ds.task.input_shape == (32, 32, 3) and ds.task.fit_box == 32
    x, y = folder_order(*splits["test"])
    np.testing.assert_array_equal(ds.x_test, x)
    np.testing.assert_array_equal(ds.y_test, y)
    assert data.to_float(ds.x_test[:2]).shape == (2, 32, 32, 3)
    grey = userdata.load_folder(root, channels=1)
    assert grey.task.input_shape == (32, 32, 1)
    np.testing.assert_array_equal(grey.x_test, userdata.to_channels(x, 1))
    npz = userdata.load_npz(save_npz(tmp_path / "tinted.npz", x_train=splits["train"][0], y_train=splits["train"][1],
                                     x_test=splits["test"][0], y_test=splits["test"][1]))
    assert npz.task.input_shape == (32, 32, 3)
    np.testing.assert_array_equal(npz.x_test, splits["test"][0])


def test_grey_images_can_be_read_as_three_channels(digits, tmp_path):
    ds = userdata.load_folder(small_folder(tmp_path / "d", digits), channels=3)
    assert ds.x_train.shape[1:] == (8, 8, 3)
    np.testing.assert_array_equal(ds.x_train[..., 0], ds.x_train[..., 2])


def test_bmp_is_lossless_and_jpeg_is_read(digits, tmp_path):
    x, y = digits["x_train"][:40], digits["y_train"][:40]
    splits = {"train": (x, y), "test": (x, y)}
    bmp = userdata.load_folder(write_folder(tmp_path / "bmp", splits, [str(i) for i in range(10)], ".bmp"))
    np.testing.assert_array_equal(bmp.x_train[:], folder_order(x, y)[0])
    jpeg = userdata.load_folder(write_folder(tmp_path / "jpeg", splits, [str(i) for i in range(10)], ".jpg"))
    assert jpeg.x_train.shape == (40, 8, 8)


def test_image_size_resizes_mixed_sizes_and_is_recorded(digits, tmp_path):
    root = small_folder(tmp_path / "mixed", digits)
    Image.fromarray(digits["x_train"][0]).resize((12, 10)).save(root / "train" / "0" / "big.png")
    refused(userdata.load_folder, root, names=root / "train" / "0")
    ds = userdata.load_folder(root, image_size=(16, 16))
    assert ds.task.input_shape == (16, 16, 1) and "resized to 16x16" in ds.source
    assert userdata.index_folder(root, image_size=(16, 16)).resized_to == (16, 16)


def test_class_names_are_the_users_text(digits, tmp_path):
    names = ["men's shoes", unicodedata.normalize("NFD", "café"), "猫", "кошка"]
    x, y = digits["x_train"][:40], digits["y_train"][:40] % 4
    ds = userdata.load_folder(write_folder(tmp_path / "u", {"train": (x, y), "test": (x, y)}, names))
    assert ds.task.class_names == tuple(sorted(unicodedata.normalize("NFC", n) for n in names))
    assert "café" in ds.task.class_names


def test_hidden_entries_are_skipped(digits, tmp_path):
    root = small_folder(tmp_path / "h", digits)
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / "1" / ".DS_Store").write_bytes(b"\0junk")
    (root / "test" / "2" / ".hidden.png").write_text("not an image")
    assert userdata.load_folder(root).task.class_names == ("0", "1", "2")


def test_val_serves_as_the_test_split(digits, tmp_path):
    root = small_folder(tmp_path / "v", digits)
    (root / "test").rename(root / "val")
    folder = userdata.index_folder(root)
    assert folder.test_dir == "val" and len(folder.files["test"]) == 6


def test_the_train_split_stays_files_decoded_only_where_indexed(digits, digits_folder):
    ds = userdata.load_folder(digits_folder)
    x, _ = folder_order(digits["x_train"], digits["y_train"])
    files = ds.x_train
    assert isinstance(files, userdata.FileImages) and isinstance(ds.x_test, np.ndarray)
    assert len(files) == 1500 and files.shape == (1500, 8, 8) and files.ndim == 3 and files.dtype == np.uint8
    picked = np.array([7, 0, 1499, 300])
    np.testing.assert_array_equal(files[picked], x[picked])
    np.testing.assert_array_equal(files[5], x[5])
    np.testing.assert_array_equal(files[10:13, 2:4], x[10:13, 2:4])
    np.testing.assert_array_equal(files[..., 3], x[..., 3])
    assert data.to_float(files[picked]).shape == (4, 8, 8, 1)


def test_a_train_file_that_cannot_be_decoded_is_named_and_kept(digits, tmp_path):
    root = small_folder(tmp_path / "c", digits)
    broken = root / "train" / "1" / "00005.png"
    whole = broken.read_bytes()
    broken.write_bytes(whole[:whole.index(b"IDAT") + 8])  # the header (size, mode) intact, the pixels cut off
    ds = userdata.load_folder(root)  # indexing reads headers only: the damage shows when the file is read
    assert ds.x_train[0].shape == (8, 8) and ds.x_train.failure is None
    message = refused(ds.x_train.__getitem__, slice(None), names=broken)
    assert "cannot decode" in message and str(ds.x_train.failure) == message


def test_index_lists_without_decoding(digits, tmp_path):
    root = small_folder(tmp_path / "i", digits)
    folder = userdata.index_folder(root)
    assert folder.files["train"][0] == ("train/0/00000.png", 0) and len(folder.files["train"]) == 12
    x, y = userdata.load_split(folder, "test")
    assert x.shape == (6, 8, 8) and list(y) == [0, 0, 1, 1, 2, 2]


def test_fingerprint_ignores_mtimes_and_sees_test_pixels_and_train_files(digits, tmp_path):
    root = small_folder(tmp_path / "f", digits)
    before = userdata.fingerprint(root)
    os.utime(root / "train" / "0" / "00000.png", (0, 0))
    os.utime(root / "test" / "0" / "00000.png", (0, 0))
    assert userdata.fingerprint(root) == before
    test_file = root / "test" / "1" / "00002.png"
    image = np.asarray(Image.open(test_file)).copy()
    image[0, 0] ^= 1
    Image.fromarray(image).save(test_file)
    changed = userdata.fingerprint(root)
    assert changed != before
    (root / "train" / "2" / "00008.png").rename(root / "train" / "2" / "99999.png")
    assert userdata.fingerprint(root) != changed


def test_npz_fingerprint_is_its_sha256(digits, tmp_path):
    path = save_npz(tmp_path / "d.npz", **digits)
    assert userdata.fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- resolving a --dataset value ---------------------------------------------------------------------------

def test_resolve_dataset_paths_and_names(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_folder(tmp_path / "mnist", digits)
    ds = userdata.resolve_dataset("./mnist")
    assert ds.name == "./mnist" and ds.task.num_classes == 3
    save_npz(tmp_path / "d.npz", **digits)
    assert userdata.resolve_dataset("d.npz").name == "d"
    refused(userdata.resolve_dataset, "missing/folder", names="missing/folder")
    assert "image folder or .npz" in refused(userdata.resolve_dataset, "nonsense", names="nonsense")
    refused(userdata.resolve_dataset, "mnist", channels=3, names="mnist")
    refused(userdata.resolve_dataset, "d.npz", image_size=(16, 16), names="d.npz")
    (tmp_path / "notes.txt").write_text("hello")
    refused(userdata.resolve_dataset, "notes.txt", names="notes.txt")


def test_resolve_dataset_names_a_registered_dataset(fashion_subset):
    assert userdata.resolve_dataset("fashion-mnist", DEBIAN_FASHION_DIR).name == "fashion-mnist"


def test_the_user_data_reader_imports_no_tensorflow():
    code = "import sys, edge_mnist.userdata; sys.exit('tensorflow' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


# --- bad image folders ---------------------------------------------------------------------------------------

def truncated_png(root: Path) -> Path:
    path = root / "train" / "1" / "00005.png"
    path.write_bytes(path.read_bytes()[:40])
    return path


def truncated_pixels(root: Path) -> Path:
    """A real photo-sized PNG cut in the middle of its pixel data: the header reads, decoding fails."""
    path = root / "test" / "0" / "00000.png"
    noise = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:-30])
    return path


def text_as_png(root: Path) -> Path:
    path = root / "test" / "2" / "notes.png"
    path.write_text("this is not a picture\n")
    return path


def gif_as_png(root: Path) -> Path:
    path = root / "train" / "0" / "anim.png"
    Image.new("L", (8, 8)).save(path, format="GIF")
    return path


def mixed_sizes(root: Path) -> Path:
    path = root / "test" / "1" / "wide.png"
    Image.new("L", (9, 8)).save(path)
    return path


def empty_class(root: Path) -> Path:
    folder = root / "train" / "2"
    for file in folder.iterdir():
        file.unlink()
    return folder


def missing_from_test(root: Path) -> Path:
    for file in (root / "test" / "1").iterdir():
        file.unlink()
    (root / "test" / "1").rmdir()
    return root / "test" / "1"


def only_in_test(root: Path) -> Path:
    folder = root / "test" / "7"
    folder.mkdir()
    (root / "test" / "0" / "00000.png").rename(folder / "00000.png")
    return folder


def single_class(root: Path) -> Path:
    for split in ("train", "test"):
        for name in ("1", "2"):
            for file in (root / split / name).iterdir():
                file.unlink()
            (root / split / name).rmdir()
    return root / "train"


def renamed_class(new_name: str):
    """A case renaming class folder "2" in both splits to `new_name`."""
    def rename(root: Path) -> Path:
        (root / "test" / "2").rename(root / "test" / new_name)
        (root / "train" / "2").rename(root / "train" / new_name)
        return root / "train" / new_name
    rename.__name__ = f"class_named_{new_name!r}"
    return rename


def stray_file(root: Path) -> Path:
    path = root / "train" / "README.txt"
    path.write_text("my data")
    return path


def not_an_image_suffix(root: Path) -> Path:
    path = root / "train" / "0" / "photo.webp"
    path.write_bytes(b"RIFF")
    return path


def no_test_split(root: Path) -> Path:
    (root / "test").rename(root / "holdout")
    return root


CONTROL = "a name with control characters, line breaks or lone surrogates cannot be a label"


BAD_FOLDERS = [  # (how the folder is broken, the message of the rule that must refuse it)
    (truncated_png, "not a readable PNG image"),
    (truncated_pixels, "cannot decode the image (image file is truncated)"),
    (text_as_png, "not a readable PNG image"),
    (gif_as_png, "not a readable PNG image"),
    (mixed_sizes, "8x9 pixels (height x width) but train/0/00000.png is 8x8; pass image_size=(H, W) to resize them all"),
    (empty_class, "class '2' has no images"),
    (missing_from_test, "class '1' is missing from the test split"),
    (only_in_test, "class '7' is not in {root}/train"),
    (single_class, "1 class, expected 2 to 1000"),
    (renamed_class(" "), "class folder ' ': a blank name cannot be a label"),
    (renamed_class("a\x01b"), f"class folder 'a\\x01b': {CONTROL}"),
    (renamed_class("line\nbreak"), f"class folder 'line\\nbreak': {CONTROL}"),
    (stray_file, "not a class folder (a split holds one sub-folder per class)"),
    (not_an_image_suffix, "not an image file (.bmp, .jpeg, .jpg, .png) in class folder '0'"),
    (no_test_split, "no test/ or val/ folder next to train/"),
]


@pytest.mark.parametrize("breakage, rule", BAD_FOLDERS, ids=[breakage.__name__ for breakage, _ in BAD_FOLDERS])
def test_a_bad_image_folder_is_one_line_naming_the_file(digits, tmp_path, breakage, rule):
    """Each breakage is refused by its own rule, in one line that starts with the file or folder at fault."""
    root = small_folder(tmp_path / "bad", digits)
    culprit = breakage(root)
    if breakage.__name__.startswith("class_named"):
        culprit = culprit.parent  # a control character is shown escaped; the split folder is named as text
    assert refused(userdata.load_folder, root, names=culprit) == f"{culprit}: {rule.format(root=root)}"


def test_undecodable_class_folder_name_is_refused(digits, tmp_path):
    root = small_folder(tmp_path / "b", digits)
    for split in ("train", "test"):
        os.rename(os.fsencode(root / split / "2"), os.fsencode(root / split) + b"/\xff")
    refused(userdata.load_folder, root, names=root / "train")


def test_two_class_folders_equal_after_nfc_are_refused(digits, tmp_path):
    root = small_folder(tmp_path / "n", digits)
    for split in ("train", "test"):
        (root / split / "1").rename(root / split / unicodedata.normalize("NFC", "café"))
        (root / split / "2").rename(root / split / unicodedata.normalize("NFD", "café"))
    assert "after Unicode NFC" in refused(userdata.load_folder, root, names=root / "train")


def test_out_of_range_sides_and_channels_are_refused(digits, tmp_path):
    root = small_folder(tmp_path / "s", digits)
    refused(userdata.load_folder, root, image_size=(4, 4), names=root)
    refused(userdata.load_folder, root, image_size=(300, 8), names=root)
    refused(userdata.load_folder, root, channels=2, names=root)


# --- bad .npz files ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype float32"),
    (lambda a: a.update(x_test=np.where(a["x_test"] > 0, np.nan, 0.0)), "NaN"),
    (lambda a: a.update(x_train=np.stack([a["x_train"]] * 2, axis=-1)), "C 1 or 3"),
    (lambda a: a.update(x_test=a["x_test"][:, :7]), "x_test's are"),
    (lambda a: a.pop("y_test"), "missing arrays"),
    (lambda a: a.update(y_train=a["y_train"].astype(np.float64)), "expected \\(N,\\) integers"),
    (lambda a: a.update(y_train=a["y_train"] * 0, y_test=a["y_test"] * 0), "1 class,"),
    (lambda a: a.update(class_names=np.array(["a", "b", "c"])), "labels span"),
    (lambda a: a.update(class_names=np.array([str(i) for i in range(11)])), "'10' \\(label 10\\) has no train"),
    (lambda a: a.update(y_test=np.minimum(a["y_test"], 8)), "'9' \\(label 9\\) has no test"),
    (lambda a: a.update(class_names=np.array(["x"] * 10)), "repeats"),
    (lambda a: a.update(class_names=np.array(["ok"] * 9 + ["bad\tname"])), "control characters"),
    (lambda a: a.update(x_train=a["x_train"][:, :4, :4], x_test=a["x_test"][:, :4, :4]), "sides from 8 to 224"),
    (lambda a: a.update(y_test=a["y_test"][:-1]), "297 test images but 296 labels"),
])
def test_a_bad_npz_is_one_line_naming_the_file(digits, tmp_path, mutate, message):
    arrays = dict(digits)
    mutate(arrays)
    path = save_npz(tmp_path / "bad.npz", **arrays)
    assert pytest.raises(EdgeMnistError, userdata.load_npz, path).match(message)
    refused(userdata.load_npz, path, names=path)


def test_a_file_that_is_no_npz_is_refused(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK but not really")
    refused(userdata.load_npz, path, names=path)


def test_a_jpeg_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "p" / split / name).mkdir(parents=True)
            exif = Image.Exif()
            exif[0x0112] = 6  # rotated 90 degrees: stored 16 wide and 8 high, shown 8 wide and 16 high
            Image.new("L", (16, 8), 128).save(tmp_path / "p" / split / name / "1.jpg", exif=exif)
    ds = userdata.load_folder(tmp_path / "p")
    assert ds.task.input_shape == (16, 8, 1) and ds.x_test.shape == (2, 16, 8)


# --- an artifact folder's record of the data, and reloading it -------------------------------------------

def record_folder(out: Path, data: data.Dataset) -> Path:
    """An artifact folder holding only the history.json training would write for `data`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps({"config": {"architecture": "mlp"}, **data.history_fields()}))
    return out


def test_a_users_data_carries_its_record(digits, digits_folder, tmp_path):
    ds = userdata.resolve_dataset(str(digits_folder))
    index = userdata.index_folder(digits_folder)
    assert ds.user_data == UserData(str(digits_folder.resolve()), index.fingerprint(), 1, None)
    npz = save_npz(tmp_path / "d.npz", **digits)
    assert userdata.resolve_dataset(str(npz), channels=3).user_data.channels == 3
    registered = data.Dataset(ds.task, ds.x_train, ds.y_train, ds.x_test, ds.y_test, "somewhere")
    assert list(registered.history_fields()) == ["dataset", "task", "dataset_source"]  # as before user data


def folder_data(out, dataset, data_dir):
    """The dataset an artifact folder records, as every stage reloads it (folder.opener)."""
    return read_folder(out, DataConfig(dataset, data_dir), exported=False).dataset


def test_the_folder_reloads_its_recorded_data(digits_folder, tmp_path):
    ds = userdata.resolve_dataset(str(digits_folder))
    out = record_folder(tmp_path / "out", ds)
    again = folder_data(out, None, None)
    assert again.user_data == ds.user_data
    assert again.task == ds.task and again.test_fingerprint() == ds.test_fingerprint()


def test_moved_data_is_found_by_its_new_path_and_keeps_its_name(digits_folder, tmp_path):
    ds = userdata.resolve_dataset(str(digits_folder))
    out = record_folder(tmp_path / "out", ds)
    moved = shutil.copytree(digits_folder, tmp_path / "elsewhere")
    again = folder_data(out, str(moved), None)
    assert again.name == ds.name and again.test_fingerprint() == ds.test_fingerprint()
    refused(folder_data, out, "mnist", None, names="trained on")
    refused(folder_data, out, str(tmp_path / "nothing"), None, names=tmp_path / "nothing")


def test_changed_or_missing_data_is_refused_in_one_line(digits_folder, tmp_path):
    moved = shutil.copytree(digits_folder, tmp_path / "copy")
    out = record_folder(tmp_path / "out", userdata.resolve_dataset(str(moved)))
    changed = next((moved / "test" / "3").iterdir())
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(changed)
    assert "the data changed" in refused(folder_data, out, None, None, names=moved)
    shutil.rmtree(moved)
    assert "is not there" in refused(folder_data, out, None, None, names=moved)


def test_a_registered_folder_keeps_its_message(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.json").write_text(json.dumps({"dataset": "fashion-mnist"}))
    message = refused(folder_data, out, "mnist", None, names=out)
    assert message == (f"{out}: the folder was trained on fashion-mnist, not mnist; leave --dataset out or pass "
                       "--dataset fashion-mnist")

