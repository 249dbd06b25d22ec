"""The bench stage: accuracy and latency of every artifact in a folder under its own runtime.

Needs numpy and the device runtimes only. A file is measured under every runtime its format
lists (an int8 .tflite under LiteRT and, accuracy only, TensorFlow Lite Micro). The float Keras
model is measured too when TensorFlow is installed; on a device without it that row is skipped and the float ONNX or
TFLite model is the reference (records.BenchResult.reference).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, MissingDependency
from edge_mnist.core.files import writable_folder
from edge_mnist.core.lock import folder_lock
from edge_mnist.core.machine import machine_info
from edge_mnist.core.progress import say, silent, step
from edge_mnist.core.timing import latency_us, throughput_ips
from edge_mnist.data import Dataset, check_dataset, stratified_indices, to_float
from edge_mnist.folder.layout import LATENCY_FILE, MANIFEST_FILE, REPORT_FILE
from edge_mnist.folder.records import BenchResult, BenchRow, Manifest, Skipped, Timing
from edge_mnist.folder.verify import open_artifact, refuse_unlisted
from edge_mnist.registry.formats import (
    FORMATS,
    RUNTIMES,
    TFLM_IMAGES,
    chosen_runs,
    left_out,
)
from edge_mnist.render.tables import subset_phrase


PREDICT_CHUNK = 500  # images per progress update of the accuracy pass
THROUGHPUT_SECONDS, THROUGHPUT_REPEATS = 1.0, 5  # per timed artifact: batch throughput's time budget


def measure(runner, images: np.ndarray, labels: np.ndarray, runs: int, warmup: int, batch: int = 256,
            timed: bool = True, shown=None, throughput_seconds: float = THROUGHPUT_SECONDS) -> dict:
    """Accuracy, predictions, single-image latency and batch throughput of one opened model
    (timing left out, None, when `timed` is False). `shown` (a progress bar over the test images
    plus the warm-up and timed runs) is advanced between passes, never inside the timed loop.
    Throughput is the median of THROUGHPUT_REPEATS loops sharing `throughput_seconds` (each loop at
    least one batch)."""
    shown = shown or silent()
    preds = []
    for start in range(0, len(images), PREDICT_CHUNK):
        preds.append(runner.predict(images[start:start + PREDICT_CHUNK]).argmax(1))
        shown.update(len(preds[-1]))
    preds = np.concatenate(preds)
    latency = latency_us(runner.bound_call(images[:1]), runs=runs, warmup=warmup) if timed else None
    shown.update(runs + warmup if timed else 0)
    return {
        "accuracy": float((preds == labels).mean()),
        "predictions": preds.astype(np.int64),
        "latency_us": latency,
        "throughput_ips": throughput_ips(runner.bound_call(images[:batch]), batch=min(batch, len(images)),
                                         repeats=THROUGHPUT_REPEATS,
                                         min_seconds=throughput_seconds / THROUGHPUT_REPEATS) if timed else None,
    }


def bench(out: Path, dataset: Dataset, threads: int = 1, runs: int = 1000, warmup: int = 100,
          progress: Callable[[str], None] = say, skip_runtimes: tuple[str, ...] = (),
          tflm_images: int = TFLM_IMAGES, *, wait: bool = False,
          throughput_seconds: float = THROUGHPUT_SECONDS) -> BenchResult:
    """Measure every runnable artifact listed in DIR/manifest.json (under every runtime of its format,
    but the optional ones in `skip_runtimes`) and write DIR/bench.json atomically; the report page and
    latency picture of earlier timings are removed (`report` draws them anew). A `subset` runtime (TFLM)
    measures accuracy on `tflm_images` test images stratified by class (0: all), its row lists them.
    DIR's lock is held throughout (core.lock; `wait` waits for another writer)."""
    out = Path(out)
    writable_folder(out)
    with folder_lock(out, "bench", wait):
        manifest = Manifest.load(out)
        check_dataset(manifest, dataset, out / MANIFEST_FILE)
        refuse_unlisted(out, manifest)
        images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
        subset = stratified_indices(labels, tflm_images)
        listed = [f for f in FORMATS if f.key in manifest.artifacts]
        present = [run for f in listed for run in chosen_runs(f, skip_runtimes)]
        runners = {}
        skipped = [Skipped(run.label, why) for run, why in left_out(listed, skip_runtimes)]
        for run in present:  # every file is verified before anything is measured
            try:
                runners[run.key] = open_artifact(out, manifest, run.key, threads)
            except MissingDependency as exc:
                skipped.append(Skipped(run.label, str(exc)))
                progress(f"skipping {run.label}: {exc}")
        rows = []
        for run in (r for r in present if r.key in runners):
            timed, indices = RUNTIMES[run.runtime].timed, subset if RUNTIMES[run.runtime].subset else None
            chosen = slice(None) if indices is None else indices
            artifact = manifest.artifacts[run.fmt.key]
            notes = [run.runtime] + ([] if timed else ["accuracy only"])
            notes += [] if indices is None else [subset_phrase(len(indices), len(labels))]
            total = len(labels[chosen]) + (runs + warmup if timed else 0)
            with step(f"{run.fmt.file} ({', '.join(notes)})", total) as shown:
                figures = measure(runners[run.key], images[chosen], labels[chosen], runs, warmup, timed=timed,
                                  shown=shown, throughput_seconds=throughput_seconds)
            rows.append(BenchRow(run.key, run.fmt.file, artifact.sha256, artifact.size_bytes, **figures,
                                 indices=indices))
        if not rows:
            raise EdgeMnistError(f"{out}: no artifact could be measured")
        result = BenchResult(dataset=dataset.name, user_data=dataset.user_data,
                             dataset_fingerprint=manifest.dataset_fingerprint, threads=threads,
                             timing=Timing(runs, warmup, throughput_seconds), machine=machine_info(), labels=labels,
                             rows=rows, skipped=skipped)
        result.add_agreement(manifest)
        result.save(out)
        for stale in (out / REPORT_FILE, out / LATENCY_FILE):  # they show the previous timings
            stale.unlink(missing_ok=True)
        return result


__all__ = ["bench", "measure"]
