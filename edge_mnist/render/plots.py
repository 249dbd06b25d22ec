"""Pictures of a model and its artifacts (matplotlib, PNG): what `report` embeds and `train` writes.

Each function takes plain arrays and figures, writes one PNG atomically and returns its path, so
the report can draw from whatever measured them (the gate's own predictions, bench.json's
timings). matplotlib is imported lazily and drawn on its Agg canvas directly (no pyplot, no display).

Class names are the user's text: drawn as written (math text off, so a "$" is a dollar) in the installed
fonts that have their glyphs, else by class number (class_labels; report.html's class table names them),
never as boxes, and never with a warning on the user's terminal.
"""
from __future__ import annotations

import contextlib
import functools
import unicodedata
import warnings
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import MissingDependency
from edge_mnist.core.files import atomic_output


def require_matplotlib() -> None:
    """Fail early, with the remedy, on an install without matplotlib (a device's runtime-only install)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependency("pictures need matplotlib: pip install 'edge-mnist[report]'") from exc


DEFAULT_FONT = "DejaVu Sans"  # matplotlib's default, installed with it
NAME_CHARS = 30  # a longer class name is cut with "…" in a picture (report.html's class table has it whole)
RIGHT_TO_LEFT = {"R", "AL", "AN"}  # bidirectional classes matplotlib would draw reversed (it has no bidi)


@functools.cache
def _installed_fonts() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, the code points it has glyphs for) of each font family matplotlib knows, its default first;
    not the Last Resort font, whose glyphs are placeholder boxes. Read once per process (about 0.5 s)."""
    from matplotlib import font_manager, ft2font

    found: dict[str, frozenset[int]] = {}
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda e: e.name != DEFAULT_FONT):
        if entry.name not in found and not entry.name.startswith("Last Resort"):
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                found[entry.name] = frozenset(ft2font.FT2Font(entry.fname).get_charmap())
    return tuple(found.items())


def fonts_for(texts: list[str]) -> list[str] | None:
    """The font families that draw every visible character of `texts` (matplotlib's default first, then
    whichever installed fonts supply the rest, for matplotlib's per-glyph fallback), or None when some
    character is in no installed font or would be drawn reversed (right-to-left script)."""
    chars = {c for text in texts for c in text if not c.isspace() and unicodedata.category(c) != "Cf"}
    if any(unicodedata.bidirectional(c) in RIGHT_TO_LEFT for c in chars):
        return None
    needed = {ord(c) for c in chars}
    families = []
    for name, covered in _installed_fonts():
        if name == DEFAULT_FONT or needed & covered:
            families.append(name)
            needed -= covered
        if not needed:
            return families
    return None


def class_labels(class_names: list[str]) -> tuple[list[str], list[str], str]:
    """(what a picture shows for each class, the font families to draw it in, a note for its title): the
    names as written (cut at NAME_CHARS with "…") when fonts_for can draw them all, else each class's
    number, and the note says where the names are."""
    shown = [n if len(n) <= NAME_CHARS else n[:NAME_CHARS - 1] + "…" for n in class_names]
    fonts = fonts_for(shown)
    if fonts is not None:
        return shown, fonts, ""
    return [str(i) for i in range(len(class_names))], [DEFAULT_FONT], " (classes by number: see the class table)"


@contextlib.contextmanager
def _text_style(fonts: list[str] | None = None):
    """Draw text as written: in `fonts`, with math text off (a class name's "$" is a dollar), and without
    matplotlib's missing-glyph warnings reaching the terminal (a title may hold a dataset name no
    installed font has; it is drawn as far as the fonts go)."""
    from matplotlib import rc_context

    with rc_context({"font.family": fonts or [DEFAULT_FONT], "text.parse_math": False}), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        yield


@contextlib.contextmanager
def _class_text(class_names: list[str]):
    """Draw in _text_style with class_labels' fonts; yields (what to show for each class, the title's note)."""
    shown, fonts, note = class_labels(class_names)
    with _text_style(fonts):
        yield shown, note


