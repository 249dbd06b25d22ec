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
from edge_mnist.quantize.equalize import BY_DEFAULT, DETAILS_KEY, equalize
from edge_mnist.quantize.fallback import search
from edge_mnist.quantize.mixed import Mixer, QatMixer
from edge_mnist.quantize.qat import qat_finetune
from edge_mnist.registry.formats import BY_KEY, FLOAT_KERAS, QAT_KERAS, QAT_KERAS_FILE, Format, for_methods
from edge_mnist.train import evaluate_keras


def _start_manifest(out: Path, dataset: Dataset, keras_sha256: str, float_accuracy: float) -> Manifest:
    """The folder's manifest when it belongs to the same float model and test data, else a new one."""
    fresh = Manifest(dataset.task, dataset.test_fingerprint(), keras_sha256, float_accuracy,
                     user_data=dataset.user_data)
    try:
        old = Manifest.load(out)
    except EdgeMnistError:
        return fresh
    if (old.keras_sha256, old.dataset_fingerprint) != (keras_sha256, fresh.dataset_fingerprint):
        return fresh
    old.float_accuracy, old.versions, old.created = float_accuracy, fresh.versions, fresh.created
    old.user_data = fresh.user_data  # where the data is now, should it have moved
    return old


def _qat(stage: Path, qat, metrics: list, epochs: int, dataset: Dataset) -> QatRecord:
    """Save the QAT model and record its test-set predictions."""
    save_keras(qat, stage / QAT_KERAS_FILE)
    preds = qat.predict(to_float(dataset.x_test), batch_size=1024, verbose=0).argmax(1)
    return QatRecord(epochs, QAT_KERAS_FILE, sha256_file(stage / QAT_KERAS_FILE),
                     float((preds == dataset.y_test).mean()), preds.astype(np.int64), metrics)


def _fallback(mixer, model, dataset: Dataset, request, progress, equalized=None):
    """Search the float fallback (edge_mnist.quantize.fallback) for one method's int8 files with `mixer`
    (quantize.mixed: Mixer for post-training int8, QatMixer for QAT), gated against the float `model`;
    `equalized` makes the Mixer of a cross-layer-equalized copy, tried before any float layer."""

    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    preds = model.predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured(FLOAT_KERAS, BY_KEY["keras_float32"].file, preds, float((preds == labels).mean()))
    progress(f"fallback ({mixer.method}): trying the all-int8 model against the gate")
    return search(mixer, images, labels, reference, dataset.task.class_names, request.criteria,
                  request.max_float_layers, progress, equalized=equalized)


def _int8_details(fmt: Format, plans: dict, equalization) -> dict[str, str]:
    """What the manifest and the file say about the fallback (`plans` by method) and the equalization
    (quantize.equalize.Equalization of the post-training files, None when not equalized), for an int8 format."""
    if not fmt.is_int8:
        return {}
    details = {DETAILS_KEY: equalization.describe()} if equalization is not None and fmt.method == "ptq" else {}
    plan = plans.get(fmt.method)
    if plan is None:
        return details
    cost = plan.cost_note(fmt.runtime or "")
    return {**details, **plan.describe(), **({"fallback_cost": cost} if cost else {})}


def _ptq_model(model, choice: bool | None, fallback, calib: np.ndarray, dataset: Dataset, progress):
    """The Keras model the post-training int8 files are converted from, its Equalization (None when not
    equalized) and the fallback's result (None without `fallback`). `choice` True: the equalized copy; False:
    never; None: quantize.equalize.BY_DEFAULT, and the fallback may choose the equalized copy."""
    equalize_first = BY_DEFAULT if choice is None else choice
    may_try = choice is None and fallback is not None and not equalize_first
    equalized, record = equalize(model) if equalize_first or may_try else (None, None)
    if equalize_first:
        progress(f"equalizing: {record.describe()}")
    plan = None
    if fallback is not None:
        progress("fallback: calibrating the float model")
        start = Mixer.for_model(equalized if equalize_first else model, calib)
        alternative = (lambda: Mixer.for_model(equalized, calib)) if may_try else None
        plan = _fallback(start, model, dataset, fallback, progress, alternative)
    if equalize_first or (plan is not None and plan.chosen.equalized):
        return equalized, record, plan
    return model, None, plan


