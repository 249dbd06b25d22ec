"""TensorFlow Lite Micro runner for int8 .tflite files, through TFLM's Python interpreter (`tflite-micro`).

TFLM is what a microcontroller runs: reference kernels, one image per invoke, every tensor in
one arena the application sizes. Here it proves that the exact .tflite bytes a board would
carry give the same answers as LiteRT, and finds the smallest arena they run in. Its timing on
an x86 host says nothing about a microcontroller, so the registry marks it untimed. The
`tflite-micro` wheel exists for x86-64 Linux only; elsewhere this runtime is skipped.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, require
from edge_mnist.runtime.base import Runner, image_signature, read_model, weight_precision
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.runtime.tflite_graph import live_weights, read_metadata

ARENA_LIMIT = 64 * 1024 * 1024  # no model of ours needs more; a bigger need is a broken file


@contextlib.contextmanager
def silenced_stderr():
    """TFLM prints every failed allocation to the C stderr; the arena search expects failures."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _interpreter(model: bytes, arena_size: int):
    """A TFLM interpreter with `arena_size` bytes of arena that has run one invoke, or None when
    the arena is too small (TFLM allocates some tensors lazily, so only an invoke proves the size)."""
    runtime = require("tflite_micro.python.tflite_micro.runtime", "tflm")
    try:
        with silenced_stderr():
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
            details = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
            interpreter.invoke()
    except (RuntimeError, ValueError):
        return None
    return interpreter


def smallest_arena(model: bytes, path: Path) -> int:
    """The smallest tensor arena, in bytes, in which the model loads and runs once (bisection).
    `model` must be a verified flatbuffer (TFLiteRunner opened it): TFLM does not verify."""
    if _interpreter(model, ARENA_LIMIT) is None:
        raise EdgeMnistError(f"{path}: TensorFlow Lite Micro cannot run this model (unsupported operator or "
                             f"needs more than {ARENA_LIMIT >> 20} MiB of arena)")
    low, high = 0, ARENA_LIMIT  # low fails, high runs
    while high - low > 1:
        middle = (low + high) // 2
        if _interpreter(model, middle) is None:
            low = middle
        else:
            high = middle
    return high


def tflm_version() -> str:
    """'tflite-micro VERSION' of the installed interpreter (a MissingDependency when absent)."""
    from importlib import metadata

    require("tflite_micro.python.tflite_micro.runtime", "tflm")
    return f"tflite-micro {metadata.version('tflite-micro')}"


class TFLMRunner(Runner):
    """One TFLM interpreter with an arena sized for the model; predicts one image per invoke."""

    runtime = "tflm"

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None):
        """Open the model from `content` (bytes already read and verified) or from the file."""
        require("tflite_micro.python.tflite_micro.runtime", "tflm")
        self.path, self.threads = Path(path), threads
        model = read_model(self.path, content)
        TFLiteRunner(self.path, content=model)  # LiteRT verifies the flatbuffer; TFLM trusts what it is given
        self.arena_bytes = smallest_arena(model, self.path)
        self.interpreter = _interpreter(model, self.arena_bytes)
        self.metadata = read_metadata(model, self.path)
        self.precision = weight_precision(live_weights(model, self.path))
        inp, out = self.interpreter.get_input_details(0), self.interpreter.get_output_details(0)
        self.input_shape, self.num_classes = image_signature(self.path, inp["shape"], out["shape"], inp["dtype"])
        if int(inp["shape"][0]) != 1:
            raise EdgeMnistError(f"{path}: TFLM runs one image at a time; the model's batch is {inp['shape'][0]}")
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_scale, self.input_zero_point = _per_tensor(inp, self.path)
        self.output_scale, self.output_zero_point = _per_tensor(out, self.path)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """set_input, invoke, get_output for each image in turn (TFLM has no batch resize)."""
        outputs = []
        for image in prepared:
            self.interpreter.set_input(image[None], 0)
            self.interpreter.invoke()
            outputs.append(np.array(self.interpreter.get_output(0))[0])
        return np.stack(outputs)


def _per_tensor(details: dict, path: Path) -> tuple[float, int]:
    """(scale, zero point) of an input or output tensor; (0.0, 0) for a float one."""
    params = details.get("quantization_parameters") or {}
    scales, zeros = list(params.get("scales", [])), list(params.get("zero_points", []))
    if not scales:
        return 0.0, 0
    if len(scales) != 1 or len(zeros) != 1:
        raise EdgeMnistError(f"{path}: input/output quantized per channel; expected one scale and zero point")
    return float(scales[0]), int(zeros[0])
