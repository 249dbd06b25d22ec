"""The predict stage: classify photos or scans with an exported model, preprocessed like the training data
(predict.preprocess); which files, which model, and how the answers are reported."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.folder.layout import MANIFEST_FILE
from edge_mnist.folder.records import Manifest
from edge_mnist.folder.verify import open_artifact
from edge_mnist.predict.preprocess import folder_images, is_pattern, load_image, preprocess
from edge_mnist.registry.datasets import Task, task_from_json
from edge_mnist.registry.formats import BY_FILE, BY_KEY
from edge_mnist.runtime import open_model

DEFAULT_MODEL = BY_KEY["tflite_int8"].file


def expand_images(args: list) -> list[Path]:
    """IMAGES as given -> the files to classify, in order. A folder stands for the image files in it
    and a pattern such as 'photos/*.jpg' for the files it matches, both sorted by name (a quoted
    pattern, or one from a shell that does not expand it, reaches us as it is). An empty folder or a
    pattern that matches nothing stays itself, so it gets its own error line."""
    import glob

    paths = []
    for arg in map(str, args):
        path = Path(arg)
        if path.is_dir():
            paths += folder_images(path) or [path]
        elif not path.exists() and is_pattern(arg):
            paths += [Path(p) for p in sorted(glob.glob(arg, recursive=True)) if Path(p).is_file()] or [path]
        else:
            paths.append(path)
    return paths


def _scored(probs: np.ndarray, index: int, task: Task) -> dict:
    """One class of a prediction: number, name and probability."""
    return {"class": int(index), "label": task.class_names[int(index)], "probability": float(probs[index])}


def _ranked(probs: np.ndarray, task: Task, top: int | None) -> dict:
    """The best class, and with `top` the `top` best in order (ties by class number)."""
    order = np.argsort(-probs, kind="stable")
    item = _scored(probs, order[0], task)
    if top:
        item["top"] = [_scored(probs, i, task) for i in order[:top]]
    return item


def describe(item: dict) -> str:
    """A classified file as predict's text line: the file, then its best class (or --top's, best first)."""
    classes = item.get("top") or [item]
    return f"{item['file']}: " + "; ".join(f"{c['label']} (class {c['class']}, p={c['probability']:.3f})"
                                           for c in classes)


class PreprocessedWriter:
    """Writes each model input as an 8-bit PNG into a folder, named after its file (photo.jpg ->
    photo.28x28.png); a name taken earlier in the run or by an input file gets -2, -3... so no input
    and no earlier output of the run is ever overwritten. The PNG holds exactly what the model got:
    preprocess puts photos on the training data's 256 levels (grey, or RGB for a colour task)."""

    def __init__(self, folder: Path, inputs: list[Path]):
        self.folder = Path(folder)
        self.taken = {p.resolve() for p in inputs}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgeMnistError(f"{self.folder}: cannot make the --save-preprocessed folder "
                                 f"({exc.strerror or exc})") from exc

    def write(self, image: np.ndarray, source: Path) -> Path:
        """Save one model input; returns the path written."""
        import io

        from PIL import Image


        target = self._free_name(source.stem, f"{image.shape[0]}x{image.shape[1]}.png")
        buffer = io.BytesIO()
        Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, "PNG")
        atomic_write_bytes(target, buffer.getvalue())
        return target

    def _free_name(self, stem: str, ending: str) -> Path:
        """folder/stem.ending, or stem-2.ending, stem-3.ending... whichever is not yet taken."""
        names = (f"{stem}.{ending}" if n == 1 else f"{stem}-{n}.{ending}" for n in itertools.count(1))
        target = next(self.folder / name for name in names if (self.folder / name).resolve() not in self.taken)
        self.taken.add(target.resolve())
        return target


def predict_files(runner, paths: list[Path], task: Task, top: int | None = None,
                  writer: PreprocessedWriter | None = None) -> list[dict]:
    """Preprocess each file and classify the readable ones in one batch; a file that fails gets an error entry.
    With `top`, each entry also lists the `top` best classes; with `writer`, each model input is saved
    and its path recorded as "preprocessed"."""
    images, results = [], []
    for path in paths:
        try:
            image = preprocess(load_image(path, task.input_shape[2]), task, str(path))
        except EdgeMnistError as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        images.append(image)
        results.append({"file": str(path)})
        if writer is not None:
            results[-1]["preprocessed"] = str(writer.write(image, path))
    if images:
        probs = iter(runner.predict(np.stack(images).reshape(len(images), *task.input_shape)))
        for item in results:
            if "error" not in item:
                item.update(_ranked(next(probs), task, top and min(top, task.num_classes)))
    return results


def open_for_predict(out: Path, model: Path | None, threads: int = 1) -> tuple[object, Task, bool]:
    """(runner, task, verified). An artifact of DIR's manifest is opened only from verified bytes;
    any other file named by --model runs unverified, with the task from DIR's manifest or the file's own metadata."""

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


def predict(out: Path, images: list, model: Path | None = None, threads: int = 1, top: int | None = None,
            save_dir: Path | None = None) -> tuple[list[dict], bool]:
    """Classify image files (folders and wildcard patterns expanded, see expand_images) with an artifact
    of DIR (default: the PTQ int8 TFLite model) or another model file.

    Returns one entry per file (with "error" for a file that could not be read) and whether the
    model was verified against DIR's manifest. `top` adds the best classes to each entry;
    `save_dir` receives each model input as a PNG (PreprocessedWriter).
    """
    runner, task, verified = open_for_predict(out, model, threads)
    paths = expand_images(images)
    writer = PreprocessedWriter(save_dir, paths) if save_dir is not None else None
    return predict_files(runner, paths, task, top, writer), verified
