"""Run exported models with the device runtimes only: LiteRT and ONNX Runtime, no TensorFlow.

`open_model(path)` picks the runner by file suffix. Every runner takes float32 images in
[0, 1] shaped (N, 28, 28, 1), quantizes them itself when the model wants int8, and returns
float probabilities, so callers never care which runtime or precision they hold.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import EdgeMnistError
from .base import Runner, check_images

__all__ = ["Runner", "open_model", "check_images"]


def open_model(path: Path | str, threads: int = 1) -> Runner:
    """Open a .tflite, .onnx or .keras model with a fixed thread count."""
    path = Path(path)
    if not path.is_file():
        raise EdgeMnistError(f"{path}: model file not found")
    if threads < 1:
        raise EdgeMnistError(f"--threads must be >= 1, not {threads}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from .tflite import TFLiteRunner

        return TFLiteRunner(path, threads)
    if suffix == ".onnx":
        from .onnx import OnnxRunner

        return OnnxRunner(path, threads)
    if suffix in (".keras", ".h5"):
        from .keras import KerasRunner

        return KerasRunner(path, threads)
    raise EdgeMnistError(f"{path}: unknown model format {suffix!r} (expected .tflite, .onnx or .keras)")
