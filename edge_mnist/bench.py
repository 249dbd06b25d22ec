"""The bench stage: accuracy and latency of every artifact in a folder under its own runtime.

Needs numpy and the device runtimes only. A file is measured under every runtime its format
lists (an int8 .tflite under LiteRT and, accuracy only, TensorFlow Lite Micro). The float Keras
model is measured too when TensorFlow is installed; on a device without it that row is skipped and the float ONNX or
TFLite model is the reference (records.BenchResult.reference).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edge_mnist.config import THROUGHPUT_SECONDS, BenchConfig
from edge_mnist.core.errors import EdgeMnistError, MissingDependency
from edge_mnist.core.machine import machine_info
from edge_mnist.core.progress import say, silent, step
from edge_mnist.core.timing import latency_us, throughput_ips
from edge_mnist.data import stratified_indices, to_float
from edge_mnist.folder.layout import LATENCY_FILE, REPORT_FILE
from edge_mnist.folder.opener import Folder
from edge_mnist.folder.records import BenchResult, BenchRow, Skipped, Timing
from edge_mnist.folder.verify import open_artifact
from edge_mnist.registry.formats import FORMATS, RUNTIMES, Run, chosen_runs, left_out
from edge_mnist.render.tables import subset_phrase


PREDICT_CHUNK = 500  # images per progress update of the accuracy pass
THROUGHPUT_REPEATS = 5  # batch throughput: the median of this many loops sharing THROUGHPUT_SECONDS


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


def bench(folder: Folder, config: BenchConfig = BenchConfig(), progress: Callable[[str], None] = say) -> BenchResult:
    """Measure every runnable artifact listed in DIR/manifest.json (under every runtime of its format,
    but the optional ones in config.skip_runtimes) and write DIR/bench.json atomically; the report page and
    latency picture of earlier timings are removed (`report` draws them anew). A `subset` runtime (TFLM)
    measures accuracy on config.tflm_images test images stratified by class (0: all), its row lists them.
    The caller holds DIR's lock (folder.opener.open_folder)."""
    out, dataset, manifest, config = folder.path, folder.dataset, folder.exported, config.validate()
    listed = [f for f in FORMATS if f.key in manifest.artifacts]
    present = [run for f in listed for run in chosen_runs(f, config.skip_runtimes)]
    runners, skipped = _open_runs(folder, present, config.threads, progress)
    skipped = [Skipped(run.label, why) for run, why in left_out(listed, config.skip_runtimes)] + skipped
    rows = _measure_runs(folder, [r for r in present if r.key in runners], runners, config)
    if not rows:
        raise EdgeMnistError(f"{out}: no artifact could be measured")
    result = BenchResult(dataset=dataset.name, user_data=dataset.user_data,
                         dataset_fingerprint=manifest.dataset_fingerprint, threads=config.threads,
                         timing=Timing(config.runs, config.warmup, config.throughput_seconds), machine=machine_info(),
                         labels=dataset.y_test.astype(np.int64), rows=rows, skipped=skipped)
    result.add_agreement(manifest)
    result.save(out)
    for stale in (out / REPORT_FILE, out / LATENCY_FILE):  # they show the previous timings
        stale.unlink(missing_ok=True)
    return result


def _open_runs(folder: Folder, runs: list[Run], threads: int, progress) -> tuple[dict, list[Skipped]]:
    """Every run opened (and so verified) before anything is measured; one whose runtime is not installed is
    skipped, with the reason."""
    runners, skipped = {}, []
    for run in runs:
        try:
            runners[run.key] = open_artifact(folder.path, folder.exported, run.key, threads)
        except MissingDependency as exc:
            skipped.append(Skipped(run.label, str(exc)))
            progress(f"skipping {run.label}: {exc}")
    return runners, skipped


def _measure_runs(folder: Folder, runs: list[Run], runners: dict, config: BenchConfig) -> list[BenchRow]:
    """One row per opened run: a `subset` runtime (TFLM) on its stratified images, accuracy only when untimed."""
    dataset, manifest = folder.dataset, folder.exported
    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    subset = stratified_indices(labels, config.tflm_images)
    rows = []
    for run in runs:
        timed, indices = RUNTIMES[run.runtime].timed, subset if RUNTIMES[run.runtime].subset else None
        chosen = slice(None) if indices is None else indices
        artifact = manifest.artifacts[run.fmt.key]
        notes = [run.runtime] + ([] if timed else ["accuracy only"])
        notes += [] if indices is None else [subset_phrase(len(indices), len(labels))]
        total = len(labels[chosen]) + (config.runs + config.warmup if timed else 0)
        with step(f"{run.fmt.file} ({', '.join(notes)})", total) as shown:
            figures = measure(runners[run.key], images[chosen], labels[chosen], config.runs, config.warmup,
                              timed=timed, shown=shown, throughput_seconds=config.throughput_seconds)
        rows.append(BenchRow(run.key, run.fmt.file, artifact.sha256, artifact.size_bytes, **figures,
                             indices=indices))
    return rows


__all__ = ["bench", "measure"]
