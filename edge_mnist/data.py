"""Read and validate a registered dataset's files with numpy only (no TensorFlow).

Sources are tried in order: --data-dir (an .npz in Keras' layout, or the four IDX .gz
files), the Keras cache, system folders such as Debian's dataset-fashion-mnist package,
then a download whose sha256 is verified. Shapes and label ranges come from the dataset's
task spec (datasets.py). Every problem is a one-line EdgeMnistError naming the file.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.registry import datasets
from edge_mnist.registry.datasets import KERAS_BASE_URL, DatasetSpec, Task, UserData

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


@dataclass
class Dataset:
    """Images as uint8 (N, H, W) for one channel or (N, H, W, 3) for colour, labels as uint8 (N,) (uint16 past
    256 classes), the task they belong to, and where they came from (user_data: a user's own dataset's record).

    An image folder's x_train is a userdata.FileImages: the files, read when indexed or streamed by training."""

    task: Task
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    user_data: UserData | None = None

    @property
    def name(self) -> str:
        """The registry name of the dataset."""
        return self.task.dataset

    def test_fingerprint(self) -> str:
        """sha256 of the test images and labels, so results can be tied to the data they used."""
        digest = hashlib.sha256(self.x_test.tobytes())
        digest.update(self.y_test.tobytes())
        return digest.hexdigest()

    def history_fields(self) -> dict:
        """What history.json records of the data a model was trained on or imported for (user_data only for a
        user's own dataset, so the records of registered ones are unchanged)."""
        fields = {"dataset": self.name, "task": self.task.to_json(), "dataset_source": self.source}
        return fields if self.user_data is None else {**fields, "user_data": self.user_data.to_json()}


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, H, W, C) in [0, 1], the models' input convention."""
    scaled = images.astype(np.float32) / 255.0
    return scaled[..., None] if scaled.ndim == 3 else scaled


def stratified_indices(labels: np.ndarray, n: int) -> np.ndarray | None:
    """Sorted indices of `n` test images stratified by class, or None for the whole test set (n = 0 or n at
    least its size): an equal share per class where the classes allow (a class with fewer images gives all
    of them and the others share the rest; a remainder goes one each to the lowest classes), and within a
    class its first images in test-set order. Deterministic, so bench and check pick the same images and a
    slow runtime's accuracy is comparable with the reference's on exactly those."""
    if n < 0:
        raise EdgeMnistError(f"the number of test images must be 0 (all) or more, not {n}")
    if n == 0 or n >= len(labels):
        return None
    classes, counts = np.unique(labels, return_counts=True)
    take = np.zeros_like(counts)
    while take.sum() < n:
        room = np.flatnonzero(take < counts)
        need = n - int(take.sum())
        share = need // len(room)
        if share:
            take[room] = np.minimum(counts[room], take[room] + share)
        else:
            take[room[:need]] += 1
    picked = [np.flatnonzero(labels == c)[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def keras_cache_dir() -> Path:
    """Keras' dataset cache (KERAS_HOME or ~/.keras)/datasets."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


MAX_IDX_BYTES = 256 << 20  # 256 MB of pixels: 5x the MNIST training images; more is refused before reading


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse a gzipped (or raw) IDX file of unsigned bytes, checking magic, dims and length.

    The header's counts are checked against the size cap before the data is read, and no more
    than the header promises (plus one byte, to detect extra data) is ever decompressed, so a
    small .gz that expands to gigabytes costs nothing.
    """
    path = Path(path)
    header_size = 4 + 4 * expected_ndim
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            header = handle.read(header_size)
            dims = _idx_dims(path, header, expected_ndim)
            size = int(np.prod(dims, dtype=np.int64))
            raw = handle.read(size + 1)
    except FileNotFoundError as exc:
        raise EdgeMnistError(f"{path}: file not found") from exc
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise EdgeMnistError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) != size:
        raise EdgeMnistError(f"{path}: IDX header says {dims} but the file holds "
                             f"{'more' if len(raw) > size else len(raw)} bytes of data")
    return np.frombuffer(raw, np.uint8).reshape(dims)


def _idx_dims(path: Path, header: bytes, expected_ndim: int) -> list[int]:
    """The dimensions an IDX header declares, refused when the magic is wrong or the data would exceed the cap."""
    if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] != 0x08 or header[3] != expected_ndim:
        raise EdgeMnistError(
            f"{path}: bad IDX magic number {header[:4].hex() or 'empty'} "
            f"(expected 000008{expected_ndim:02x}: unsigned bytes, {expected_ndim} dims)"
        )
    if len(header) < 4 + 4 * expected_ndim:
        raise EdgeMnistError(f"{path}: IDX header is truncated")
    dims = [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_ndim)]
    if int(np.prod(dims, dtype=np.int64)) > MAX_IDX_BYTES:
        raise EdgeMnistError(f"{path}: IDX header declares {dims}, more than the {MAX_IDX_BYTES >> 20} MB limit")
    return dims


