"""The export stage: every format of the chosen methods from the trained float model, plus the manifest.

One exporter per format family lives beside this file (tflite.py, onnx.py, ort.py, c_array.py); which one writes a
format, and from what, is the format registry's business (edge_mnist.formats). An exporter
takes an ExportJob, writes job.path and returns an Exported record.
"""
from __future__ import annotations

import importlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist import __version__
from edge_mnist.data import Dataset, to_float
from edge_mnist.datasets import Task
from edge_mnist.errors import EdgeMnistError, GateFailed
from edge_mnist.files import sha256_file, staged, writable_folder
from edge_mnist.formats import BY_KEY, FLOAT_KERAS, QAT_KERAS, QAT_KERAS_FILE, RUNTIMES, Format, for_methods
from edge_mnist.plots import ARTIFACT_PLOTS
from edge_mnist.progress import step
from edge_mnist.records import BENCH_FILE, CHECK_FILE, EMULATE_FILE, MANIFEST_FILE, REPORT_FILE, Artifact, InputSpec, Manifest, QatRecord, expect


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


@dataclass
class Exported:
    """What an exporter reports about the file it wrote."""

    converter: str
    quantization: str = ""
    measured: dict[str, str] | None = None  # figures measured on the written file, kept in the manifest


def artifact_metadata(fmt: Format, task: Task, float_accuracy: float) -> dict[str, str]:
    """The description every artifact carries inside the file (where its format has room for it):
    labels, dataset, input shape and preprocessing (in `task`), the float model's test accuracy and
    versions; int8 exporters add the input and output quantization (io_quantization)."""
    return {"edge_mnist.format": fmt.key, "edge_mnist.version": __version__, "precision": fmt.precision,
            "method": fmt.method, "dataset": task.dataset, "labels": json.dumps(list(task.class_names)),
            "input_shape": json.dumps(list(task.input_shape)), "preprocessing": task.pixel_scale,
            "float_accuracy": f"{float_accuracy:.6f}", "task": json.dumps(task.to_json()), "notes": fmt.notes}


def io_quantization(runner) -> dict[str, str]:
    """An integer model's input and output scale and zero point, as metadata strings."""
    return {"input_scale": repr(float(runner.input_scale)), "input_zero_point": str(int(runner.input_zero_point)),
            "output_scale": repr(float(runner.output_scale)),
            "output_zero_point": str(int(runner.output_zero_point))}


def describe(path: Path, fmt: Format, task: Task, exported: Exported | None) -> Artifact:
    """Manifest entry for one written file, its input read back with the runtime that runs it."""
    spec = InputSpec([-1, *task.input_shape], "float32")
    if fmt.runnable and not RUNTIMES[fmt.runtime].needs_tensorflow:
        from edge_mnist.runtime import open_model

        runner = open_model(path, task=task, runtime=fmt.runtime)
        if runner.input_dtype != np.float32:
            spec = InputSpec(spec.shape, runner.input_dtype.name, float(runner.input_scale),
                             int(runner.input_zero_point))
    details = {"converter": exported.converter, "quantization": exported.quantization,
               **(exported.measured or {})} if exported else {}
    return Artifact(fmt.key, fmt.file, sha256_file(path), path.stat().st_size, spec,
                    {k: v for k, v in details.items() if v})


