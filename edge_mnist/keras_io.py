"""The one place Keras model files are read and written (TensorFlow imported when called)."""
from __future__ import annotations

import warnings
from pathlib import Path

from .errors import EdgeMnistError
from .files import atomic_output
from .tfenv import import_tf


def load_keras(path: Path, qat: bool = False):
    """Load a saved Keras model without its optimizer, or a one-line error naming the file.

    qat=True opens a quantization-aware model (its layers are registered by tfmot's scope).
    """
    _, keras = import_tf()
    path = Path(path)
    if not path.is_file():
        raise EdgeMnistError(f"{path}: Keras model not found (run `edge-mnist train` first)")
    try:
        if qat:
            from .errors import require

            tfmot = require("tensorflow_model_optimization", "train")
            with tfmot.quantization.keras.quantize_scope():
                return keras.models.load_model(path, compile=False)
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a corrupt file
        raise EdgeMnistError(f"{path}: cannot load Keras model ({type(exc).__name__}: {str(exc)[:160]})") from exc


def inference_copy(model):
    """The same architecture and weights without optimizer state: a third of the file size."""
    _, keras = import_tf()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def save_keras(model, path: Path) -> None:
    """Save a Keras model atomically; the suffix picks the format (.keras zip or .h5 HDF5)."""
    with atomic_output(Path(path)) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
        model.save(tmp)
