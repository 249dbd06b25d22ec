"""The dataset registry: each dataset's task spec (input shape, classes, preprocessing) and sources.

Everything downstream (runners, exporters, predict, the gate, the manifest) reads the task
from here or from the copy recorded in manifest.json, never from constants of its own.
Adding a dataset is one `DatasetSpec` entry.
"""
from __future__ import annotations

import unicodedata

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.jsonio import expect

KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@dataclass(frozen=True)
class Task:
    """What a model of this dataset takes and returns; recorded in the manifest and every artifact.

    input_shape is one image (height, width, channels) of pixels scaled to [0, 1];
    fit_box is the side, in pixels, a photo's object is fitted into by `predict` (MNIST
    digits sit in a 20x20 box centred by mass, Fashion-MNIST items fill the frame).
    """

    dataset: str
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    fit_box: int
    pixel_scale: str = "uint8 / 255 -> float32 in [0, 1]"

    @property
    def num_classes(self) -> int:
        """Length of the model's output vector."""
        return len(self.class_names)

    def to_json(self) -> dict:
        """Plain JSON object (tuples as lists)."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["class_names"] = list(self.class_names)
        return data


@dataclass(frozen=True)
class UserData:
    """A user's own dataset as an artifact folder records it: the absolute path it was read from, its fingerprint
    (userdata.fingerprint) and the options that shaped it, so later commands reload exactly that data and refuse
    it once it changed. image_size is the resize asked for (None: none)."""

    path: str
    fingerprint: str
    channels: int
    image_size: tuple[int, int] | None = None

    def to_json(self) -> dict:
        """Plain JSON object (the size as a list or null)."""
        size = None if self.image_size is None else list(self.image_size)
        return {"path": self.path, "fingerprint": self.fingerprint, "channels": self.channels, "image_size": size}


def user_data_from_json(data: object, where: str) -> UserData | None:
    """Rebuild a recorded UserData strictly; None (a registered dataset) stays None."""
    if data is None:
        return None
    obj = expect(data, dict, where)
    channels = expect(obj.get("channels"), int, f"{where}.channels")
    if channels not in (1, 3):
        raise EdgeMnistError(f"{where}.channels: expected 1 or 3, got {channels}")
    size = obj.get("image_size")
    if size is not None:
        size = expect(size, list, f"{where}.image_size")
        if len(size) != 2 or not all(isinstance(d, int) and d > 0 for d in size):
            raise EdgeMnistError(f"{where}.image_size: expected null or two positive integers, got {size}")
    return UserData(expect(obj.get("path"), str, f"{where}.path"), expect(obj.get("fingerprint"), str,
                    f"{where}.fingerprint"), channels, None if size is None else tuple(size))


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its task and where its files come from (names and published sha256)."""

    task: Task
    npz_name: str | None
    sha256: dict[str, str]
    cache_subdir: str = ""
    system_dirs: tuple[Path, ...] = field(default_factory=tuple)
    apt_package: str | None = None
    augment: str = "digits"  # the --augment preset that suits its images (train.AUGMENT_PRESETS)

    @property
    def name(self) -> str:
        """Registry key, the --dataset value."""
        return self.task.dataset


DIGITS = tuple(str(i) for i in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(Task("mnist", (28, 28, 1), DIGITS, fit_box=20), npz_name="mnist.npz",
                sha256={"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"}),
    # Zalando's published files, identical to Debian's dataset-fashion-mnist package.
    DatasetSpec(Task("fashion-mnist", (28, 28, 1), FASHION, fit_box=28), npz_name="fashion-mnist.npz",
                sha256={
                    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                },
                cache_subdir="fashion-mnist", system_dirs=(DEBIAN_FASHION_DIR,), apt_package="dataset-fashion-mnist",
                augment="clothes"),
)}


def get(name: str) -> DatasetSpec:
    """The registered dataset `name`, or a one-line error listing the choices."""
    if name not in DATASETS:
        raise EdgeMnistError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def is_registered(task: Task) -> bool:
    """True for a registered dataset's own task (MNIST-like scans, which `predict` cuts out and fits);
    False for a task of the user's data (whose photos `predict` resizes whole), even one named like them."""
    spec = DATASETS.get(task.dataset)
    return spec is not None and spec.task == task


def label_problem(name: str) -> str | None:
    """Why `name` cannot be a class label, else None; the one rule for class folders, an .npz's class_names
    and the labels a manifest or a model file records. A label is the user's text, carried exactly into C
    strings, HTML, JSON, model metadata and the terminal, so it must be text that every one of them holds
    on one line: not blank, no control characters (a terminal escape, a newline), no line or paragraph
    separators, no lone surrogates (not encodable as UTF-8) and not U+FFFE or U+FFFF (not allowed in XML:
    the JUnit report)."""
    if not name.strip():
        return "a blank name cannot be a label"
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in "\ufffe\uffff" for c in name):
        return "a name with control characters, line breaks or lone surrogates cannot be a label"
    return None


def task_from_json(data: object, where: str) -> Task:
    """Rebuild a Task recorded in a manifest, strictly (a wrong field is a one-line error)."""

    obj = expect(data, dict, where)
    shape = expect(obj.get("input_shape"), list, f"{where}.input_shape")
    names = expect(obj.get("class_names"), list, f"{where}.class_names")
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise EdgeMnistError(f"{where}.input_shape: expected three positive integers, got {shape}")
    if len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise EdgeMnistError(f"{where}.class_names: expected at least two strings")
    bad = next(((n, label_problem(n)) for n in names if label_problem(n)), None)
    if bad:
        raise EdgeMnistError(f"{where}.class_names: {ascii(bad[0])}: {bad[1]}")
    fit_box = expect(obj.get("fit_box"), int, f"{where}.fit_box")
    if not 1 <= fit_box <= min(shape[:2]):
        raise EdgeMnistError(f"{where}.fit_box: {fit_box} does not fit the {shape[0]}x{shape[1]} frame")
    return Task(dataset=expect(obj.get("dataset"), str, f"{where}.dataset"), input_shape=tuple(shape),
                class_names=tuple(names), fit_box=fit_box,
                pixel_scale=expect(obj.get("pixel_scale"), str, f"{where}.pixel_scale"))
