"""Load and validate MNIST / Fashion-MNIST with numpy only (no TensorFlow).

Sources are tried in order: --data-dir (mnist.npz in Keras' layout, or the four IDX .gz
files), the Keras cache, Debian's dataset-fashion-mnist package, then a download whose
sha256 is verified. Every problem is a one-line EdgeMnistError naming the file.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgeMnistError
from .files import atomic_write_bytes

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
EXPECTED_COUNTS = {"train": 60000, "test": 10000}
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# sha256 of the published files: mnist.npz as Keras verifies it; Fashion-MNIST's four files
# as published by Zalando (identical to Debian's dataset-fashion-mnist package).
SHA256 = {
    "mnist": {"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"},
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
}
LABELS = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
DATASETS = tuple(SHA256)


@dataclass
class Dataset:
    """Images as uint8 (N, 28, 28), labels as uint8 (N,), plus where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def labels(self) -> list[str]:
        """Human-readable class names."""
        return LABELS[self.name]

    def test_fingerprint(self) -> str:
        """sha256 of the test images and labels, so results can be tied to the data they used."""
        digest = hashlib.sha256(self.x_test.tobytes())
        digest.update(self.y_test.tobytes())
        return digest.hexdigest()


def encode_labels(values: np.ndarray) -> str:
    """Class indices 0..9 as a compact digit string (10,000 predictions = 10 kB of JSON)."""
    return "".join(map(str, np.asarray(values, dtype=np.uint8).tolist()))


def decode_labels(text: str, where: str) -> np.ndarray:
    """Inverse of encode_labels, with a one-line error for anything but digits."""
    if not isinstance(text, str) or not text.isdigit():
        raise EdgeMnistError(f"{where}: predictions/labels must be a non-empty string of digits 0-9")
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], the models' input convention."""
    return (images.astype(np.float32) / 255.0)[..., None]