def read_npz(path: Path, optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read mnist.npz in Keras' layout (x_train, y_train, x_test, y_test, and those of `optional` it holds);
    members over the size cap are refused from the zip directory, before anything is decompressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            too_big = [i.filename for i in archive.infolist() if i.file_size > MAX_IDX_BYTES]
        if too_big:
            raise EdgeMnistError(f"{path}: {', '.join(too_big)} would expand beyond the {MAX_IDX_BYTES >> 20} MB limit")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_FILES if k not in npz.files]
            if missing:
                raise EdgeMnistError(f"{path}: missing arrays {missing} (expected Keras' mnist.npz layout)")
            return {k: npz[k] for k in (*IDX_FILES, *optional) if k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise EdgeMnistError(f"{path}: not a readable .npz file ({exc})") from exc


def read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    """Read the four IDX .gz files of one dataset from a folder."""
    return {key: read_idx(folder / name, 3 if key.startswith("x") else 1) for key, name in IDX_FILES.items()}


def validate(arrays: dict[str, np.ndarray], origin: str, task: Task) -> dict[str, np.ndarray]:
    """Check shapes, dtypes, counts and label range against the task; return uint8 copies or raise naming `origin`.

    One channel is held as (N, H, W), the layout every caller has always had; three as (N, H, W, 3)."""
    out = {}
    height, width, channels = task.input_shape
    image = (height, width) if channels == 1 else (height, width, channels)
    label_type = np.uint8 if task.num_classes <= 256 else np.uint16
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[1:] != image:
            raise EdgeMnistError(f"{origin}: x_{split} has shape {x.shape}, expected (N, {', '.join(map(str, image))})")
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
        if y.min() < 0 or y.max() >= task.num_classes:
            raise EdgeMnistError(f"{origin}: y_{split} labels span {y.min()}..{y.max()}, "
                                 f"expected 0..{task.num_classes - 1}")
        # an array is copied contiguous; an image folder's train split left as files (userdata.FileImages) as is
        out[f"x_{split}"] = np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x
        out[f"y_{split}"] = y.astype(label_type)
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


def _candidate_dirs(spec: DatasetSpec, data_dir: Path | None) -> list[Path]:
    """Folders to look in, in priority order."""
    if data_dir is not None:
        return [Path(data_dir)]
    return [keras_cache_dir() / spec.cache_subdir, *spec.system_dirs]


def _read_local(folder: Path, spec: DatasetSpec) -> tuple[dict[str, np.ndarray], str] | None:
    """Read the dataset from a folder if it holds its .npz or the four IDX files."""
    npz = folder / spec.npz_name if spec.npz_name else None
    if npz is not None and npz.is_file():
        return read_npz(npz), str(npz)
    if any((folder / f).exists() for f in IDX_FILES.values()):
        return read_idx_dir(folder), str(folder)
    return None


def _download(spec: DatasetSpec, base_url: str) -> tuple[dict[str, np.ndarray], str]:
    """Fetch the dataset's published files into the Keras cache (sha256-verified) and read it."""
    cache = keras_cache_dir() / spec.cache_subdir
    for filename, digest in spec.sha256.items():
        if not (cache / filename).is_file():
            download_verified(base_url + filename, cache / filename, digest)
    found = _read_local(cache, spec)
    if found is None:
        raise EdgeMnistError(f"{cache}: download finished but the dataset files are not there")
    return found


def load_dataset(name: str = "mnist", data_dir: Path | str | None = None,
                 download: bool = True, base_url: str | None = None) -> Dataset:
    """Load and validate a registered dataset from the first source that has it."""
    spec = datasets.get(name)
    data_dir = Path(data_dir) if data_dir is not None else None
    if data_dir is not None and not data_dir.is_dir():
        raise EdgeMnistError(f"{data_dir}: --data-dir is not a folder")
    for folder in _candidate_dirs(spec, data_dir):
        found = _read_local(folder, spec)
        if found is not None:
            arrays, origin = found
            return Dataset(task=spec.task, source=origin, **validate(arrays, origin, spec.task))
    if data_dir is not None:
        raise EdgeMnistError(f"{data_dir}: holds neither {spec.npz_name} nor the four IDX .gz files "
                             f"({', '.join(IDX_FILES.values())})")
    if not download:
        raise EdgeMnistError(_remedies(spec, "downloads are disabled"))
    base_url = base_url or os.environ.get("EDGE_MNIST_DATA_URL", KERAS_BASE_URL)
    try:
        arrays, origin = _download(spec, base_url)
    except EdgeMnistError as exc:
        raise EdgeMnistError(f"{exc}; {_remedies(spec, 'no local copy')}") from exc
    return Dataset(task=spec.task, source=origin, **validate(arrays, origin, spec.task))


def _remedies(spec: DatasetSpec, why: str) -> str:
    """One line telling the user how to make the dataset available offline."""
    files = f"{spec.npz_name} or the four IDX .gz files" if spec.npz_name else "the four IDX .gz files"
    tips = [f"pass --data-dir DIR holding {files}", f"put them in {keras_cache_dir() / spec.cache_subdir}"]
    if spec.apt_package:
        tips.append(f"apt-get install {spec.apt_package}")
    else:
        offline = [s for s in datasets.DATASETS.values() if s.apt_package]
        tips += [f"or use --dataset {s.name} (apt-get install {s.apt_package})" for s in offline]
    return f"{spec.name} unavailable ({why}): " + "; ".join(tips)


DEFAULT_DATASET = "mnist"
