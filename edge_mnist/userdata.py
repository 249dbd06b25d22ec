"""A user's own dataset, an image folder or an .npz, read and checked with numpy and Pillow (no TensorFlow).

An image folder holds train/ and test/ (or val/), one sub-folder per class of PNG, JPEG or BMP files: the layout
of Keras' image_dataset_from_directory and torchvision's ImageFolder. Indexing it reads directories and image
headers only, so a folder of any size is listed, checked and fingerprinted without holding its pixels; load_split
decodes one split, and load_folder leaves the train split as files (FileImages) that training streams. The task
(input shape, class names) is derived from the data. resolve_dataset turns a --dataset value into a Dataset: a
registered name, else a path. Every problem is a one-line EdgeMnistError naming the file. See
docs/your-own-data.md.
"""
from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge_mnist.config import DataConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import sha256_file
from edge_mnist.data import DEFAULT_DATASET, Dataset, load_dataset, read_npz, validate
from edge_mnist.registry import datasets
from edge_mnist.registry.datasets import Task, UserData

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}
TEST_SPLITS = ("test", "val")  # the first one present is the test split
MIN_SIDE, MAX_SIDE = 8, 224
MIN_CLASSES, MAX_CLASSES = 2, 1000
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
ROTATED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageFolder:
    """The index of an image folder: what it holds and the shape its images load as, but not its pixels.

    files maps "train" and "test" to (path relative to root, label) pairs in sorted order; image_shape is
    (height, width, channels) after any resize; resized_to is the image_size asked for, recorded so a later
    command can ask for the same."""

    root: Path
    test_dir: str
    class_names: tuple[str, ...]
    files: dict[str, tuple[tuple[str, int], ...]]
    image_shape: tuple[int, int, int]
    resized_to: tuple[int, int] | None = None

    @property
    def task(self) -> Task:
        """The task the data defines: whole-frame fit box, the usual pixel scale."""
        return Task(dataset_label(self.root), self.image_shape, self.class_names, fit_box=min(self.image_shape[:2]))

    @property
    def record(self) -> UserData:
        """What an artifact folder records of this data (absolute path, fingerprint, channels, resize)."""
        return UserData(str(self.root.resolve()), self.fingerprint(), self.image_shape[2], self.resized_to)

    @property
    def source(self) -> str:
        """Where the data came from, with the resize if one was asked for."""
        if self.resized_to is None:
            return str(self.root)
        return f"{self.root} (resized to {self.resized_to[0]}x{self.resized_to[1]})"

    def fingerprint(self) -> str:
        """sha256 over the class names, the image shape, every train file's path, label and size, and every test
        file's path, label and content.

        The gate's verdict depends on the test pixels, so the test split is hashed by content; the train split
        only by path and size, which is cheap for 100k images and stable across a git clone or a copy (mtimes
        are not, so they are left out)."""
        digest = hashlib.sha256(repr((self.class_names, self.image_shape)).encode())
        for relative, label in self.files["train"]:
            digest.update(f"train\0{relative}\0{label}\0{(self.root / relative).stat().st_size}\n".encode())
        for relative, label in self.files["test"]:
            digest.update(f"test\0{relative}\0{label}\0{sha256_file(self.root / relative)}\n".encode())
        return digest.hexdigest()


def dataset_label(path: Path) -> str:
    """The dataset name of a path: the folder's name or the file's stem (NFC), with ./ in front when it would
    read as a registered dataset."""
    path = Path(path).resolve()
    name = unicodedata.normalize("NFC", path.stem if path.is_file() else path.name)
    return f"./{name}" if name in datasets.DATASETS else name


