"""The export stage: every format of the chosen methods from the trained float model, plus the manifest.

One exporter per format family lives beside this file (tflite.py, onnx.py, ort.py, c_array.py); which one writes a
format, and from what, is the format registry's business (edge_mnist.registry.formats). An exporter
takes an ExportJob, writes job.path and returns an Exported record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, GateFailed
from edge_mnist.core.files import sha256_file, staged, writable_folder
from edge_mnist.core.keras_io import load_keras, save_keras
from edge_mnist.core.lock import folder_lock
from edge_mnist.core.progress import step
from edge_mnist.data import Dataset, to_float
from edge_mnist.export.job import ExportJob, NotExported, artifact_metadata, describe, run_exporter
from edge_mnist.folder.layout import (ARTIFACT_PLOTS, BENCH_FILE, CHECK_FILE, EMULATE_FILE, FALLBACK_FILES,
                                      MANIFEST_FILE, REPORT_FILE)
from edge_mnist.folder.records import Manifest, QatRecord
from edge_mnist.folder.verify import recorded_keras_sha256
from edge_mnist.gate import Measured
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.quantize.fallback import search
from edge_mnist.quantize.mixed import Mixer, QatMixer
from edge_mnist.quantize.qat import qat_finetune
from edge_mnist.registry.formats import BY_KEY, FLOAT_KERAS, QAT_KERAS, QAT_KERAS_FILE, Format, for_methods
from edge_mnist.train import evaluate_keras


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


def _qat(stage: Path, qat, metrics: list, epochs: int, dataset: Dataset) -> QatRecord:
    """Save the QAT model and record its test-set predictions."""
    save_keras(qat, stage / QAT_KERAS_FILE)
    preds = qat.predict(to_float(dataset.x_test), batch_size=1024, verbose=0).argmax(1)
    return QatRecord(epochs, QAT_KERAS_FILE, sha256_file(stage / QAT_KERAS_FILE),
                     float((preds == dataset.y_test).mean()), preds.astype(np.int64), metrics)


def _fallback(mixer, model, dataset: Dataset, request, progress):
    """Search the float fallback (edge_mnist.quantize.fallback) for one method's int8 files with `mixer`
    (quantize.mixed: Mixer for post-training int8, QatMixer for QAT); returns the result."""

    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    preds = model.predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured(FLOAT_KERAS, BY_KEY["keras_float32"].file, preds, float((preds == labels).mean()))
    progress(f"fallback ({mixer.method}): trying the all-int8 model against the gate")
    return search(mixer, images, labels, reference, dataset.task.class_names, request.criteria,
                  request.max_float_layers, progress)


def _fallback_details(fmt: Format, plans: dict) -> dict[str, str]:
    """What the manifest and the file say about the fallback, for an int8 format of a method that had one."""
    if fmt.method not in plans or not fmt.is_int8:
        return {}
    plan = plans[fmt.method][1]
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
           progress: Callable[[str], None] = print, fallback=None, *, wait: bool = False) -> Manifest:
    """Export every format of `methods` from DIR/model_float32.keras and write DIR/manifest.json.

    The new files and the manifest (written last) are built in a staging folder and swapped in
    whole (files.staged), so an interruption leaves the previous complete set. bench.json,
    emulate.json, check.json, report.html and the artifacts' pictures leave with the old set: they
    describe files that are replaced.
    `fallback` (edge_mnist.quantize.fallback.Request) keeps the fewest layers of each method's int8 files
    float so they pass the gate (QAT: left unannotated and fine-tuned again); when no mix does, the best one
    is written and GateFailed is raised.
    DIR's lock is held throughout (core.lock; `wait` waits for another writer).
    """

    out = Path(out)
    writable_folder(out)
    with folder_lock(out, "export", wait):
        formats = for_methods(tuple(methods))
        reference = BY_KEY["keras_float32"]
        model = load_keras(out / reference.file, sha256=recorded_keras_sha256(out))
        progress(f"evaluating the float Keras model on {len(dataset.x_test)} test images")
        accuracy = evaluate_keras(model, dataset, str(out / reference.file))
        manifest = _start_manifest(out, dataset, sha256_file(out / reference.file), accuracy)
        calib = calibration_images(dataset, calib_samples, seed)
        plans = {}
        if fallback is not None and "ptq" in methods:
            progress("fallback: calibrating the float model")
            mixer = Mixer.for_model(model, calib)
            plans["ptq"] = mixer, _fallback(mixer, model, dataset, fallback, progress)
        with staged(out, drop=(BENCH_FILE, EMULATE_FILE, CHECK_FILE, REPORT_FILE, *ARTIFACT_PLOTS),
                    last=(MANIFEST_FILE,)) as stage:
            manifest.artifacts[reference.key] = describe(stage / reference.file, reference, dataset.task, None)
            sources = {FLOAT_KERAS: model}
            if "qat" in methods:
                progress(f"quantization-aware fine-tuning for {qat_epochs} epoch(s)")
                qat, metrics = qat_finetune(model, dataset, qat_epochs, batch_size, seed, calib)
                if fallback is not None:
                    mixer = QatMixer(model, dataset, calib, qat_epochs, batch_size, seed, qat, progress=progress)
                    plans["qat"] = mixer, _fallback(mixer, model, dataset, fallback, progress)
                    chosen = plans["qat"][1].chosen.float_layers
                    qat, metrics = mixer.qat_model(chosen), mixer.metrics.get(tuple(sorted(chosen)), metrics)
                sources[QAT_KERAS], manifest.qat = qat, _qat(stage, qat, metrics, qat_epochs, dataset)
            with step("export", len(formats), unit="files") as shown:
                for fmt in formats:
                    progress(f"exporting {fmt.file}")
                    built_from = stage / BY_KEY[fmt.built_from].file if fmt.built_from in BY_KEY else None
                    notes = _fallback_details(fmt, plans)
                    job = ExportJob(sources[fmt.source], calib, stage / fmt.file, fmt, dataset.task,
                                    {**artifact_metadata(fmt, dataset.task, accuracy), **notes}, built_from)
                    if fmt.method in plans and fmt.file == FALLBACK_FILES[fmt.method]["tflite"]:
                        mixer, plan = plans[fmt.method]
                        job.int8_model = mixer.tflite(plan.chosen.float_layers)
                    for shared in [k for k, a in manifest.artifacts.items() if a.file == fmt.file]:
                        manifest.artifacts.pop(shared)  # the old entry, or another method's for a shared file (web/)
                    try:
                        exported = run_exporter(fmt, job)
                    except NotExported as exc:  # a previous export's file of this format is stale: it goes
                        progress(f"{fmt.file}: not written: {exc}")
                        (stage / fmt.file).unlink(missing_ok=True)
                        manifest.artifacts[fmt.built_from].details[f"not_written:{fmt.file}"] = str(exc)
                        shown.update(1)
                        continue
                    manifest.artifacts[fmt.key] = describe(job.path, fmt, dataset.task, exported)
                    manifest.artifacts[fmt.key].details.update(notes)
                    shown.update(1)
            manifest.save(stage)
        for _, plan in plans.values():
            if not plan.passed:
                raise _no_mix_passes(plan, out)
        return manifest


__all__ = ["export"]
