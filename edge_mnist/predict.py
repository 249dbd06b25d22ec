"""The predict stage: classify photos or scans with an exported model, preprocessed like the training data.

MNIST digits were size-normalized to fit a 20x20 box (aspect ratio kept) and centred by
centre of mass in a 28x28 frame, white on black. A phone photo of a digit on paper is the
opposite (dark on light, off-centre), so we: grayscale, invert a light background, crop to
the ink, fit the task's box (Task.fit_box; Fashion-MNIST items fill the frame), centre by
mass. Needs Pillow and numpy only.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .datasets import Task, task_from_json
from .errors import EdgeMnistError
from .formats import BY_FILE, BY_KEY
from .records import MANIFEST_FILE, Manifest
from .runtime import open_model

DEFAULT_MODEL = BY_KEY["tflite_int8"].file


MAX_PIXELS = 50_000_000  # a 50-megapixel photo; larger images are refused before decoding
MAX_SIDE = 2048  # larger photos are reduced to this before any float arithmetic
BLANK_RANGE = 0.05  # an image whose pixels span less than this (of full scale) holds nothing to classify


def load_image(path: Path) -> np.ndarray:
    """A PNG/JPEG (any mode) or a 2-D .npy array as float32 grayscale in [0, 1]; blank images are refused."""
    path = Path(path)
    if path.is_dir():
        raise EdgeMnistError(f"{path}: is a folder; pass the image files in it")
    if not path.is_file():
        raise EdgeMnistError(f"{path}: image not found")
    img = _load_npy(path) if path.suffix.lower() == ".npy" else _load_picture(path)
    if float(img.max() - img.min()) < BLANK_RANGE:
        raise EdgeMnistError(f"{path}: no digit or object found (blank image)")
    return img


def _load_npy(path: Path) -> np.ndarray:
    """A 2-D numeric .npy in 0..1 or 0..255; the header is checked against the file before data is read."""
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise EdgeMnistError(f"{path}: not a readable .npy array ({str(exc)[:120]})") from exc
    shape = tuple(d for d in arr.shape if d != 1)
    if len(shape) != 2 or min(shape) < 1 or not np.issubdtype(arr.dtype, np.number):
        raise EdgeMnistError(f"{path}: expected a non-empty 2-D numeric image, got shape {arr.shape} {arr.dtype}")
    if arr.size > MAX_PIXELS:
        raise EdgeMnistError(f"{path}: {arr.size} pixels, more than the limit of {MAX_PIXELS}")
    img = np.asarray(arr, dtype=np.float32).reshape(shape)
    if not np.isfinite(img).all():
        raise EdgeMnistError(f"{path}: image contains NaN or infinite values")
    if img.min() < 0 or img.max() > 255:
        raise EdgeMnistError(f"{path}: pixel values span {img.min():.3g}..{img.max():.3g}, expected 0..1 or 0..255")
    return img / 255.0 if img.max() > 1.0 else img


def _load_picture(path: Path) -> np.ndarray:
    """Any Pillow image: size checked before decoding, EXIF rotation applied, alpha composited on white,
    16-bit kept at full depth."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower cap follows
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise EdgeMnistError(f"{path}: {img.width}x{img.height} pixels, more than the limit of {MAX_PIXELS}")
            img.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG decodes at a reduced scale; others ignore it
            img = ImageOps.exif_transpose(img)
            img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            return _grayscale(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise EdgeMnistError(f"{path}: not a readable image ({str(exc)[:120]})") from exc


def _grayscale(img) -> np.ndarray:
    """Pillow image -> float32 gray in [0, 1]: 16- and 32-bit integer modes scaled by their range,
    transparency composited on white paper."""
    from PIL import Image

    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        return arr / (65535.0 if img.mode != "I" or arr.max() <= 65535 else float(arr.max()))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("float image contains NaN or infinite values")
        return np.clip(arr / (255.0 if arr.max() > 1.0 else 1.0), 0, 1)
    if img.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


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
    """Preprocess each file and classify the readable ones in one batch; a file that fails gets an error entry."""
    images, results = [], []
    for path in paths:
        try:
            images.append(preprocess(load_image(path), task, str(path)))
            results.append({"file": str(path)})
        except EdgeMnistError as exc:
            results.append({"file": str(path), "error": str(exc)})
    if images:
        probs = iter(runner.predict(np.stack(images)[..., None]))
        for item in results:
            if "error" not in item:
                pr = next(probs)
                item.update({"class": int(pr.argmax()), "label": task.class_names[int(pr.argmax())],
                             "probability": float(pr.max())})
    return results


def open_for_predict(out: Path, model: Path | None, threads: int = 1) -> tuple[object, Task, bool]:
    """(runner, task, verified). An artifact of DIR's manifest is opened only from verified bytes;
    any other file named by --model runs unverified, with the task from DIR's manifest or the file's own metadata."""
    from .verify import open_artifact

    out = Path(out)
    manifest = Manifest.load(out) if (out / MANIFEST_FILE).is_file() or model is None else None
    path = Path(model) if model else out / DEFAULT_MODEL
    fmt = BY_FILE.get(path.name)
    if manifest and fmt and fmt.key in manifest.artifacts and path.resolve() == (out / fmt.file).resolve():
        return open_artifact(out, manifest, fmt.key, threads), manifest.task, True
    if model is None:
        raise EdgeMnistError(f"{out / MANIFEST_FILE}: lists no {DEFAULT_MODEL}; export with --int8 or pass --model")
    runner = open_model(path, threads)
    task = manifest.task if manifest else _task_from_metadata(runner)
    runner.check_task(task)
    return runner, task, False


def _task_from_metadata(runner) -> Task:
    """The task a model file describes about itself (the metadata edge-mnist writes into every artifact)."""
    import json

    raw = runner.metadata.get("task")
    if raw is None:
        raise EdgeMnistError(f"{runner.path}: the file carries no task description (labels, input shape); "
                             "pass --out with the folder it was exported to")
    try:
        return task_from_json(json.loads(raw), f"{runner.path}: metadata task")
    except ValueError as exc:
        raise EdgeMnistError(f"{runner.path}: metadata task is not valid JSON ({exc})") from exc


def predict(out: Path, images: list[Path], model: Path | None = None, threads: int = 1) -> tuple[list[dict], bool]:
    """Classify image files with an artifact of DIR (default: the PTQ int8 TFLite model) or another model file.

    Returns one entry per file (with "error" for a file that could not be read) and whether the
    model was verified against DIR's manifest.
    """
    runner, task, verified = open_for_predict(out, model, threads)
    return predict_files(runner, [Path(p) for p in images], task), verified