def class_name(folder: Path) -> str:
    """A class folder's name as its label (NFC), refused when it cannot be one: blank, control characters, or
    bytes that are not text in the file system's encoding."""
    where = f"{folder.parent}: class folder {folder.name!r}"  # the name shown escaped, so the message is one line
    if _undecodable(folder.name):
        raise EdgeMnistError(f"{where}: its name is not valid text in the file system's encoding")
    name = unicodedata.normalize("NFC", folder.name)
    problem = datasets.label_problem(name)
    if problem:
        raise EdgeMnistError(f"{where}: {problem}")
    return name


def _undecodable(name: str) -> bool:
    """True for a name Python decoded with surrogate escapes (its bytes were not valid in the file system's
    encoding)."""
    return any("\udc80" <= c <= "\udcff" for c in name)


def _visible(folder: Path) -> list[Path]:
    """The entries of a folder in sorted order, without hidden ones (.ipynb_checkpoints, .DS_Store, ...)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _class_folders(split: Path) -> dict[str, Path]:
    """A split's class folders by class name; a stray file or two folders with one name are errors."""
    found: dict[str, Path] = {}
    for entry in _visible(split):
        if not entry.is_dir():
            raise EdgeMnistError(f"{entry}: not a class folder (a split holds one sub-folder per class)")
        name = class_name(entry)
        if name in found:
            raise EdgeMnistError(f"{entry}: the same class name as {found[name]} (after Unicode NFC)")
        found[name] = entry
    return found


def _image_files(folder: Path) -> list[Path]:
    """A class folder's image files; anything else in it, and an empty class, are errors."""
    files = []
    for entry in _visible(folder):
        if entry.is_dir() or entry.suffix.lower() not in IMAGE_FORMATS:
            kinds = ", ".join(sorted(IMAGE_FORMATS))
            raise EdgeMnistError(f"{entry}: not an image file ({kinds}) in class folder {folder.name!r}")
        files.append(entry)
    if not files:
        raise EdgeMnistError(f"{folder}: class {folder.name!r} has no images")
    return files


def _split_dirs(root: Path) -> tuple[Path, Path]:
    """The train folder and the test (or val) folder of an image folder."""
    train = root / "train"
    if not train.is_dir():
        raise EdgeMnistError(f"{root}: no train/ folder (an image folder holds train/ and test/ or val/)")
    test = next((root / name for name in TEST_SPLITS if (root / name).is_dir()), None)
    if test is None:
        raise EdgeMnistError(f"{root}: no test/ or val/ folder next to train/")
    return train, test


def check_class_count(count: int, origin: str) -> None:
    """Between two and a thousand classes: one class is no classifier, and the cap keeps the output layer sane."""
    if not MIN_CLASSES <= count <= MAX_CLASSES:
        raise EdgeMnistError(f"{origin}: {count} class{'es' if count != 1 else ''}, "
                             f"expected {MIN_CLASSES} to {MAX_CLASSES}")


def check_sides(height: int, width: int, origin: str) -> None:
    """Image sides from 8 to 224 pixels, the range the models and the int8 runtimes are built for."""
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise EdgeMnistError(f"{origin}: images are {height}x{width} (height x width), expected sides from "
                             f"{MIN_SIDE} to {MAX_SIDE}; pass image_size=(H, W) to resize")


def list_folder(root: Path) -> tuple[Path, tuple[str, ...], dict[str, tuple[tuple[str, int], ...]]]:
    """The test folder, class names (sorted) and each split's (relative path, label) pairs, from directory
    listings alone: every class must hold images in both splits."""
    root = Path(root)
    train, test = _split_dirs(root)
    train_classes, test_classes = _class_folders(train), _class_folders(test)
    names = tuple(sorted(train_classes))
    check_class_count(len(names), str(train))
    extra = sorted(set(test_classes) - set(train_classes))
    if extra:
        raise EdgeMnistError(f"{test_classes[extra[0]]}: class {extra[0]!r} is not in {train}")
    files = {}
    for split, folder, classes in (("train", train, train_classes), ("test", test, test_classes)):
        pairs = []
        for label, name in enumerate(names):
            if name not in classes:
                raise EdgeMnistError(f"{folder / name}: class {name!r} is missing from the {folder.name} split")
            pairs += [(p.relative_to(root).as_posix(), label) for p in _image_files(classes[name])]
        files[split] = tuple(pairs)
    return test, names, files


