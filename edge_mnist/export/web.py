"""The web page (web/ in the artifact folder): a static page that classifies drawings and photos in the browser.

web/ holds index.html and edge-mnist.js (package data, web_page/), a copy of the int8 .onnx the format is built
from, and onnxruntime-web's files (export.ort_web). The page reads labels and input quantization from the
model's own metadata_props and preprocesses as `edge-mnist predict` does (edge-mnist.js ports
predict/preprocess.py). Every file is known in advance, so the gate checks each one: the model against the
gated .onnx, the page and script against what this version writes, the runtime against its pinned hashes.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.export import ort_web
from edge_mnist.export.job import Exported, ExportJob
from edge_mnist.registry.datasets import Task, is_registered

TEMPLATES = Path(__file__).resolve().parent / "web_page"
PAGE, SCRIPT = "index.html", "edge-mnist.js"


def render_page(model: str, task: Task) -> bytes:
    """index.html for the model file `model` (a name the registry gives, never user text) of `task`: the page
    preprocesses as predict does, cutting out and fitting a registered dataset's scans ("scan") and resizing
    a photo whole for the user's own data ("whole")."""
    text = (TEMPLATES / PAGE).read_text(encoding="utf-8")
    for key, value in {"MODEL": model, "ORT_SCRIPT": ort_web.SCRIPT, "ORT_VERSION": ort_web.VERSION,
                       "PREPROCESS": "scan" if is_registered(task) else "whole"}.items():
        text = text.replace("{{" + key + "}}", value)
    return text.encode()


def expected_sha256(model: str, onnx: bytes, task: Task) -> dict[str, str]:
    """The sha256 every file of web/ must have for the gated .onnx `model` (its bytes `onnx`) of `task`."""
    ours = {PAGE: render_page(model, task), SCRIPT: (TEMPLATES / SCRIPT).read_bytes(), model: onnx}
    return {**{name: hashlib.sha256(data).hexdigest() for name, data in ours.items()}, **ort_web.FILES}


def export_page(job: ExportJob) -> Exported:
    """Write web/: the page, its script, the .onnx it is built from and onnxruntime-web's files.

    The old web/ goes first (the staging copy's files are hard links to the current set: removing them
    leaves that intact), so a page that cannot be written now leaves no stale one; without onnxruntime-web
    (no cache, registry unreachable) NotExported says why."""
    folder = job.path.parent
    shutil.rmtree(folder, ignore_errors=True)
    runtime = ort_web.runtime_files()
    folder.mkdir()
    model = job.built_from_path.name
    files = {SCRIPT: (TEMPLATES / SCRIPT).read_bytes(), model: job.built_from_path.read_bytes(), **runtime,
             PAGE: render_page(model, job.task)}
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    return Exported(converter=f"edge-mnist page with {ort_web.PACKAGE} {ort_web.VERSION} (npm, integrity pinned)",
                    quantization=f"runs {model}, copied", parts=tuple(n for n in files if n != PAGE))


def verify_page(path: Path, onnx: bytes, task, runner) -> list[str]:
    """What in web/ disagrees with the gated .onnx (runner's file, bytes `onnx`), this version's page and the
    pinned onnxruntime-web ([] when nothing)."""
    model, folder = Path(runner.path).name, Path(path).parent
    problems = []
    for name, sha in expected_sha256(model, onnx, task).items():
        target = folder / name
        if not target.is_file():
            problems.append(f"{folder.name}/{name} is missing")
        elif hashlib.sha256(target.read_bytes()).hexdigest() != sha:
            problems.append(f"{folder.name}/{name} is not {_what(name, model)}")
    return problems


def _what(name: str, model: str) -> str:
    """What a file of web/ should be, for a problem line."""
    if name == model:
        return f"the bytes of the checked {model}"
    if name in ort_web.FILES:
        return f"{ort_web.PACKAGE} {ort_web.VERSION}'s {name}"
    return f"the {name} edge-mnist writes for {model} (re-export)"


__all__ = ["export_page", "render_page", "verify_page"]
