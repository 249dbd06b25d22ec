"""A photo or scan -> the model's input, preprocessed like the training data.

MNIST digits were size-normalized to fit a 20x20 box (aspect ratio kept) and centred by
centre of mass in a 28x28 frame, white on black. A phone photo of a digit on paper is the
opposite (dark on light, off-centre, unevenly lit, noisy), so we: grayscale, invert a light
background, subtract the paper's own brightness (a quadratic surface fitted to the paper),
threshold with Otsu, keep the object's connected components (no specks, no page edges), and
fit what is left, as flattened ink intensity rather than a mask, into the task's box
(Task.fit_box; Fashion-MNIST items fill the frame), centred by mass. Images already in the
training format are used as they are. Needs Pillow and numpy only; a 2048-pixel photo takes
well under a second.

That is for the registered scans (MNIST, Fashion-MNIST: white objects on black, cut out and fitted).
A task of the user's own data (edge_mnist.userdata) was trained on whole images, each resized to the
frame as the reader resizes them: a photo for it is resized whole (bilinear, aspect not kept), in
colour when the task takes three channels (a grey photo's one channel repeated, as the reader
does), in ITU-R 601 luma when it takes one; nothing is inverted or cut.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.datasets import Task, is_registered

MAX_PIXELS = 50_000_000  # a 50-megapixel photo; larger images are refused before decoding
MAX_SIDE = 2048  # larger photos are reduced to this before any float arithmetic
BLANK_RANGE = 0.05  # an image whose pixels span less than this (of full scale) holds nothing to classify
WORK_SIDE = 768  # photos are reduced to this for thresholding and labelling: the frame is 28 pixels
SURFACE_SIDE = 64  # the background surface is fitted on a copy this small: lighting varies slowly
SURFACE_ROUNDS = (3, 3, 6)  # terms fitted per round (plane, plane, quadratic), each without the last round's ink
STATS_SAMPLE = 50_000  # medians and percentiles are taken over at most this many evenly spaced pixels
NOISE_FLOOR = 4  # paper-noise deviations above the paper that a threshold between ink and paper must exceed
MIN_CONTRAST_TO_NOISE = 8  # ink must stand this many paper-noise deviations above the paper: an empty page is blank
INK_PERCENTILE = 90  # the ink level that becomes 1.0 (MNIST strokes are saturated, 255, at their core)
PART_FRACTION = 0.02  # another component is a stroke of the object if at least this much of its area...
NEAR_FRACTION = 0.3  # ...and no further from it than this much of its size


def load_image(path: Path, channels: int = 1) -> np.ndarray:
    """A PNG/JPEG (any mode) or a .npy array as float32 in [0, 1]: (H, W) grey for `channels` 1, (H, W, 3)
    RGB for 3 (grey repeated); blank images are refused."""
    path = Path(path)
    if path.is_dir():
        raise EdgeMnistError(f"{path}: is a folder; pass the image files in it" if folder_images(path) else
                             f"{path}: folder holds no image files ({' '.join(IMAGE_SUFFIXES)})")
    if not path.is_file():
        raise EdgeMnistError(f"{path}: no file matches the pattern" if is_pattern(str(path)) else
                             f"{path}: image not found")
    img = _load_npy(path, channels) if path.suffix.lower() == ".npy" else _load_picture(path, channels)
    if float(img.max() - img.min()) < BLANK_RANGE:
        raise EdgeMnistError(f"{path}: no digit or object found (blank image)")
    return img


def _load_npy(path: Path, channels: int = 1) -> np.ndarray:
    """A 2-D (grey) or H x W x 3 (RGB) numeric .npy in 0..1 or 0..255, as `channels`; the header is checked
    against the file before data is read."""
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise EdgeMnistError(f"{path}: not a readable .npy array ({str(exc)[:120]})") from exc
    shape = tuple(d for d in arr.shape if d != 1)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)) or min(shape) < 1 \
            or not np.issubdtype(arr.dtype, np.number):
        raise EdgeMnistError(f"{path}: expected a non-empty 2-D (or H x W x 3) numeric image, "
                             f"got shape {arr.shape} {arr.dtype}")
    if arr.size > MAX_PIXELS:
        raise EdgeMnistError(f"{path}: {arr.size} pixels, more than the limit of {MAX_PIXELS}")
    img = np.asarray(arr, dtype=np.float32).reshape(shape)
    if not np.isfinite(img).all():
        raise EdgeMnistError(f"{path}: image contains NaN or infinite values")
    if img.min() < 0 or img.max() > 255:
        raise EdgeMnistError(f"{path}: pixel values span {img.min():.3g}..{img.max():.3g}, expected 0..1 or 0..255")
    return to_channels(img / 255.0 if img.max() > 1.0 else img, channels)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """A float image (H, W) or (H, W, 3) as `channels` 1 (ITU-R 601 luma, Pillow's convert("L") weights) or 3
    (grey repeated), as userdata.to_channels converts the training images."""
    if channels == 1 and img.ndim == 3:
        return (img @ np.array([19595, 38470, 7471], np.float32) / 65536).astype(np.float32)
    if channels == 3 and img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return img


def _load_picture(path: Path, channels: int = 1) -> np.ndarray:
    """Any Pillow image: size checked before decoding, EXIF rotation applied, alpha composited on white,
    16-bit kept at full depth (grey); RGB for `channels` 3."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower cap follows
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise EdgeMnistError(f"{path}: {img.width}x{img.height} pixels, more than the limit of {MAX_PIXELS}")
            img.draft("L" if channels == 1 else "RGB", (MAX_SIDE, MAX_SIDE))  # JPEG decodes at a reduced scale
            img = ImageOps.exif_transpose(img)
            img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            if channels == 3 and img.mode not in GREY_MODES:
                return _rgb(img)
            return to_channels(_grayscale(img), channels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise EdgeMnistError(f"{path}: not a readable image ({str(exc)[:120]})") from exc


def _grayscale(img) -> np.ndarray:
    """Pillow image -> float32 gray in [0, 1]: 16- and 32-bit integer modes scaled by their range,
    transparency composited on white paper."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float32)
        return arr / (65535.0 if img.mode != "I" or arr.max() <= 65535 else float(arr.max()))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("float image contains NaN or infinite values")
        return np.clip(arr / (255.0 if arr.max() > 1.0 else 1.0), 0, 1)
    return np.asarray(_on_white(img).convert("L"), dtype=np.float32) / 255.0


def _on_white(img):
    """A Pillow image with transparency composited on white paper (one without, as it is)."""
    from PIL import Image

    if img.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img


GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # read as grey, then repeated


def _rgb(img) -> np.ndarray:
    """Pillow colour image -> float32 RGB in [0, 1], transparency composited on white paper."""
    return np.asarray(_on_white(img).convert("RGB"), dtype=np.float32) / 255.0


def _light_background(img: np.ndarray, task: Task) -> bool:
    """True for dark ink on light paper: the image's extremes reach further below its background than
    above it. The background is the image's median for a task whose objects are thin strokes (ink is
    a minority of any photo of a digit, whatever the page edges do), and the border's for a task
    whose objects fill the frame. Extremes rather than the middle of the range, which a lighting
    gradient across the page moves as much as a small digit does."""
    sample = _thin(img)
    low, high = np.percentile(sample, [0.1, 99.9])
    fills_frame = task.fit_box >= min(task.input_shape[:2])
    background = float(np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]) if fills_frame else sample))
    return background - low > high - background


def _thin(values: np.ndarray) -> np.ndarray:
    """An evenly spaced sample of at most STATS_SAMPLE values, for medians and percentiles."""
    flat = values.ravel()
    return flat[::max(1, flat.size // STATS_SAMPLE)]


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of a float image (Pillow, 32-bit float mode, so any float array is made float32)."""
    from PIL import Image

    img = np.ascontiguousarray(img, np.float32)
    return np.asarray(Image.fromarray(img, mode="F").resize((shape[1], shape[0]), Image.Resampling.LANCZOS))


def _shrink(img: np.ndarray, side: int) -> np.ndarray:
    """The image reduced so its longer side is at most `side` (never enlarged)."""
    scale = side / max(img.shape)
    if scale >= 1:
        return img
    return _resize(img, (max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale))))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold (the split of a 256-bin histogram with the largest between-class variance);
    where a range of splits ties (a gap between ink and paper), the middle of that range."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return high
    counts, edges = np.histogram(values, 256, (low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weighted = counts * centres
    below = np.cumsum(counts)[:-1].astype(np.float64)
    above = counts.sum() - below
    mass_below = np.cumsum(weighted)[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.nan_to_num(below * above * (mass_below / below - (weighted.sum() - mass_below) / above) ** 2)
    best = np.flatnonzero(spread >= spread.max() * (1 - 1e-9))
    return float(edges[(best[0] + best[-1]) // 2 + 1])


def _ink_threshold(flat: np.ndarray, noise: float) -> float:
    """Otsu's threshold of the flattened image; when the object is so small a part of the image that
    Otsu splits the paper's noise instead (it lands under NOISE_FLOOR noise deviations above the
    paper below it), Otsu's threshold of the pixels above that floor."""
    threshold = _otsu(flat)
    floor = _median(flat[flat <= threshold]) + NOISE_FLOOR * noise
    if threshold >= floor:
        return threshold
    above = flat[flat > floor]
    return _otsu(above) if above.size else floor


def _median(values: np.ndarray) -> float:
    """Median of a sample of the values (0 for none)."""
    return float(np.median(_thin(values))) if values.size else 0.0


def _noise(flat: np.ndarray) -> float:
    """The pixel noise's standard deviation, from differences between horizontal neighbours: their
    lower quartile, which for Gaussian noise is 0.3186 of their deviation (sqrt 2 times the pixels').
    Edges and texture only add to differences, so the quietest quarter (plain paper, or the smooth
    inside of an object) measures the noise however much of the image an object covers."""
    if flat.shape[1] < 2:
        return 0.0
    diffs = np.abs(_thin(np.diff(flat, axis=1)))
    return float(np.percentile(diffs, 25)) / 0.3186 / np.sqrt(2)


def _surface_terms(shape: tuple[int, int]) -> list[np.ndarray]:
    """1, x, y, x², xy, y² over the image (coordinates in -1..1), broadcastable to `shape`."""
    y = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    return [np.ones((1, 1), np.float32), x, y, x * x, x * y, y * y]


def _background(ink: np.ndarray) -> np.ndarray:
    """The paper's own brightness under uneven light (a gradient, vignetting), as a quadratic surface
    fitted to the paper pixels of a small copy: fit, call everything above Otsu's threshold of the
    residual ink, refit without it. The first rounds fit a plane, which cannot bulge under a large
    object in the middle the way a quadratic fitted to all pixels does. A surface, unlike a blur or
    a closing, does not eat objects wider than its window, so Fashion-MNIST items that fill the
    frame survive it."""
    small = _shrink(ink, SURFACE_SIDE)
    design = np.stack([np.broadcast_to(t, small.shape).ravel() for t in _surface_terms(small.shape)], axis=1)
    values = small.ravel()
    paper = np.ones(values.shape, bool)
    for terms in SURFACE_ROUNDS:
        used = design[paper, :terms].astype(np.float64)
        coef = np.zeros(design.shape[1])
        coef[:terms] = np.linalg.lstsq(used.T @ used, used.T @ values[paper], rcond=None)[0]  # normal equations
        residual = values - design @ coef
        paper = residual <= _otsu(residual)
        if paper.sum() < design.shape[1] * 4:
            break
    return sum(c * t for c, t in zip(coef.astype(np.float32), _surface_terms(ink.shape)))


def _neighbour_pairs(node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node numbers of every pair of 8-connected mask pixels (`node` is -1 off the mask)."""
    h, w = node.shape
    firsts, seconds = [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        first = node[:h - dy, max(0, -dx):w - max(0, dx)]
        second = node[dy:, max(0, dx):w - max(0, -dx)]
        both = (first >= 0) & (second >= 0)
        firsts.append(first[both])
        seconds.append(second[both])
    return np.concatenate(firsts), np.concatenate(seconds)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (8-connected) of a boolean mask: (label per pixel, -1 off the mask; count).

    Vectorised union-find: every round hooks the root of each linked pair onto the smaller root, then
    jumps pointers (parent = parent[parent]) until every node points at its root; pairs already in
    one tree are dropped. A few rounds and milliseconds for any mask here."""
    node = np.full(mask.shape, -1, np.int64)
    node[mask] = np.arange(np.count_nonzero(mask))
    first, second = _neighbour_pairs(node)
    parent = np.arange(np.count_nonzero(mask))
    while first.size:
        a, b = parent[first], parent[second]
        apart = a != b
        first, second, a, b = first[apart], second[apart], a[apart], b[apart]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        while not np.array_equal(parent[parent], parent):
            parent = parent[parent]
    roots, labels = np.unique(parent, return_inverse=True)
    out = np.full(mask.shape, -1, np.int64)
    out[mask] = labels
    return out, len(roots)


def _object_mask(mask: np.ndarray) -> np.ndarray | None:
    """The object's pixels: the largest component not touching the border (page edges, the table)
    unless nothing else is there, with the components that are large and near enough to be its
    other strokes; specks and far-off marks are left out. None for an empty mask."""
    labels, count = _components(mask)
    if count == 0:
        return None
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    own = labels[mask]
    area = np.bincount(own, minlength=count)
    top, left = np.full(count, h), np.full(count, w)
    bottom, right = np.full(count, -1), np.full(count, -1)
    for extreme, edge, coord in ((np.minimum, top, ys), (np.minimum, left, xs), (np.maximum, bottom, ys),
                                 (np.maximum, right, xs)):
        extreme.at(edge, own, coord)
    border = (top == 0) | (left == 0) | (bottom == h - 1) | (right == w - 1)
    inside = ~border & (area >= max(MIN_OBJECT_PIXELS, MIN_OBJECT_FRACTION * mask.size))
    main = int(np.argmax(np.where(inside, area, -1))) if inside.any() else int(np.argmax(area))
    size = max(bottom[main] - top[main], right[main] - left[main]) + 1
    gap = np.maximum.reduce([top - bottom[main], top[main] - bottom, left - right[main], left[main] - right])
    keep = (area >= PART_FRACTION * area[main]) & (gap <= NEAR_FRACTION * size) & (~border | border[main])
    keep[main] = True
    return np.append(keep, False)[labels]


def _dilate(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in all eight directions."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    wide = grown.copy()
    wide[:, 1:] |= grown[:, :-1]
    wide[:, :-1] |= grown[:, 1:]
    return wide


def _object_crop(img: np.ndarray, task: Task, source: str) -> np.ndarray:
    """The object cut out of a photo as ink intensity, white on black: background flattened, scaled so
    paper is 0 and the ink's 90th percentile 1 (not clipped yet, so resizing averages the noise),
    stray marks near it erased. Works on a copy at most WORK_SIDE pixels across."""
    work = _shrink(img, WORK_SIDE)
    ink = 1.0 - work if _light_background(work, task) else work
    flat = ink - _background(ink)
    noise = _noise(flat)
    mask = flat > _ink_threshold(flat, noise)
    keep = _object_mask(mask)
    paper = _median(flat[~mask])
    level = float(np.percentile(_thin(flat[keep]), INK_PERCENTILE)) if keep is not None else paper
    if level - paper < max(BLANK_RANGE, MIN_CONTRAST_TO_NOISE * noise):
        raise EdgeMnistError(f"{source}: no digit or object found (blank image)")
    obj = (flat - paper) / (level - paper)
    obj[_dilate(mask & ~keep) & ~_dilate(keep)] = 0.0
    rows, cols = np.nonzero(keep)
    return obj[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _fit(crop: np.ndarray, task: Task, source: str) -> np.ndarray:
    """The crop fitted into the task's box (aspect kept) and placed in its frame as the training data:
    MNIST by centre of mass, Fashion-MNIST centred; brightest pixel 1, on the data's 256 grey levels."""
    height, width = task.input_shape[:2]
    scale = task.fit_box / max(crop.shape)
    size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    fitted = np.clip(_resize(crop, size), 0, 1)
    if fitted.max() <= 0:
        raise EdgeMnistError(f"{source}: no digit or object found (blank image)")
    canvas = np.zeros((height, width), np.float32)
    top, left = _placement(fitted, (height, width), centre_of_mass=task.fit_box < min(height, width))
    canvas[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
    return np.round(canvas / canvas.max() * 255) / 255


def whole_frame(img: np.ndarray, task: Task) -> np.ndarray:
    """A float image (H, W) or (H, W, 3) resized whole to the task's frame as userdata.decode resizes a
    training image (8-bit, Pillow bilinear, aspect not kept; a frame-sized image unchanged): (H, W) for a
    one-channel task, (H, W, 3) for three."""
    from PIL import Image

    height, width, channels = task.input_shape
    pixels = np.round(np.clip(to_channels(img, channels), 0, 1) * 255).astype(np.uint8)
    if pixels.shape[:2] != (height, width):
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.BILINEAR))
    return pixels.astype(np.float32) / 255


def preprocess(img: np.ndarray, task: Task, source: str = "image") -> np.ndarray:
    """Float image (load_image's, grey or RGB) -> the task's frame as the model was trained on it, 0..1.

    A task of the user's own data gets the whole image resized (whole_frame). For the registered scans
    (white on black) an image already in that format is used as it is; a photo or scan is flattened,
    thresholded, reduced to its object, fitted and centred (_object_crop, _fit)."""
    if not is_registered(task):
        return whole_frame(img, task)
    img = to_channels(img, 1)
    height, width = task.input_shape[:2]
    if img.shape == (height, width) and not _light_background(img, task):
        return img.astype(np.float32)
    return _fit(_object_crop(img, task, source), task, source).astype(np.float32)


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


MIN_OBJECT_PIXELS, MIN_OBJECT_FRACTION = 4, 1e-4  # smaller marks are never taken for the object
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".npy")  # taken from folders


def is_pattern(arg: str) -> bool:
    """True for an argument with glob wildcards."""
    return any(char in arg for char in "*?[")


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in a folder (by suffix, hidden files left out), sorted by name."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                  and p.is_file())