def _open(path: Path) -> Image.Image:
    """Open an image lazily (header only), as the format its suffix names; unreadable is an error naming it."""
    kind = IMAGE_FORMATS[path.suffix.lower()]
    try:
        return Image.open(path, formats=[kind])
    except UnidentifiedImageError as exc:
        raise EdgeMnistError(f"{path}: not a readable {kind} image") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise EdgeMnistError(f"{path}: cannot read the image ({exc})") from exc


def _upright(image: Image.Image) -> bool:
    """Whether the image needs its EXIF orientation applied: JPEG photos only, whose EXIF sits in the header
    (a PNG's may follow the pixels, and reading it would decode them)."""
    return image.format == "JPEG" and image.getexif().get(EXIF_ORIENTATION, 1) != 1


def _header(path: Path) -> tuple[int, int, bool]:
    """(height, width, is grey) of an image file as it will load (EXIF rotation applied), from its header."""
    with _open(path) as image:
        width, height = image.size
        if _upright(image) and image.getexif()[EXIF_ORIENTATION] in ROTATED:
            width, height = height, width
        return height, width, image.mode in GRAY_MODES


def image_shape(root: Path, relatives: list[str], channels: int | None,
                image_size: tuple[int, int] | None) -> tuple[int, int, int]:
    """The (height, width, channels) every image loads as: one size across the files unless image_size is given;
    one channel if every file is grey, else three, unless channels forces it."""
    if channels not in (None, 1, 3):
        raise EdgeMnistError(f"{root}: channels must be 1 or 3, not {channels}")
    first, grey = None, True
    for relative in relatives:
        height, width, is_grey = _header(root / relative)
        grey = grey and is_grey
        if first is None:
            first = (relative, height, width)
        elif image_size is None and (height, width) != first[1:]:
            raise EdgeMnistError(f"{root / relative}: {height}x{width} pixels (height x width) but {first[0]} is "
                                 f"{first[1]}x{first[2]}; pass image_size=(H, W) to resize them all")
    height, width = image_size if image_size is not None else first[1:]
    check_sides(height, width, str(root))
    return height, width, channels or (1 if grey else 3)


def index_folder(root: Path | str, channels: int | None = None,
                 image_size: tuple[int, int] | None = None) -> ImageFolder:
    """Index an image folder: its classes and files, and the shape its images load as (headers read, pixels not)."""
    root = Path(root)
    size = tuple(int(s) for s in image_size) if image_size is not None else None
    test, names, files = list_folder(root)
    shape = image_shape(root, [r for split in ("train", "test") for r, _ in files[split]], channels, size)
    return ImageFolder(root, test.name, names, files, shape, size)


