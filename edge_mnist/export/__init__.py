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
from edge_mnist.folder.layout import ARTIFACT_PLOTS, BENCH_FILE, CHECK_FILE, EMULATE_FILE, MANIFEST_FILE, REPORT_FILE
from edge_mnist.folder.records import Manifest, QatRecord
from edge_mnist.folder.verify import recorded_keras_sha256
from edge_mnist.gate import Measured
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.quantize.equalize import BY_DEFAULT, DETAILS_KEY, equalize
from edge_mnist.quantize.fallback import search
from edge_mnist.quantize.mixed import Mixer
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


def _qat(stage: Path, model, dataset: Dataset, calib: np.ndarray, epochs: int, batch_size: int, seed: int,
         progress) -> tuple[object, QatRecord]:
    """Fine-tune a QAT copy of the float model (ranges calibrated on `calib` first), save it and
    record its test-set predictions."""

    progress(f"quantization-aware fine-tuning for {epochs} epoch(s)")
    qat, metrics = qat_finetune(model, dataset, epochs, batch_size, seed, calib)
    save_keras(qat, stage / QAT_KERAS_FILE)
    preds = qat.predict(to_float(dataset.x_test), batch_size=1024, verbose=0).argmax(1)
    return qat, QatRecord(epochs, QAT_KERAS_FILE, sha256_file(stage / QAT_KERAS_FILE),
                          float((preds == dataset.y_test).mean()), preds.astype(np.int64), metrics)


def _fallback(model, equalized, calib: np.ndarray, dataset: Dataset, request, progress):
    """Search the float fallback (edge_mnist.quantize.fallback) for the post-training int8 files of `model`,
    trying the all-int8 model of `equalized` (a cross-layer-equalized copy; None when `model` is one) before
    any float layer."""

    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    preds = model.predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured(FLOAT_KERAS, BY_KEY["keras_float32"].file, preds, float((preds == labels).mean()))
    progress("fallback: calibrating, then trying the all-int8 model against the gate")
    alternative = None if equalized is None else (lambda: Mixer.for_model(equalized, calib))
    return search(Mixer.for_model(model, calib), images, labels, reference, dataset.task.class_names,
                  request.criteria, request.max_float_layers, progress, equalized=alternative)


def _ptq_details(fmt: Format, plan, equalization) -> dict[str, str]:
    """What the manifest and the file say about the fallback and the equalization (quantize.equalize.Equalization,
    None when the files were not equalized), for a post-training int8 format."""
    if fmt.method != "ptq" or not fmt.is_int8:
        return {}
    details = {DETAILS_KEY: equalization.describe()} if equalization is not None else {}
    if plan is None:
        return details
    cost = plan.cost_note(fmt.runtime or "")
    return {**details, **plan.describe(), **({"fallback_cost": cost} if cost else {})}


def _ptq_model(model, choice: bool | None, fallback, calib: np.ndarray, dataset: Dataset, progress):
    """The Keras model the post-training int8 files are converted from, its Equalization (None when not
    equalized) and the fallback's result (None without `fallback`). `choice` True: the equalized copy; False:
    never; None: quantize.equalize.BY_DEFAULT, and the fallback may choose the equalized copy."""
    equalize_first = BY_DEFAULT if choice is None else choice
    may_try = choice is None and fallback is not None
    equalized, record = equalize(model) if equalize_first or may_try else (None, None)
    if equalize_first:
        progress(f"equalizing: {record.describe()}")
    start = equalized if equalize_first else model
    plan = None
    if fallback is not None:
        plan = _fallback(start, equalized if may_try and not equalize_first else None, calib, dataset, fallback,
                         progress)
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
    `fallback` (edge_mnist.quantize.fallback.Request) keeps the fewest layers of the post-training int8 files
    float so they pass the gate (after trying cross-layer equalization with none); when no mix does, the best
    one is written and GateFailed is raised. `equalize` True converts the post-training int8 files from the
    cross-layer-equalized model (quantize.equalize), False never; None (unset) follows quantize.equalize.BY_DEFAULT
    and lets the fallback try it.
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
        if fallback is not None and "ptq" not in methods:
            raise EdgeMnistError("--fallback applies to post-training int8: use --method ptq or both")
        choice = equalize if "ptq" in methods else False  # only post-training int8 is equalized
        ptq_model, equalization, plan = _ptq_model(model, choice, fallback, calib, dataset, progress)
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
                    notes = _ptq_details(fmt, plan, equalization)
                    source = ptq_model if fmt.key == "tflite_int8" else sources[fmt.source]
                    job = ExportJob(source, calib, stage / fmt.file, fmt, dataset.task,
                                    {**artifact_metadata(fmt, dataset.task, accuracy), **notes}, built_from)
                    if plan is not None and fmt.key == "tflite_int8":
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
        if plan is not None and not plan.passed:
            raise _no_mix_passes(plan, out)
        return manifest


__all__ = ["export"]