def _figure(rows: int = 1, cols: int = 1, figsize: tuple[float, float] = (8, 5)):
    """A Figure with its Agg canvas and a rows x cols array of axes. pyplot is not used, so drawing
    here never changes the backend or state of a caller's pyplot (a notebook's inline plots)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig, path: Path) -> Path:
    """Write the figure as PNG in one atomic step."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def curves_title(dataset: str, architecture: str, accuracy: float) -> str:
    """The training curves' title: what was trained on what, and how well."""
    return f"{dataset} · {architecture} · float test accuracy {100 * accuracy:.2f}%"


def training_curves(metrics: dict, path: Path, title: str, qat_metrics: dict | None = None) -> Path:
    """Loss and accuracy per epoch, train and test, on integer epochs; the QAT fine-tune's epochs follow
    the float training's on the same axes, shaded."""
    with _text_style():
        fig, grid = _figure(1, 2, (10, 3.8))
        from matplotlib.ticker import MaxNLocator

        axes = grid[0]
        n_float = len(metrics.get("loss", []))
        phases = [("", metrics, 1)]
        if qat_metrics and qat_metrics.get("loss"):
            phases.append(("QAT ", qat_metrics, n_float + 1))
        for ax, key in zip(axes, ("loss", "accuracy")):
            for prefix, values, first in phases:
                epochs = np.arange(first, first + len(values.get(key, [])))
                ax.plot(epochs, values.get(key, []), "o-", label=f"{prefix}train")
                if f"val_{key}" in values:
                    ax.plot(epochs, values[f"val_{key}"], "s--", label=f"{prefix}test")
            if len(phases) > 1:
                ax.axvspan(n_float + 0.5, n_float + len(qat_metrics["loss"]) + 0.5, color="tab:orange", alpha=0.08,
                           label="QAT fine-tune")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(title)
        return _save(fig, path)


MAX_LABELLED = 30  # classes up to which a matrix names every class and writes its counts; beyond, every k-th name
SAMPLE_COLUMNS = 20  # classes up to which the samples give each class a column; beyond, one image per class...
SAMPLE_CLASSES = 100  # ...of at most this many classes, SAMPLE_COLUMNS to a row


