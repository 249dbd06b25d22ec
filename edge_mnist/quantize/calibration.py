"""Calibration images for int8 activation ranges: a seeded subset of the training split."""
from __future__ import annotations

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import Dataset, to_float


def calibration_images(dataset: Dataset, samples: int, seed: int) -> np.ndarray:
    """A seeded random subset of the training images (never the test set), as model input."""
    if not 1 <= samples <= len(dataset.x_train):
        raise EdgeMnistError(f"--calib-samples must be 1..{len(dataset.x_train)}, not {samples}")
    idx = np.random.default_rng(seed).choice(len(dataset.x_train), samples, replace=False)
    return to_float(dataset.x_train[np.sort(idx)])
