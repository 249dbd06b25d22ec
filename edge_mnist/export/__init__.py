"""The export stage: every format of the chosen methods from the trained float model, plus the manifest.

One exporter per format family lives beside this file (tflite.py, onnx.py, ort.py, c_array.py); which one writes a
format, and from what, is the format registry's business (edge_mnist.registry.formats). What each method's files
are converted from is quantize.plan's. An exporter takes an ExportJob, writes job.path and returns an Exported
record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.config import ExportConfig
from edge_mnist.core.errors import GateFailed
from edge_mnist.core.files import sha256_file, staged
from edge_mnist.core.keras_io import load_keras, save_keras
from edge_mnist.core.progress import step
from edge_mnist.data import Dataset, to_float
from edge_mnist.export.job import ExportJob, NotExported, artifact_metadata, describe, run_exporter
from edge_mnist.folder.layout import ARTIFACT_PLOTS, BENCH_FILE, CHECK_FILE, EMULATE_FILE, MANIFEST_FILE, REPORT_FILE
from edge_mnist.folder.opener import Folder
from edge_mnist.folder.records import Manifest, QatRecord
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.quantize.plan import MethodPlan, QatModel, plan
from edge_mnist.registry.formats import BY_KEY, QAT_KERAS_FILE, Format, for_methods, rebuilt
from edge_mnist.train import evaluate_keras


def _start_manifest(old: Manifest | None, dataset: Dataset, keras_sha256: str, float_accuracy: float) -> Manifest:
    """The folder's manifest (`old`) when it belongs to the same float model and test data, else a new one."""
    fresh = Manifest(dataset.task, dataset.test_fingerprint(), keras_sha256, float_accuracy,
                     user_data=dataset.user_data)
    if old is None or (old.keras_sha256, old.dataset_fingerprint) != (keras_sha256, fresh.dataset_fingerprint):
        return fresh
    old.float_accuracy, old.versions, old.created = float_accuracy, fresh.versions, fresh.created
    old.user_data = fresh.user_data  # where the data is now, should it have moved
    return old


def _qat(stage: Path, qat: QatModel, dataset: Dataset) -> QatRecord:
    """Save the QAT model and record its test-set predictions."""
    save_keras(qat.model, stage / QAT_KERAS_FILE)
    preds = qat.model.predict(to_float(dataset.x_test), batch_size=1024, verbose=0).argmax(1)
    return QatRecord(qat.epochs, QAT_KERAS_FILE, sha256_file(stage / QAT_KERAS_FILE),
                     float((preds == dataset.y_test).mean()), preds.astype(np.int64), qat.metrics)


def _no_mix_passes(plan: MethodPlan, out: Path) -> GateFailed:
    """exit 1 with the best mix's figures: the files hold it, and the gate will fail it too."""
    best = plan.fallback.chosen
    return GateFailed("no mix of float layers passes the gate; best: {}, accuracy {} (failed: {}); {} holds that mix"
                      .format(best.label, ", ".join(f"{k} {v:.4f}" for k, v in best.accuracy.items()),
                              "; ".join(best.failed[:3]), out), label="fallback failed")


def _job(fmt: Format, stage: Path, model, plans: dict[str, MethodPlan], calib: np.ndarray, dataset: Dataset,
         accuracy: float) -> ExportJob:
    """What the exporter of `fmt` gets: its method's planned model (the float model for the float files), the
    metadata the file carries, and the fallback's chosen .tflite for the method's int8 .tflite."""
    plan = plans.get(fmt.method)
    notes = plan.notes(fmt) if plan is not None and fmt.is_int8 else {}
    built_from = stage / BY_KEY[fmt.built_from].file if fmt.built_from in BY_KEY else None
    job = ExportJob(model if plan is None else plan.model, calib, stage / fmt.file, fmt, dataset.task,
                    {**artifact_metadata(fmt, dataset.task, accuracy), **notes}, built_from, notes=notes)
    if plan is not None and fmt.key == rebuilt(plan.method)["tflite"].key:
        job.int8_model = plan.tflite
    return job


def _write(fmt: Format, job: ExportJob, manifest: Manifest, progress) -> None:
    """Run one exporter and list its file in the manifest (replacing the old entry, or another method's for a
    shared file such as web/); a file its exporter cannot make is left out, with the reason recorded on the file
    it is built from."""
    progress(f"exporting {fmt.file}")
    for shared in [k for k, a in manifest.artifacts.items() if a.file == fmt.file]:
        manifest.artifacts.pop(shared)
    try:
        exported = run_exporter(fmt, job)
    except NotExported as exc:  # a previous export's file of this format is stale: it goes
        progress(f"{fmt.file}: not written: {exc}")
        job.path.unlink(missing_ok=True)
        manifest.artifacts[fmt.built_from].details[f"not_written:{fmt.file}"] = str(exc)
        return
    manifest.artifacts[fmt.key] = describe(job.path, fmt, job.task, exported)
    manifest.artifacts[fmt.key].details.update(job.notes)


def export(folder: Folder, config: ExportConfig = ExportConfig(), progress: Callable[[str], None] = print) -> Manifest:
    """Export every format of config.methods from DIR/model_float32.keras, write DIR/manifest.json and put the new
    manifest in `folder`.

    The new files and the manifest (written last) are built in a staging folder and swapped in
    whole (files.staged), so an interruption leaves the previous complete set. bench.json,
    emulate.json, check.json, report.html and the artifacts' pictures leave with the old set: they
    describe files that are replaced. What each method's files are converted from is planned first
    (quantize.plan: equalization, the QAT fine-tune, --fallback's float layers); when the fallback finds no mix
    that passes the gate, the best one is written and GateFailed is raised. The caller holds DIR's lock
    (folder.opener.open_folder).
    """

    out, dataset, config = folder.path, folder.dataset, config.validate()
    formats = for_methods(tuple(config.methods))
    reference = BY_KEY["keras_float32"]
    model = load_keras(out / reference.file, sha256=folder.keras_sha256)
    progress(f"evaluating the float Keras model on {len(dataset.x_test)} test images")
    accuracy = evaluate_keras(model, dataset, str(out / reference.file))
    manifest = _start_manifest(folder.manifest, dataset, sha256_file(out / reference.file), accuracy)
    calib = calibration_images(dataset, config.calib_samples, config.seed)
    plans = plan(model, dataset, calib, config, progress)
    with staged(out, drop=(BENCH_FILE, EMULATE_FILE, CHECK_FILE, REPORT_FILE, *ARTIFACT_PLOTS),
                last=(MANIFEST_FILE,)) as stage:
        manifest.artifacts[reference.key] = describe(stage / reference.file, reference, dataset.task, None)
        for planned in (p for p in plans.values() if p.qat is not None):
            manifest.qat = _qat(stage, planned.qat, dataset)
        with step("export", len(formats), unit="files") as shown:
            for fmt in formats:
                _write(fmt, _job(fmt, stage, model, plans, calib, dataset, accuracy), manifest, progress)
                shown.update(1)
        manifest.save(stage)
    folder.manifest = manifest
    failed = next((p for p in plans.values() if p.failed), None)
    if failed is not None:
        raise _no_mix_passes(failed, out)
    return manifest


__all__ = ["export"]