def decode(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file as uint8 pixels of `shape` ((H, W) for one channel): a JPEG's EXIF rotation applied,
    converted to grey or RGB (alpha dropped), resized bilinearly only when its size differs."""
    height, width, channels = shape
    with _open(path) as image:
        try:
            image.load()
            image = (ImageOps.exif_transpose(image) if _upright(image) else image).convert(
                "L" if channels == 1 else "RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise EdgeMnistError(f"{path}: cannot decode the image ({exc})") from exc
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


class FileImages:
    """A split of an image folder left as files, standing in for the uint8 array load_split would give.

    It has the array's len(), shape, ndim and dtype, and indexing (an int, a slice, an index array, then any
    further axes) decodes only the files indexed, so a 100k-image train split costs its file list in memory:
    calibration's 500 images and `len(dataset.x_train)` work as on an array, and training reads it batch by
    batch (edge_mnist.train.make_pipeline). `failure` keeps the first decode error, so training can report it
    as the one-line error it is after TensorFlow has wrapped it in its own (train.fit)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, root: Path, relatives: tuple[str, ...], image_shape: tuple[int, int, int]):
        self.root, self.relatives, self.image_shape = Path(root), tuple(relatives), image_shape
        self.failure: EdgeMnistError | None = None

    def __len__(self) -> int:
        return len(self.relatives)

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, H, W) for one channel, (N, H, W, C) for more: the layout of Dataset's arrays."""
        height, width, channels = self.image_shape
        return (len(self), height, width) + ((channels,) if channels > 1 else ())

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        """The indexed images decoded: the first index picks files, the rest applies to their pixels."""
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if first is Ellipsis:
            first, rest = slice(None), (Ellipsis, *rest)
        chosen = np.arange(len(self))[first]
        if np.ndim(chosen) == 0:
            return self.read([int(chosen)])[(0, *rest)]
        return self.read(chosen)[(slice(None), *rest)]

    def read(self, indices) -> np.ndarray:
        """The images at `indices` decoded into one uint8 array (userdata.decode, file by file)."""
        out = np.empty((len(indices),) + self.shape[1:], np.uint8)
        try:
            for i, index in enumerate(indices):
                out[i] = decode(self.root / self.relatives[index], self.image_shape)
        except EdgeMnistError as exc:
            self.failure = self.failure or exc
            raise
        return out


def split_files(folder: ImageFolder, split: str) -> tuple[FileImages, np.ndarray]:
    """One split of an indexed folder as files (nothing decoded) and its int64 labels."""
    pairs = folder.files[split]
    return (FileImages(folder.root, tuple(r for r, _ in pairs), folder.image_shape),
            np.array([label for _, label in pairs], np.int64))


