"""Classify photos or scans with an exported model, preprocessing them the way MNIST was made.

MNIST digits were size-normalized to fit a 20x20 box (aspect ratio kept) and centred by
centre of mass in a 28x28 frame, white on black. A phone photo of a digit on paper is the
opposite (dark on light, off-centre), so we: grayscale, invert a light background, crop to
the ink, fit 20x20 (28x28 for Fashion-MNIST, whose items fill the frame), centre by mass.
Needs Pillow and numpy only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import EdgeMnistError

FIT_BOX = {"mnist": 20, "fashion-mnist": 28}


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


def preprocess(img: np.ndarray, dataset: str = "mnist", source: str = "image") -> np.ndarray:
    """Grayscale float image -> 28x28 white-on-black, cropped, fitted and centred like the training data."""
    if img.shape == (28, 28) and not _light_background(img):
        return img.astype(np.float32)
    if _light_background(img):
        img = 1.0 - img
    img = np.clip(img - np.median(img), 0, None)
    if img.max() <= 0.05:
        raise EdgeMnistError(f"{source}: no digit or object found (blank image)")
    rows, cols = np.nonzero(img > 0.1 * img.max())
    crop = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    box = FIT_BOX.get(dataset, 20)
    scale = box / max(crop.shape)
    fitted = np.clip(_resize(crop, (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))), 0, None)
    canvas = np.zeros((28, 28), np.float32)
    top, left = _placement(fitted, centre_of_mass=box < 28)
    canvas[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return canvas / canvas.max()


def _placement(fitted: np.ndarray, centre_of_mass: bool) -> tuple[int, int]:
    """Top-left offset that puts the centre of mass (or the box centre) at the frame centre."""
    h, w = fitted.shape
    if centre_of_mass:
        ys, xs = np.indices(fitted.shape)
        total = fitted.sum()
        cy, cx = (ys * fitted).sum() / total, (xs * fitted).sum() / total
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    top = int(np.clip(round(13.5 - cy), 0, 28 - h))
    left = int(np.clip(round(13.5 - cx), 0, 28 - w))
    return top, left


def predict_files(runner, paths: list[Path], labels: list[str], dataset: str) -> list[dict]:
    """Preprocess each file and classify them in one batch."""
    batch = np.stack([preprocess(load_image(p), dataset, str(p)) for p in paths])[..., None]
    probs = runner.predict(batch)
    return [{"file": str(p), "class": int(pr.argmax()), "label": labels[int(pr.argmax())] if labels else str(pr.argmax()),
             "probability": float(pr.max())} for p, pr in zip(paths, probs)]
