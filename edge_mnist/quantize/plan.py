"""Quantization planned before anything is written: per method, the Keras model its files are converted from, the
int8 .tflite the fallback chose (when it chose one) and what the files say about how they were made.

Export asks `plan` once and then only runs exporters: each quantized method of registry.methods names its step
here (Method.planner), so a new precision is its registry entry and one step. Post-training: cross-layer
equalization (quantize.equalize) and, with `--fallback`, the fewest float layers in one calibration
(quantize.mixed.Mixer, quantize.fallback); QAT: the fine-tune (quantize.qat) and, with `--fallback`, the fewest
layers left unannotated and fine-tuned again (quantize.mixed.QatMixer).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge_mnist.config import ExportConfig
from edge_mnist.data import Dataset, to_float
from edge_mnist.gate import Measured
from edge_mnist.quantize.equalize import BY_DEFAULT, DETAILS_KEY, Equalization, equalize
from edge_mnist.quantize.fallback import Fallback, search
from edge_mnist.quantize.mixed import Mixer, QatMixer
from edge_mnist.quantize.qat import qat_finetune
from edge_mnist.registry.formats import BY_KEY, Format
from edge_mnist.registry.methods import FLOAT_KERAS, Method


@dataclass
class QatModel:
    """The QAT fine-tune export saves and records: the model and its per-epoch metrics."""

    model: object
    metrics: dict
    epochs: int


@dataclass
class MethodPlan:
    """One method's files before they are written: the Keras model they are converted from, the fallback's search
    (None without --fallback), the equalization applied (None: not equalized) and, for QAT, the fine-tune."""

    method: Method
    model: object
    fallback: Fallback | None = None
    equalization: Equalization | None = None
    qat: QatModel | None = None

    @property
    def tflite(self) -> bytes | None:
        """The int8 .tflite the fallback chose (a mix with float layers, or the equalized all-int8 model), written
        instead of converting; None: the exporter converts `model`."""
        if self.fallback is None:
            return None
        return self.fallback.mixer.tflite(self.fallback.chosen.float_layers)

    @property
    def failed(self) -> bool:
        """True when the fallback found no mix that passes the gate (the files hold the best one)."""
        return self.fallback is not None and not self.fallback.passed

    def notes(self, fmt: Format) -> dict[str, str]:
        """What the manifest and the file of `fmt` (one of this method's int8 formats) say about the equalization
        and the fallback (its cost measured under the format's runtime)."""
        details = {DETAILS_KEY: self.equalization.describe()} if self.equalization is not None else {}
        if self.fallback is None:
            return details
        cost = self.fallback.cost_note(fmt.runtime or "")
        return {**details, **self.fallback.describe(), **({"fallback_cost": cost} if cost else {})}


Progress = Callable[[str], None]


def _search(mixer, model, dataset: Dataset, config: ExportConfig, progress: Progress, equalized=None) -> Fallback:
    """The float fallback (quantize.fallback) of one method's files made by `mixer`, gated against the float
    `model`; `equalized` makes the Mixer of a cross-layer-equalized copy, tried before any float layer."""
    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    preds = model.predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured(FLOAT_KERAS, BY_KEY["keras_float32"].file, preds, float((preds == labels).mean()))
    progress(f"fallback ({mixer.method.name}): trying the all-int8 model against the gate")
    return search(mixer, images, labels, reference, dataset.task.class_names, config.criteria,
                  config.max_float_layers, progress, equalized=equalized)


def post_training(method: Method, model, dataset: Dataset, calib: np.ndarray, config: ExportConfig,
                  progress: Progress) -> MethodPlan:
    """Post-training int8 of the float `model`: equalized when config.equalize says (None: BY_DEFAULT, and the
    fallback may choose the equalized copy), with the fallback's search under --fallback."""
    choice = config.equalize
    equalize_first = BY_DEFAULT if choice is None else choice
    may_try = choice is None and config.fallback and not equalize_first
    equalized, record = equalize(model) if equalize_first or may_try else (None, None)
    if equalize_first:
        progress(f"equalizing: {record.describe()}")
    found = None
    if config.fallback:
        progress("fallback: calibrating the float model")
        start = Mixer.for_model(equalized if equalize_first else model, calib)
        alternative = (lambda: Mixer.for_model(equalized, calib)) if may_try else None
        found = _search(start, model, dataset, config, progress, alternative)
    if equalize_first or (found is not None and found.chosen.equalized):
        return MethodPlan(method, equalized, found, record)
    return MethodPlan(method, model, found)


def quantization_aware(method: Method, model, dataset: Dataset, calib: np.ndarray, config: ExportConfig,
                       progress: Progress) -> MethodPlan:
    """Quantization-aware fine-tuning of the float `model`; under --fallback the fewest layers left unannotated
    and fine-tuned again so the files pass the gate."""
    progress(f"quantization-aware fine-tuning for {config.qat_epochs} epoch(s)")
    qat, metrics = qat_finetune(model, dataset, config.qat_epochs, config.batch_size, config.seed, calib)
    found = None
    if config.fallback:
        mixer = QatMixer(model, dataset, calib, config.qat_epochs, config.batch_size, config.seed, qat,
                         progress=progress)
        found = _search(mixer, model, dataset, config, progress)
        chosen = found.chosen.float_layers
        qat, metrics = mixer.qat_model(chosen), mixer.metrics.get(tuple(sorted(chosen)), metrics)
    return MethodPlan(method, qat, found, qat=QatModel(qat, metrics, config.qat_epochs))


def plan(model, dataset: Dataset, calib: np.ndarray, config: ExportConfig,
         progress: Progress = print) -> dict[str, MethodPlan]:
    """Each quantized method of `config`, in registry order, planned by the step its entry names."""
    plans = {}
    for method in config.quantized:
        module, func = method.planner.split(":")
        step = getattr(importlib.import_module(module), func)
        plans[method.name] = step(method, model, dataset, calib, config, progress)
    return plans


__all__ = ["MethodPlan", "QatModel", "plan", "post_training", "quantization_aware"]