def _no_mix_passes(plan, out: Path) -> GateFailed:
    """exit 1 with the best mix's figures: the files hold it, and the gate will fail it too."""
    best = plan.chosen
    return GateFailed("no mix of float layers passes the gate; best: {}, accuracy {} (failed: {}); {} holds that mix"
                      .format(best.label, ", ".join(f"{k} {v:.4f}" for k, v in best.accuracy.items()),
                              "; ".join(best.failed[:3]), out), label="fallback failed")


def export(out: Path, dataset: Dataset, methods: tuple[str, ...] = ("ptq",), calib_samples: int = 500,
           seed: int = 0, qat_epochs: int = 1, batch_size: int = 128,
           progress: Callable[[str], None] = print, fallback=None, *, equalize: bool | None = None,
           wait: bool = False) -> Manifest:
    """Export every format of `methods` from DIR/model_float32.keras and write DIR/manifest.json.

    The new files and the manifest (written last) are built in a staging folder and swapped in
    whole (files.staged), so an interruption leaves the previous complete set. bench.json,
    emulate.json, check.json, report.html and the artifacts' pictures leave with the old set: they
    describe files that are replaced.
    `fallback` (edge_mnist.quantize.fallback.Request) keeps the fewest layers of each method's int8 files
    float so they pass the gate (QAT: left unannotated and fine-tuned again; post-training: after trying
    cross-layer equalization with none); when no mix does, the best one is written and GateFailed is raised.
    `equalize` True converts the post-training int8 files from the cross-layer-equalized model
    (quantize.equalize), False never; None (unset) follows quantize.equalize.BY_DEFAULT and lets the fallback
    try it.
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
        plans, ptq_model, equalization = {}, model, None
        if "ptq" in methods:
            ptq_model, equalization, plans["ptq"] = _ptq_model(model, equalize, fallback, calib, dataset, progress)
        with staged(out, drop=(BENCH_FILE, EMULATE_FILE, CHECK_FILE, REPORT_FILE, *ARTIFACT_PLOTS),
                    last=(MANIFEST_FILE,)) as stage:
            manifest.artifacts[reference.key] = describe(stage / reference.file, reference, dataset.task, None)
            sources = {FLOAT_KERAS: model}
            if "qat" in methods:
                progress(f"quantization-aware fine-tuning for {qat_epochs} epoch(s)")
                qat, metrics = qat_finetune(model, dataset, qat_epochs, batch_size, seed, calib)
                if fallback is not None:
                    mixer = QatMixer(model, dataset, calib, qat_epochs, batch_size, seed, qat, progress=progress)
                    plans["qat"] = _fallback(mixer, model, dataset, fallback, progress)
                    chosen = plans["qat"].chosen.float_layers
                    qat, metrics = mixer.qat_model(chosen), mixer.metrics.get(tuple(sorted(chosen)), metrics)
                sources[QAT_KERAS], manifest.qat = qat, _qat(stage, qat, metrics, qat_epochs, dataset)
            with step("export", len(formats), unit="files") as shown:
                for fmt in formats:
                    progress(f"exporting {fmt.file}")
                    built_from = stage / BY_KEY[fmt.built_from].file if fmt.built_from in BY_KEY else None
                    notes = _int8_details(fmt, plans, equalization)
                    source = ptq_model if fmt.method == "ptq" else sources[fmt.source]  # equalized or not
                    job = ExportJob(source, calib, stage / fmt.file, fmt, dataset.task,
                                    {**artifact_metadata(fmt, dataset.task, accuracy), **notes}, built_from)
                    plan = plans.get(fmt.method)
                    if plan is not None and fmt.file == FALLBACK_FILES[fmt.method]["tflite"]:
                        job.int8_model = plan.mixer.tflite(plan.chosen.float_layers)
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
        for plan in plans.values():
            if plan is not None and not plan.passed:
                raise _no_mix_passes(plan, out)
        return manifest


__all__ = ["export"]