def keras_cache_dir() -> Path:
    """Keras' dataset cache (KERAS_HOME or ~/.keras)/datasets."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse a gzipped (or raw) IDX file of unsigned bytes, checking magic, dims and length."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError as exc:
        raise EdgeMnistError(f"{path}: file not found") from exc
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise EdgeMnistError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expected_ndim:
        raise EdgeMnistError(
            f"{path}: bad IDX magic number {raw[:4].hex() or 'empty'} "
            f"(expected 000008{expected_ndim:02x}: unsigned bytes, {expected_ndim} dims)"
        )
    header = 4 + 4 * expected_ndim
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise EdgeMnistError(f"{path}: IDX header says {dims} but holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read mnist.npz in Keras' layout (x_train, y_train, x_test, y_test)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_FILES if k not in npz.files]
            if missing:
                raise EdgeMnistError(f"{path}: missing arrays {missing} (expected Keras' mnist.npz layout)")
            return {k: npz[k] for k in IDX_FILES}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise EdgeMnistError(f"{path}: not a readable .npz file ({exc})") from exc


def read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    """Read the four IDX .gz files of one dataset from a folder."""
    return {key: read_idx(folder / name, 3 if key.startswith("x") else 1) for key, name in IDX_FILES.items()}


def validate(arrays: dict[str, np.ndarray], origin: str) -> dict[str, np.ndarray]:
    """Check shapes, dtypes, counts and label range; return uint8 copies or raise naming `origin`."""
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise EdgeMnistError(f"{origin}: x_{split} has shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1:
            raise EdgeMnistError(f"{origin}: y_{split} has shape {y.shape}, expected (N,)")
        if len(x) != len(y):
            raise EdgeMnistError(f"{origin}: {len(x)} {split} images but {len(y)} labels")
        if len(x) == 0:
            raise EdgeMnistError(f"{origin}: the {split} split is empty")
        if x.dtype != np.uint8:
            raise EdgeMnistError(f"{origin}: x_{split} has dtype {x.dtype}, expected uint8 pixels")
        if not np.issubdtype(y.dtype, np.integer):
            raise EdgeMnistError(f"{origin}: y_{split} has dtype {y.dtype}, expected integer labels")
        if y.min() < 0 or y.max() >= NUM_CLASSES:
            raise EdgeMnistError(f"{origin}: y_{split} labels span {y.min()}..{y.max()}, expected 0..9")
        out[f"x_{split}"], out[f"y_{split}"] = np.ascontiguousarray(x), y.astype(np.uint8)
    return out


def download_verified(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download url to dest, verify its sha256, and only then move it into place."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EdgeMnistError(f"{url}: download failed ({getattr(exc, 'reason', exc)})") from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        raise EdgeMnistError(f"{url}: sha256 mismatch (got {actual[:16]}…, expected {sha256[:16]}…); file not saved")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, payload)
    return dest


def _candidate_dirs(name: str, data_dir: Path | None) -> list[Path]:
    """Folders to look in, in priority order."""
    if data_dir is not None:
        return [Path(data_dir)]
    cache = keras_cache_dir()
    return [cache] if name == "mnist" else [cache / "fashion-mnist", DEBIAN_FASHION_DIR]


def _read_local(folder: Path, name: str) -> tuple[dict[str, np.ndarray], str] | None:
    """Read the dataset from a folder if it holds mnist.npz or the four IDX files."""
    npz = folder / f"{name}.npz"
    if npz.is_file():
        return read_npz(npz), str(npz)
    if any((folder / f).exists() for f in IDX_FILES.values()):
        return read_idx_dir(folder), str(folder)
    return None


def _download(name: str, base_url: str) -> tuple[dict[str, np.ndarray], str]:
    """Fetch the dataset into the Keras cache (sha256-verified) and read it."""
    cache = keras_cache_dir() if name == "mnist" else keras_cache_dir() / name
    for filename, digest in SHA256[name].items():
        if not (cache / filename).is_file():
            download_verified(base_url + filename, cache / filename, digest)
    found = _read_local(cache, name)
    assert found is not None
    return found


def load_dataset(name: str = "mnist", data_dir: Path | str | None = None,
                 download: bool = True, base_url: str | None = None) -> Dataset:
    """Load and validate a dataset from the first source that has it."""
    if name not in SHA256:
        raise EdgeMnistError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    data_dir = Path(data_dir) if data_dir is not None else None
    if data_dir is not None and not data_dir.is_dir():
        raise EdgeMnistError(f"{data_dir}: --data-dir is not a folder")
    for folder in _candidate_dirs(name, data_dir):
        found = _read_local(folder, name)
        if found is not None:
            arrays, origin = found
            return Dataset(name=name, source=origin, **validate(arrays, origin))
    if data_dir is not None:
        raise EdgeMnistError(f"{data_dir}: holds neither mnist.npz nor the four IDX .gz files ({', '.join(IDX_FILES.values())})")
    if not download:
        raise EdgeMnistError(_remedies(name, "downloads are disabled"))
    base_url = base_url or os.environ.get("EDGE_MNIST_DATA_URL", KERAS_BASE_URL)
    try:
        arrays, origin = _download(name, base_url)
    except EdgeMnistError as exc:
        raise EdgeMnistError(f"{exc}; {_remedies(name, 'no local copy')}") from exc
    return Dataset(name=name, source=origin, **validate(arrays, origin))


def _remedies(name: str, why: str) -> str:
    """One line telling the user how to make the dataset available offline."""
    tips = [f"pass --data-dir DIR holding {'mnist.npz or ' if name == 'mnist' else ''}the four IDX .gz files",
            f"put them in {keras_cache_dir() if name == 'mnist' else keras_cache_dir() / name}"]
    if name == "fashion-mnist":
        tips.append("apt-get install dataset-fashion-mnist")
    else:
        tips.append("or use --dataset fashion-mnist (apt-get install dataset-fashion-mnist)")
    return f"{name} unavailable ({why}): " + "; ".join(tips)
