"""Accuracy and latency of every artifact in an export folder (numpy + the device runtimes).

The float Keras model is measured too when TensorFlow is installed; on a device without it
the row is skipped and `check` falls back to the float accuracy recorded in the manifest.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

import numpy as np

from .convert.manifest import Manifest
from .data import Dataset, decode_labels, encode_labels, to_float
from .errors import EdgeMnistError, MissingDependency
from .files import atomic_write_json
from .formats import FORMATS
from .runtime import open_model
from .timing import latency_us, throughput_ips

BENCH_FILE = "bench.json"
SCHEMA = 1


def machine_info() -> dict:
    """CPU model, SIMD flags that matter for int8/float kernels, core count and platform,
    recorded with every measurement."""
    try:
        fields = [line.partition(":") for line in Path("/proc/cpuinfo").read_text().splitlines()]
    except OSError:
        fields = []
    first = {}
    for key, _, value in fields:
        first.setdefault(key.strip(), value.strip())
    cpu = first.get("model name") or platform.processor() or platform.machine()
    listed = (first.get("flags") or first.get("Features", "")).split()  # x86 says flags, ARM Features
    flags = sorted(f for f in listed if f.startswith(("avx", "fma", "sse4", "amx", "asimd")))
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "system": platform.platform(),
            "flags": flags}


def measure(runner, images: np.ndarray, labels: np.ndarray, runs: int, warmup: int, batch: int = 256) -> dict:
    """Accuracy, predictions, single-image latency and batch throughput of one opened model."""
    preds = runner.predict(images).argmax(1)
    batch_call = runner.bound_call(images[:batch])
    return {
        "accuracy": float((preds == labels).mean()),
        "latency_us": latency_us(runner.bound_call(images[:1]), runs=runs, warmup=warmup),
        "throughput_ips": throughput_ips(batch_call, batch=min(batch, len(images))),
        "predictions": encode_labels(preds),
    }


def bench(out: Path, dataset: Dataset, threads: int = 1, runs: int = 1000, warmup: int = 100,
          progress=print) -> dict:
    """Measure every artifact listed in DIR/manifest.json and write DIR/bench.json atomically."""
    out = Path(out)
    manifest = Manifest.load(out)
    if manifest.dataset_fingerprint != dataset.test_fingerprint():
        raise EdgeMnistError(f"{out / 'manifest.json'}: artifacts were exported for {manifest.dataset} with other "
                             f"test data than {dataset.source}; pass the same --dataset/--data-dir")
    images, labels = to_float(dataset.x_test), dataset.y_test
    rows, skipped = [], []
    paths = {fmt.key: manifest.verify(fmt.key) for fmt in FORMATS if fmt.key in manifest.artifacts}
    for fmt in (f for f in FORMATS if f.key in paths):
        path = paths[fmt.key]
        try:
            runner = open_model(path, threads)
        except MissingDependency as exc:
            skipped.append({"artifact": fmt.file, "reason": str(exc)})
            progress(f"skipping {fmt.file}: {exc}")
            continue
        progress(f"measuring {fmt.file} ({fmt.runtime}, {fmt.precision})")
        entry = manifest.artifacts[fmt.key]
        row = {"artifact": fmt.file, "key": fmt.key, "format": fmt.runtime, "precision": fmt.precision,
               "method": fmt.method, "size_bytes": entry["size_bytes"], "sha256": entry["sha256"]}
        row.update(measure(runner, images, labels, runs, warmup))
        rows.append(row)
    if not rows:
        raise EdgeMnistError(f"{out}: no artifact could be measured")
    add_agreement(rows, manifest.qat)
    result = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "dataset": dataset.name, "dataset_fingerprint": manifest.dataset_fingerprint,
              "n_samples": int(len(labels)), "threads": threads, "timing": {"runs": runs, "warmup": warmup},
              "float_accuracy_manifest": manifest.float_accuracy, "machine": machine_info(),
              "labels": encode_labels(labels), "rows": rows, "skipped": skipped}
    atomic_write_json(out / BENCH_FILE, result)
    return result


def reference_row(rows: list[dict]) -> dict | None:
    """The float model every artifact is compared with: Keras, else float ONNX, else float TFLite."""
    for key in ("keras_float32", "onnx_float32", "tflite_float32"):
        for row in rows:
            if row.get("key") == key:
                return row
    return None


def source_predictions(row: dict, ref_preds: np.ndarray | None, qat: dict | None) -> np.ndarray | None:
    """Predictions of the float model an artifact was made from: the QAT Keras model for QAT
    artifacts (recorded at export), the float reference (`ref_preds`) for everything else."""
    if row.get("method") == "qat":
        return decode_labels(qat["predictions"], "manifest.json qat") if qat and qat.get("predictions") else None
    return ref_preds


def add_agreement(rows: list[dict], qat: dict | None) -> None:
    """Agreement of each artifact with the float reference, and with the model it was quantized from."""
    ref = reference_row(rows)
    ref_preds = decode_labels(ref["predictions"], "bench") if ref else None
    for row in rows:
        preds = decode_labels(row["predictions"], "bench")
        row["agreement"] = float((preds == ref_preds).mean()) if ref_preds is not None else None
        row["agreement_with"] = ref["key"] if ref else None
        src = source_predictions(row, ref_preds, qat)
        row["source_agreement"] = float((preds == src).mean()) if src is not None else None


__all__ = ["bench", "BENCH_FILE", "measure", "decode_labels", "encode_labels", "reference_row"]