def run_exporter(fmt: Format, job: ExportJob) -> Exported:
    """Import the exporter the registry names for `fmt` and run it."""
    module, func = fmt.exporter.split(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(importlib.import_module(module), func)(job)


def _start_manifest(out: Path, dataset: Dataset, keras_sha256: str, float_accuracy: float) -> Manifest:
    """The folder's manifest when it belongs to the same float model and test data, else a new one."""
    fresh = Manifest(dataset.task, dataset.test_fingerprint(), keras_sha256, float_accuracy)
    try:
        old = Manifest.load(out)
    except EdgeMnistError:
        return fresh
    if (old.keras_sha256, old.dataset_fingerprint) != (keras_sha256, fresh.dataset_fingerprint):
        return fresh
    old.float_accuracy, old.versions, old.created = float_accuracy, fresh.versions, fresh.created
    return old


def recorded_keras_sha256(out: Path) -> str | None:
    """The sha256 the toolkit recorded for DIR's float Keras model (training history, else manifest);
    None for a model the toolkit did not write."""
    from edge_mnist.records import read_record
    from edge_mnist.train import HISTORY_FILE

    history = Path(out) / HISTORY_FILE
    if history.is_file():
        recorded = read_record(history, "training history").get("keras_sha256")
        if recorded is not None:
            return expect(recorded, str, f"{history}: keras_sha256")
    return Manifest.load(out).keras_sha256 if (Path(out) / MANIFEST_FILE).is_file() else None


def _qat(stage: Path, model, dataset: Dataset, calib: np.ndarray, epochs: int, batch_size: int, seed: int,
         progress) -> tuple[object, QatRecord]:
    """Fine-tune a QAT copy of the float model (ranges calibrated on `calib` first), save it and
    record its test-set predictions."""
    from edge_mnist.keras_io import save_keras
    from edge_mnist.quantize.qat import qat_finetune

    progress(f"quantization-aware fine-tuning for {epochs} epoch(s)")
    qat, metrics = qat_finetune(model, dataset, epochs, batch_size, seed, calib)
    save_keras(qat, stage / QAT_KERAS_FILE)
    preds = qat.predict(to_float(dataset.x_test), batch_size=1024, verbose=0).argmax(1)
    return qat, QatRecord(epochs, QAT_KERAS_FILE, sha256_file(stage / QAT_KERAS_FILE),
                          float((preds == dataset.y_test).mean()), preds.astype(np.int64), metrics)


def _fallback(model, calib: np.ndarray, dataset: Dataset, request, progress):
    """Search the float fallback (edge_mnist.fallback) for the post-training int8 files; returns the
    Mixer and the result."""
    from edge_mnist.check import Measured
    from edge_mnist.fallback import search
    from edge_mnist.quantize.mixed import Mixer

    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    preds = model.predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured(FLOAT_KERAS, BY_KEY["keras_float32"].file, preds, float((preds == labels).mean()))
    progress("fallback: calibrating, then trying the all-int8 model against the gate")
    mixer = Mixer.for_model(model, calib)
    return mixer, search(mixer, images, labels, reference, dataset.task.class_names, request.criteria,
                         request.max_float_layers, progress)


def _fallback_details(fmt: Format, plan) -> dict[str, str]:
    """What the manifest and the file say about the fallback, for a post-training int8 format."""
    if plan is None or fmt.method != "ptq" or not fmt.is_int8:
        return {}
    cost = plan.cost_note(fmt.runtime or "")
    return {**plan.describe(), **({"fallback_cost": cost} if cost else {})}


def _no_mix_passes(plan, out: Path) -> GateFailed:
    """exit 1 with the best mix's figures: the files hold it, and the gate will fail it too."""
    best = plan.chosen
    return GateFailed("no mix of float layers passes the gate; best: {}, accuracy {} (failed: {}); {} holds that mix"
                      .format(best.label, ", ".join(f"{k} {v:.4f}" for k, v in best.accuracy.items()),
                              "; ".join(best.failed[:3]), out), label="fallback failed")


def export(out: Path, dataset: Dataset, methods: tuple[str, ...] = ("ptq",), calib_samples: int = 500,
           seed: int = 0, qat_epochs: int = 1, batch_size: int = 128,
           progress: Callable[[str], None] = print, fallback=None) -> Manifest:
    """Export every format of `methods` from DIR/model_float32.keras and write DIR/manifest.json.

    The new files and the manifest (written last) are built in a staging folder and swapped in
    whole (files.staged), so an interruption leaves the previous complete set. bench.json,
    emulate.json, check.json, report.html and the artifacts' pictures leave with the old set: they
    describe files that are replaced.
    `fallback` (edge_mnist.fallback.Request) keeps the fewest layers of the post-training int8 files
    float so they pass the gate; when no mix does, the best one is written and GateFailed is raised.
    """
    from edge_mnist.keras_io import load_keras
    from edge_mnist.quantize.calibration import calibration_images
    from edge_mnist.train import evaluate_keras

    out = Path(out)
    writable_folder(out)
    formats = for_methods(tuple(methods))
    reference = BY_KEY["keras_float32"]
    model = load_keras(out / reference.file, sha256=recorded_keras_sha256(out))
    progress(f"evaluating the float Keras model on {len(dataset.x_test)} test images")
    accuracy = evaluate_keras(model, dataset, str(out / reference.file))
    manifest = _start_manifest(out, dataset, sha256_file(out / reference.file), accuracy)
    calib = calibration_images(dataset, calib_samples, seed)
    if fallback is not None and "ptq" not in methods:
        raise EdgeMnistError("--fallback applies to post-training int8: use --method ptq or both")
    mixer, plan = _fallback(model, calib, dataset, fallback, progress) if fallback is not None else (None, None)
    with staged(out, drop=(BENCH_FILE, EMULATE_FILE, CHECK_FILE, REPORT_FILE, *ARTIFACT_PLOTS),
                last=(MANIFEST_FILE,)) as stage:
        manifest.artifacts[reference.key] = describe(stage / reference.file, reference, dataset.task, None)
        sources = {FLOAT_KERAS: model}
        if "qat" in methods:
            sources[QAT_KERAS], manifest.qat = _qat(stage, model, dataset, calib, qat_epochs, batch_size, seed,
                                                     progress)
        with step("export", len(formats), unit="files") as shown:
            for fmt in formats:
                progress(f"exporting {fmt.file}")
                built_from = stage / BY_KEY[fmt.built_from].file if fmt.built_from in BY_KEY else None
                notes = _fallback_details(fmt, plan)
                job = ExportJob(sources[fmt.source], calib, stage / fmt.file, fmt, dataset.task,
                                {**artifact_metadata(fmt, dataset.task, accuracy), **notes}, built_from)
                if plan is not None and fmt.key == "tflite_int8":
                    job.int8_model = mixer.tflite(plan.chosen.float_layers)
                manifest.artifacts[fmt.key] = describe(job.path, fmt, dataset.task, run_exporter(fmt, job))
                manifest.artifacts[fmt.key].details.update(notes)
                shown.update(1)
        manifest.save(stage)
    if plan is not None and not plan.passed:
        raise _no_mix_passes(plan, out)
    return manifest


__all__ = ["export", "ExportJob", "Exported", "QAT_KERAS_FILE"]
