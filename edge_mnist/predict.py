"""The predict stage: classify photos or scans with an exported model, preprocessed like the training data.

MNIST digits were size-normalized to fit a 20x20 box (aspect ratio kept) and centred by
centre of mass in a 28x28 frame, white on black. A phone photo of a digit on paper is the
opposite (dark on light, off-centre), so we: grayscale, invert a light background, crop to
the ink, fit the task's box (Task.fit_box; Fashion-MNIST items fill the frame), centre by
mass. Needs Pillow and numpy only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import Task
from .errors import EdgeMnistError
from .formats import BY_FILE, BY_KEY
from .records import Manifest
from .runtime import open_model

DEFAULT_MODEL = BY_KEY["tflite_int8"].file


def load_image(path: Path) -> np.ndarray:
    """A PNG/JPEG (any mode) or a 2-D .npy array as float32 grayscale in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise EdgeMnistError(f"{path}: image not found")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise EdgeMnistError(f"{path}: not a readable .npy array ({exc})") from exc
        arr = np.squeeze(arr)
        if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number)):
            raise EdgeMnistError(f"{path}: expected a 2-D numeric image, got shape {arr.shape} {arr.dtype}")
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise EdgeMnistError(f"{path}: image contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 255:
            raise EdgeMnistError(f"{path}: pixel values span {arr.min():.3g}..{arr.max():.3g}, expected 0..1 or 0..255")
        return arr / 255.0 if arr.max() > 1.0 else arr
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgeMnistError(f"{path}: not a readable image ({exc})") from exc


def _light_background(img: np.ndarray) -> bool:
    """True when the border is brighter than mid-grey: dark ink on paper."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return float(np.median(border)) > 0.5


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of a float image (Pillow, 32-bit float mode)."""
    from PIL import Image

    return np.asarray(Image.fromarray(img, mode="F").resize((shape[1], shape[0]), Image.Resampling.LANCZOS))


def preprocess(img: np.ndarray, task: Task, source: str = "image") -> np.ndarray:
    """Grayscale float image -> the task's frame, white on black, cropped, fitted and centred like the training data."""
    height, width = task.input_shape[:2]
    if img.shape == (height, width) and not _light_background(img):
        return img.astype(np.float32)
    if _light_background(img):
        img = 1.0 - img
    img = np.clip(img - np.median(img), 0, None)
    if img.max() <= 0.05:
        raise EdgeMnistError(f"{source}: no digit or object found (blank image)")
    rows, cols = np.nonzero(img > 0.1 * img.max())
    crop = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = task.fit_box / max(crop.shape)
    fitted = np.clip(_resize(crop, (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))), 0, None)
    canvas = np.zeros((height, width), np.float32)
    top, left = _placement(fitted, (height, width), centre_of_mass=task.fit_box < min(height, width))
    canvas[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return canvas / canvas.max()


def _placement(fitted: np.ndarray, frame: tuple[int, int], centre_of_mass: bool) -> tuple[int, int]:
    """Top-left offset that puts the centre of mass (or the box centre) at the frame centre."""
    h, w = fitted.shape
    if centre_of_mass:
        ys, xs = np.indices(fitted.shape)
        total = fitted.sum()
        cy, cx = (ys * fitted).sum() / total, (xs * fitted).sum() / total
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    top = int(np.clip(round((frame[0] - 1) / 2 - cy), 0, frame[0] - h))
    left = int(np.clip(round((frame[1] - 1) / 2 - cx), 0, frame[1] - w))
    return top, left


def predict_files(runner, paths: list[Path], task: Task) -> list[dict]:
    """Preprocess each file and classify them in one batch."""
    batch = np.stack([preprocess(load_image(p), task, str(p)) for p in paths])[..., None]
    probs = runner.predict(batch)
    return [{"file": str(p), "class": int(pr.argmax()), "label": task.class_names[int(pr.argmax())],
             "probability": float(pr.max())} for p, pr in zip(paths, probs)]


def predict(out: Path, images: list[Path], model: Path | None = None, threads: int = 1) -> list[dict]:
    """Classify image files with an artifact of DIR (default: the PTQ int8 TFLite model).

    An artifact of DIR is run only when its sha256 still matches the manifest.
    """
    out = Path(out)
    manifest = Manifest.load(out)
    model = Path(model) if model else out / DEFAULT_MODEL
    fmt = BY_FILE.get(model.name)
    if model.parent.resolve() == out.resolve() and fmt is not None and fmt.key in manifest.artifacts:
        manifest.path_of(out, fmt.key)
    runner = open_model(model, threads, task=manifest.task)
    return predict_files(runner, [Path(p) for p in images], manifest.task)