def load_split(folder: ImageFolder, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split ("train" or "test") of an indexed folder: uint8 images and int64 labels."""
    images, labels = split_files(folder, split)
    return images.read(range(len(images))), labels


def load_folder(root: Path | str, channels: int | None = None,
                image_size: tuple[int, int] | None = None) -> Dataset:
    """An image folder as a Dataset: the test split decoded (the gate needs its pixels, and it is usually
    small), the train split streamed from its files (FileImages), whatever the folder's size: one code path,
    and memory that does not grow with the train split. docs/your-own-data.md."""
    folder = index_folder(root, channels, image_size)
    arrays = {}
    arrays["x_train"], arrays["y_train"] = split_files(folder, "train")
    arrays["x_test"], arrays["y_test"] = load_split(folder, "test")
    return Dataset(task=folder.task, source=folder.source, user_data=folder.record,
                   **validate(arrays, folder.source, folder.task))


def _npz_images(x: np.ndarray, key: str, origin: str) -> np.ndarray:
    """An npz image array checked for NaN, dtype and shape; (N, H, W, 1) becomes (N, H, W)."""
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        raise EdgeMnistError(f"{origin}: {key} contains NaN; expected uint8 pixels")
    if x.dtype != np.uint8:
        raise EdgeMnistError(f"{origin}: {key} has dtype {x.dtype}, expected uint8 pixels")
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
        raise EdgeMnistError(f"{origin}: {key} has shape {x.shape}, expected (N, H, W) or (N, H, W, C) with C 1 or 3")
    return x[..., 0] if x.ndim == 4 and x.shape[3] == 1 else x


def _npz_labels(y: np.ndarray, key: str, origin: str) -> np.ndarray:
    """An npz label array checked for shape and integer type (its range is checked against the task later)."""
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise EdgeMnistError(f"{origin}: {key} has shape {y.shape} and dtype {y.dtype}, expected (N,) integers")
    return y


def _npz_class_names(arrays: dict[str, np.ndarray], origin: str) -> tuple[str, ...]:
    """The npz's class_names (NFC, each a valid label), else "0", "1", ... up to the largest label."""
    if "class_names" not in arrays:
        top = max((int(arrays[k].max()) for k in ("y_train", "y_test") if arrays[k].size), default=-1)
        return tuple(str(i) for i in range(top + 1))
    names = arrays["class_names"]
    if names.ndim != 1 or names.dtype.kind != "U":
        raise EdgeMnistError(f"{origin}: class_names has shape {names.shape} and dtype {names.dtype}, "
                             "expected a 1-D array of strings")
    out = tuple(unicodedata.normalize("NFC", str(n)) for n in names)
    bad = next(((n, datasets.label_problem(n)) for n in out if datasets.label_problem(n)), None)
    if bad:
        raise EdgeMnistError(f"{origin}: class name {ascii(bad[0])}: {bad[1]}")
    if len(set(out)) != len(out):
        raise EdgeMnistError(f"{origin}: class_names repeats a name")
    return out


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Images as one channel ((N, H, W); ITU-R 601 luma, as Pillow's convert("L")) or three ((N, H, W, 3))."""
    if channels == 1 and x.ndim == 4:
        weighted = x[..., 0] * np.uint32(19595) + x[..., 1] * np.uint32(38470) + x[..., 2] * np.uint32(7471)
        return ((weighted + 0x8000) >> 16).astype(np.uint8)
    if channels == 3 and x.ndim == 3:
        return np.repeat(x[..., None], 3, axis=3)
    return x


def check_coverage(y_train: np.ndarray, y_test: np.ndarray, names: tuple[str, ...], origin: str) -> None:
    """Every class has train images and test images: a class the test split lacks cannot be gated."""
    for split, y in (("train", y_train), ("test", y_test)):
        present = np.bincount(y.astype(np.int64), minlength=len(names))
        empty = np.flatnonzero(present == 0)
        if empty.size:
            label = int(empty[0])
            raise EdgeMnistError(f"{origin}: class {names[label]!r} (label {label}) has no {split} images")


def load_npz(path: Path | str, channels: int | None = None) -> Dataset:
    """A user's .npz (x_train, y_train, x_test, y_test; optional class_names) as a Dataset."""
    path = Path(path)
    origin = str(path)
    arrays = read_npz(path, optional=("class_names",))
    for key in ("x_train", "x_test"):
        arrays[key] = _npz_images(arrays[key], key, origin)
    for key in ("y_train", "y_test"):
        arrays[key] = _npz_labels(arrays[key], key, origin)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise EdgeMnistError(f"{origin}: x_train images are {arrays['x_train'].shape[1:]} but x_test's are "
                             f"{arrays['x_test'].shape[1:]}")
    if channels not in (None, 1, 3):
        raise EdgeMnistError(f"{origin}: channels must be 1 or 3, not {channels}")
    channels = channels or (3 if arrays["x_train"].ndim == 4 else 1)
    for key in ("x_train", "x_test"):
        arrays[key] = to_channels(arrays[key], channels)
    names = _npz_class_names(arrays, origin)
    check_class_count(len(names), origin)
    height, width = arrays["x_train"].shape[1:3]
    check_sides(height, width, origin)
    task = Task(dataset_label(path), (height, width, channels), names, fit_box=min(height, width))
    checked = validate(arrays, origin, task)
    check_coverage(checked["y_train"], checked["y_test"], names, origin)
    record = UserData(str(path.resolve()), sha256_file(path), channels)
    return Dataset(task=task, source=origin, user_data=record, **checked)


def fingerprint(path: Path | str, channels: int | None = None, image_size: tuple[int, int] | None = None) -> str:
    """The cheap identity of a user's dataset: an .npz's sha256, or an image folder's index fingerprint."""
    path = Path(path)
    return sha256_file(path) if path.is_file() else index_folder(path, channels, image_size).fingerprint()


def looks_like_path(value: str) -> bool:
    """A value with a separator, a leading dot or an .npz suffix was meant as a path, not a registered name."""
    return os.sep in value or "/" in value or value.startswith(".") or value.lower().endswith(".npz")


def resolve_dataset(value: str, data_dir: Path | None = None, channels: int | None = None,
                    image_size: tuple[int, int] | None = None) -> Dataset:
    """A --dataset value as a Dataset: a registered name first (write ./mnist for a folder called mnist), else
    an existing image folder or .npz. channels and image_size apply to a user's data only."""
    if value in datasets.DATASETS:
        if channels is not None or image_size is not None:
            raise EdgeMnistError(f"{value}: channels and image_size apply to your own data, not a registered dataset")
        return load_dataset(value, data_dir)
    path = Path(value)
    if path.is_dir() or path.is_file():
        return load_path(path, channels, image_size)
    if looks_like_path(value):
        raise EdgeMnistError(f"{value}: no such file or folder")
    raise EdgeMnistError(f"unknown dataset {value!r}; choose one of {', '.join(datasets.DATASETS)}, "
                         "or give the path of an image folder or .npz")


def load_data(config: DataConfig) -> Dataset:
    """The dataset a command trains on or imports a model for: --dataset (default: mnist) as resolve_dataset
    reads it, with --data-dir, --channels and --image-size."""
    return resolve_dataset(config.dataset or DEFAULT_DATASET, config.data_dir, config.channels, config.image_size)


def load_path(path: Path, channels: int | None = None, image_size: tuple[int, int] | None = None) -> Dataset:
    """An existing image folder or .npz as a Dataset (its record attached)."""
    if path.is_dir():
        return load_folder(path, channels, image_size)
    if path.suffix.lower() != ".npz":
        raise EdgeMnistError(f"{path}: neither an .npz file nor an image folder")
    if image_size is not None:
        raise EdgeMnistError(f"{path}: image_size applies to image folders; resize the .npz arrays instead")
    return load_npz(path, channels)


def load_for_folder(out: Path, requested: str | None, data_dir: Path | None,
                    records: tuple[str | None, UserData | None]) -> Dataset:
    """The artifact folder's own dataset, by what DIR records of it (`records`: its name and, for a user's data,
    its record; folder.opener reads them): a registered one by name (asking for another is an error naming both),
    or a user's data reloaded from its record, from `requested` when that is the path it moved to; data whose
    fingerprint differs from the record is refused."""
    recorded, record = records
    if record is None:
        if recorded and requested and recorded != requested:
            raise EdgeMnistError(f"{out}: the folder was trained on {recorded}, not {requested}; "
                                 f"leave --dataset out or pass --dataset {recorded}")
        return resolve_dataset(requested or recorded or DEFAULT_DATASET, data_dir)
    path = _recorded_path(out, recorded, record, requested)
    data = load_path(path, record.channels, record.image_size)
    if data.user_data.fingerprint != record.fingerprint:
        raise EdgeMnistError(f"{path}: the data changed since {out} recorded it (fingerprint "
                             f"{record.fingerprint[:12]}..., now {data.user_data.fingerprint[:12]}...); restore it, "
                             "pass --dataset PATH of the recorded data, or train again")
    return replace(data, task=replace(data.task, dataset=recorded))


def _recorded_path(out: Path, recorded: str, record: UserData, requested: str | None) -> Path:
    """Where to read a folder's recorded user data: the recorded path, or `requested` when it names existing data
    (moved there); a registered name or a missing path is an error."""
    if requested is None:
        path = Path(record.path)
        if not path.exists():
            raise EdgeMnistError(f"{path}: the data {out} was trained on is not there; pass --dataset PATH where it "
                                 "moved")
        return path
    if requested in datasets.DATASETS or not Path(requested).exists():
        raise EdgeMnistError(f"{out}: the folder was trained on {record.path}, not {requested}; leave --dataset out "
                             "or pass the path the data moved to")
    return Path(requested)
