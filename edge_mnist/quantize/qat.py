"""Quantization-aware fine-tuning with tfmot's default 8-bit scheme, on a BatchNorm-folded copy."""
from __future__ import annotations

from ..data import Dataset
from ..errors import require
from ..tfenv import import_tf


def qat_finetune(model, dataset: Dataset, epochs: int, batch_size: int, seed: int, learning_rate: float = 1e-4):
    """Return (QAT model, per-epoch metrics) fine-tuned from a copy of `model`.

    tfmot's default scheme has no pattern for BatchNormalization after Dense, so BatchNorm is
    folded into the next Dense first (batchnorm.fold_batchnorm): the float model itself is
    never changed and tfmot sees only layers it supports.
    """
    _, keras = import_tf()
    from ..train import fit
    from .batchnorm import fold_batchnorm

    tfmot = require("tensorflow_model_optimization", "train")
    keras.utils.set_random_seed(seed)
    qat = tfmot.quantization.keras.quantize_model(fold_batchnorm(model))
    metrics = fit(qat, dataset, epochs, batch_size, seed, learning_rate)
    return qat, metrics
