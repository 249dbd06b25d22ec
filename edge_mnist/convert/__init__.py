"""Exporters (one module per format family) and the manifest, driven by formats.FORMATS."""
from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import Dataset, encode_labels, to_float
from ..errors import EdgeMnistError
from ..formats import REFERENCE, Format, for_method
from .manifest import Manifest, describe_artifact

METHODS = ("float", "ptq", "qat")


@dataclass
class ExportJob:
    """What an exporter needs: the Keras model to convert, calibration images, and the folder."""

    model: object
    calib: np.ndarray
    out: Path
    fmt: Format
    details: dict = field(default_factory=dict)


def calibration_images(dataset: Dataset, samples: int, seed: int) -> np.ndarray:
    """A seeded random subset of the training images (never the test set) for int8 calibration."""
    if not 1 <= samples <= len(dataset.x_train):
        raise EdgeMnistError(f"--calib-samples must be 1..{len(dataset.x_train)}, not {samples}")
    idx = np.random.default_rng(seed).choice(len(dataset.x_train), samples, replace=False)
    return to_float(dataset.x_train[np.sort(idx)])


def run_exporter(job: ExportJob) -> dict:
    """Import the exporter named in the formats table and run it; returns its details."""
    module, func = job.fmt.exporter.split(":")
    getattr(importlib.import_module(module), func)(job)
    return job.details


def export(out: Path, dataset: Dataset, method: str = "ptq", calib_samples: int = 500, seed: int = 0,
           qat_epochs: int = 1, batch_size: int = 128, progress=print) -> Manifest:
    """Export every format of `method` from the trained float model in `out`; update the manifest."""
    from ..files import sha256_file
    from ..train import QAT_KERAS_FILE, evaluate_keras, load_keras, qat_finetune, save_keras

    if method not in METHODS:
        raise EdgeMnistError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    out = Path(out)
    keras_path = out / REFERENCE.file
    model = load_keras(keras_path)
    manifest = Manifest.load_or_new(out, dataset, keras_sha256=sha256_file(keras_path))
    progress(f"evaluating the float Keras model on {len(dataset.x_test)} test images")
    manifest.float_accuracy = evaluate_keras(model, dataset)
    manifest.add(REFERENCE, describe_artifact(out / REFERENCE.file, REFERENCE, {"accuracy_at_export": manifest.float_accuracy}))
    calib = calibration_images(dataset, calib_samples, seed)
    source, formats = model, for_method(method)
    if method == "qat":
        progress(f"quantization-aware fine-tuning for {qat_epochs} epoch(s)")
        source, metrics = qat_finetune(model, dataset, qat_epochs, batch_size, seed)
        save_keras(source, out / QAT_KERAS_FILE)
        preds = source.predict(to_float(dataset.x_test), batch_size=1024, verbose=0).argmax(1)
        manifest.qat = {"epochs": qat_epochs, "history": metrics, "keras_file": QAT_KERAS_FILE,
                        "keras_sha256": sha256_file(out / QAT_KERAS_FILE),
                        "qat_keras_accuracy": float((preds == dataset.y_test).mean()),
                        "predictions": encode_labels(preds)}
    for fmt in formats:
        progress(f"exporting {fmt.file}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            details = run_exporter(ExportJob(source, calib, out, fmt, {"calibration_samples": calib_samples, "dataset": dataset.name}))
            manifest.add(fmt, describe_artifact(out / fmt.file, fmt, details))
    manifest.save()
    return manifest


__all__ = ["export", "ExportJob", "calibration_images", "Manifest", "METHODS"]
