"""What every exporter receives (ExportJob) and returns (Exported), and the description each artifact
carries: the one module exporters import from the export package, so the stage can load them by name."""
from __future__ import annotations

import importlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import sha256_file
from edge_mnist.core.version import __version__
from edge_mnist.folder.records import Artifact, InputSpec
from edge_mnist.registry.datasets import Task
from edge_mnist.registry.formats import RUNTIMES, Format
from edge_mnist.runtime import open_model


@dataclass
class ExportJob:
    """What an exporter needs: the Keras model to convert, calibration images and where to write."""

    model: object
    calib: np.ndarray
    path: Path
    fmt: Format
    task: Task
    metadata: dict[str, str]
    built_from_path: Path | None = None
    int8_model: bytes | None = None  # a mixed int8 .tflite chosen by --fallback, written instead of converting
    notes: dict[str, str] = field(default_factory=dict)  # how quantize.plan made it: in the file and the manifest


class NotExported(EdgeMnistError):
    """An exporter cannot make its file from this model (the interpreter-free C lacks an operator): export
    says why in one line, writes nothing for that format and goes on."""


@dataclass
class Exported:
    """What an exporter reports about the file it wrote."""

    converter: str
    quantization: str = ""
    measured: dict[str, str] | None = None  # figures measured on the written file, kept in the manifest
    parts: tuple[str, ...] = ()  # further files written beside job.path (names in its folder), hashed with it


def artifact_metadata(fmt: Format, task: Task, float_accuracy: float) -> dict[str, str]:
    """The description every artifact carries inside the file (where its format has room for it):
    labels, dataset, input shape and preprocessing (in `task`), the float model's test accuracy and
    versions; int8 exporters add the input and output quantization (io_quantization)."""
    return {"edge_mnist.format": fmt.key, "edge_mnist.version": __version__, "precision": fmt.precision,
            "method": fmt.method, "dataset": task.dataset, "labels": json.dumps(list(task.class_names)),
            "input_shape": json.dumps(list(task.input_shape)), "preprocessing": task.pixel_scale,
            "float_accuracy": f"{float_accuracy:.6f}", "task": json.dumps(task.to_json()), "notes": fmt.notes}


def describe(path: Path, fmt: Format, task: Task, exported: Exported | None) -> Artifact:
    """Manifest entry for one written file, its input read back with the runtime that runs it."""
    spec = InputSpec([-1, *task.input_shape], "float32")
    if fmt.runnable and not RUNTIMES[fmt.runtime].needs_tensorflow:

        runner = open_model(path, task=task, runtime=fmt.runtime)
        if runner.input_dtype != np.float32:
            spec = InputSpec(spec.shape, runner.input_dtype.name, float(runner.input_scale),
                             int(runner.input_zero_point))
    details = {"converter": exported.converter, "quantization": exported.quantization,
               **(exported.measured or {})} if exported else {}
    folder = Path(fmt.file).parent
    parts = {(folder / name).as_posix(): sha256_file(path.parent / name) for name in exported.parts} if exported else {}
    return Artifact(fmt.key, fmt.file, sha256_file(path), path.stat().st_size, spec,
                    {k: v for k, v in details.items() if v}, parts)


def run_exporter(fmt: Format, job: ExportJob) -> Exported:
    """Import the exporter the registry names for `fmt` and run it."""
    module, func = fmt.exporter.split(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(importlib.import_module(module), func)(job)