def _matrix(ax, counts: np.ndarray, class_names: list[str], xlabel: str, ylabel: str, normalise_rows: bool) -> None:
    """Draw a class-by-class count matrix with the counts written in the cells; with more than MAX_LABELLED
    classes only the shading and about MAX_LABELLED evenly spaced class names (cells too small for text)."""
    shade = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalise_rows else counts / max(counts.max(), 1)
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ticks = np.arange(0, len(class_names), -(-len(class_names) // MAX_LABELLED))
    names = [class_names[i] for i in ticks]
    ax.set_xticks(ticks, names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(class_names) > MAX_LABELLED:
        return
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if shade[i, j] > 0.6 else "black")


def _matrix_side(classes: int) -> float:
    """Inches per side of a matrix plot: room for every name up to MAX_LABELLED classes, capped beyond."""
    return 6.0 + 0.12 * min(classes, 3 * MAX_LABELLED)


def confusion_counts(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: images of class i predicted as j."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, preds), 1)
    return counts


def confusion(labels: np.ndarray, preds: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """The confusion matrix of one model on the test set (rows: true class), shaded by row."""
    with _class_text(class_names) as (class_names, note):
        side = _matrix_side(len(class_names))
        fig, grid = _figure(figsize=(side + 0.5, side))
        ax = grid[0, 0]
        _matrix(ax, confusion_counts(labels, preds, len(class_names)), class_names, "predicted", "true", True)
        ax.set_title(f"{title}: accuracy {100 * (labels == preds).mean():.2f}%{note}")
        return _save(fig, path)


def disagreement(reference: np.ndarray, artifacts: dict[str, np.ndarray], class_names: list[str], path: Path,
                 reference_name: str, subsets: dict[str, np.ndarray] | None = None) -> Path:
    """For each int8 artifact, the images where it and the float model give different classes,
    counted by (float class, int8 class); an artifact in `subsets` ran on those test images only."""
    with _class_text(class_names) as (class_names, note):
        n = max(len(artifacts), 1)
        cols = min(n, 3)
        rows = -(-n // cols)
        side = _matrix_side(len(class_names)) - 0.8
        fig, axes = _figure(rows, cols, (side * cols, (side + 0.1) * rows))
        for ax, (name, preds) in zip(axes.flat, artifacts.items()):
            images = (subsets or {}).get(name)
            counts = confusion_counts(reference if images is None else reference[images], preds, len(class_names))
            np.fill_diagonal(counts, 0)
            ylabel = f"{reference_name} class" if ax in axes[:, 0] else ""
            _matrix(ax, counts, class_names, f"{name} class", ylabel, False)
            ax.set_title(f"{name}: {counts.sum()} of {len(preds)} differ ({100 * counts.sum() / len(preds):.2f}%)",
                         fontsize=9)
        for ax in list(axes.flat)[len(artifacts):]:
            ax.axis("off")
        fig.suptitle(f"Where each int8 artifact disagrees with {reference_name}{note}")
        return _save(fig, path)


def latency_vs_size(points: list[dict], path: Path, title: str) -> Path:
    """Median latency against file size for every timed artifact, both axes logarithmic (a float Keras
    model and an int8 file differ by orders of magnitude); the bar above each point reaches p99.
    Each point: {"name", "size_bytes", "p50", "p99", "int8"}; circles are int8, squares float."""
    with _text_style():
        from matplotlib import colormaps

        fig, grid = _figure(figsize=(9, 5))
        ax, colours = grid[0, 0], colormaps["tab10"]
        for i, p in enumerate(points):
            ax.errorbar([p["size_bytes"] / 1e6], [p["p50"]], yerr=[[0], [max(p["p99"] - p["p50"], 0)]],
                        fmt="o" if p["int8"] else "s", color=colours(i % 10), capsize=4, markersize=7,
                        label=f"{p['name']}: p50 {p['p50']:,.0f} us, p99 {p['p99']:,.0f} us")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("file size (MB), as in the bench table")
        ax.set_ylabel("single-image latency (us): p50, bar to p99")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(title, fontsize=9)
        return _save(fig, path)


def image_grid(images: np.ndarray, captions: list[str], path: Path, title: str, columns: int = 10,
               colours: list[str] | None = None) -> Path:
    """Images (N, H, W) or, in colour, (N, H, W, 3) in a grid, each with its caption, shown as the data stores
    them (white ink on black)."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = _figure(rows, columns, (1.35 * columns, 1.55 * rows + 0.5))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255 if images.dtype == np.uint8 else 1)
            ax.set_title(captions[i], fontsize=7, color=(colours or ["black"] * len(images))[i])
    fig.suptitle(title)
    return _save(fig, path)


def misclassified(images: np.ndarray, labels: np.ndarray, preds: np.ndarray, class_names: list[str], path: Path,
                  title: str, limit: int = 40) -> Path:
    """The first `limit` test images the model gets wrong, captioned "true → predicted" by class name."""
    with _class_text(class_names) as (class_names, note):
        wrong = np.flatnonzero(labels != preds)[:limit]
        captions = [f"{class_names[labels[i]]}\n→ {class_names[preds[i]]}" for i in wrong]
        return image_grid(images[wrong], captions, path, f"{title}: {int((labels != preds).sum())} of {len(labels)} "
                          f"test images misclassified (first {len(wrong)}){note}", colours=["firebrick"] * len(wrong))


def samples(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path, title: str,
            per_class: int = 4) -> Path:
    """`per_class` images of every class, one class per column; with more than SAMPLE_COLUMNS classes, one
    image of each of the first SAMPLE_CLASSES classes, SAMPLE_COLUMNS to a row (the title says how many)."""
    classes = len(class_names)
    if classes > SAMPLE_COLUMNS:
        per_class, classes = 1, min(classes, SAMPLE_CLASSES)
        if classes < len(class_names):
            title = f"{title} (the first {classes} of {len(class_names)} classes)"
    with _class_text(class_names) as (class_names, note):
        picked = [np.flatnonzero(labels == c)[:per_class] for c in range(classes)]
        order = [idx[r] for r in range(per_class) for idx in picked if r < len(idx)]
        captions = [class_names[labels[i]] for i in order]
        return image_grid(images[order], captions, path, title + note, columns=min(classes, SAMPLE_COLUMNS))


__all__ = ["confusion", "confusion_counts", "curves_title", "disagreement", "image_grid", "latency_vs_size",
           "misclassified", "samples", "training_curves"]
