"""Runner for a Keras model file, the float reference every int8 artifact is compared with.

Unlike the other runners this one needs TensorFlow; it is imported only when a .keras or .h5
file is opened, so the rest of edge_mnist.runtime stays TensorFlow-free.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_mnist.core.keras_io import load_keras
from edge_mnist.core.tfenv import import_tf
from edge_mnist.runtime.base import Runner, image_signature


class KerasRunner(Runner):
    """Direct model call (training=False); TensorFlow's thread pools are set to `threads`."""

    runtime = "keras"

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None):
        """Load with the safe Keras loader; `content` is unused (Keras reads files), its sha256 checked by the caller."""

        tf, _ = import_tf()
        self.path, self.threads, self.metadata = Path(path), threads, {}
        _set_tf_threads(tf, threads)
        self.model = load_keras(self.path)
        shape = [-1 if d is None else d for d in self.model.input_shape]
        out = [-1 if d is None else d for d in self.model.output_shape]
        self.input_shape, self.num_classes = image_signature(self.path, shape, out, np.float32)
        self._tf = tf

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """model(x, training=False) as numpy."""
        return self.model(self._tf.constant(prepared), training=False).numpy()


def _set_tf_threads(tf, threads: int) -> None:
    """Fix TensorFlow's thread pools; only possible before TensorFlow's runtime starts."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
