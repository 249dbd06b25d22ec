"""What every runner shares: input checks, int8 (de)quantization and batched prediction."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.datasets import Task

SUPPORTED_INPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8))


def check_images(x: np.ndarray, source: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """Validate float images in [0, 1] against one model input (H, W, C); return float32 (N, H, W, C)."""
    x = np.asarray(x)
    if x.ndim == len(input_shape) and input_shape[-1] == 1:
        x = x[..., None]
    if x.ndim != len(input_shape) + 1 or x.shape[1:] != tuple(input_shape):
        raise EdgeMnistError(f"{source}: images have shape {x.shape}, expected (N, {', '.join(map(str, input_shape))})")
    if len(x) == 0:
        raise EdgeMnistError(f"{source}: no images")
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgeMnistError(f"{source}: images have dtype {x.dtype}, expected float in [0, 1]")
    if not np.isfinite(x).all():
        raise EdgeMnistError(f"{source}: images contain NaN or infinite values")
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise EdgeMnistError(f"{source}: pixel values span {x.min():.3g}..{x.max():.3g}, expected [0, 1]")
    return np.ascontiguousarray(x, dtype=np.float32)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Affine-quantize float input to the model's integer input type."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer output back to float."""
    return (q.astype(np.float32) - zero_point) * scale


INTEGER_WEIGHTS = ("int8", "uint8")
FLOAT_WEIGHTS = ("float32", "float16", "float64")


def live_constants(nodes: list, outputs: list, constants: dict) -> Counter:
    """Elements per dtype of the constant tensors the graph outputs depend on.

    `nodes` are (inputs, outputs) name lists, `constants` maps a name to (dtype, elements).
    Walking back from the outputs ignores dead tensors and operators, so a file cannot pass
    for int8 by carrying an unused integer tensor.
    """
    producer = {name: i for i, (_, outs) in enumerate(nodes) for name in outs}
    seen_nodes, seen_names, counts = set(), set(), Counter()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen_names:
            continue
        seen_names.add(name)
        if name in constants:
            dtype, elements = constants[name]
            counts[dtype] += elements
        node = producer.get(name)
        if node is not None and node not in seen_nodes:
            seen_nodes.add(node)
            stack.extend(nodes[node][0])
    return counts


def weight_precision(counts: Counter) -> str:
    """int8 when integer weight elements outnumber float ones (a first layer kept float still counts as int8)."""
    integer = sum(counts[t] for t in INTEGER_WEIGHTS)
    return "int8" if integer > sum(counts[t] for t in FLOAT_WEIGHTS) else "float32"


def read_model(path: Path, content: bytes | None) -> bytes:
    """The model's bytes: `content` when the caller already read (and verified) them, else the file's."""
    if content is not None:
        return content
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise EdgeMnistError(f"{path}: cannot read model file ({exc.strerror})") from exc


def image_signature(path: Path, shape, output_shape, dtype) -> tuple[tuple[int, ...], int]:
    """(one image's shape, number of classes) of a model taking (N, H, W, C) images of a supported dtype.

    Refuses anything else with a one-line error naming the file.
    """
    dims = [int(d) for d in shape]
    if len(dims) != 4 or min(dims[1:]) < 1:
        raise EdgeMnistError(f"{path}: model input shape is {dims}, expected [N, height, width, channels]")
    if np.dtype(dtype) not in SUPPORTED_INPUT_DTYPES:
        raise EdgeMnistError(f"{path}: model input dtype is {np.dtype(dtype)}, expected float32, int8 or uint8")
    out = [int(d) for d in output_shape]
    if len(out) != 2 or out[1] < 2:
        raise EdgeMnistError(f"{path}: model output shape is {out}, expected [N, classes]")
    return tuple(dims[1:]), out[1]


class Runner:
    """A loaded model. Subclasses set the fields below and implement `run`."""

    runtime = ""
    path: Path
    threads: int
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0
    input_dtype: np.dtype = np.dtype(np.float32)
    input_scale: float = 0.0
    input_zero_point: int = 0
    output_scale: float = 0.0
    output_zero_point: int = 0
    metadata: dict
    precision: str = "float32"  # read from the model itself: "int8" when it holds integer weights

    def check_task(self, task: Task) -> None:
        """Refuse a model whose input or output does not fit the task it is used for."""
        if self.input_shape != tuple(task.input_shape) or self.num_classes != task.num_classes:
            raise EdgeMnistError(f"{self.path}: model takes {list(self.input_shape)} and gives {self.num_classes} "
                                 f"classes; {task.dataset} needs {list(task.input_shape)} and {task.num_classes}")

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Float images -> the model's input dtype (quantized when integer)."""
        if self.input_dtype == np.float32:
            return x
        return quantize(x, self.input_scale, self.input_zero_point, self.input_dtype)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        """Raw forward pass on prepared input; returns the raw output tensor."""
        raise NotImplementedError

    def to_probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float probabilities (dequantized when the output is integer)."""
        if raw.dtype in (np.int8, np.uint8):
            return dequantize(raw, self.output_scale, self.output_zero_point)
        return raw.astype(np.float32, copy=False)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities for float images in [0, 1], in batches."""
        x = check_images(x, str(self.path), self.input_shape)
        outs = [self.to_probabilities(self.run(self.prepare(x[i:i + batch_size])))
                for i in range(0, len(x), batch_size)]
        probs = np.concatenate(outs)
        if probs.shape != (len(x), self.num_classes) or not np.isfinite(probs).all():
            raise EdgeMnistError(f"{self.path}: model output is {probs.shape} or not finite, "
                                 f"expected (N, {self.num_classes}) probabilities")
        return probs

    def bound_call(self, x: np.ndarray) -> Callable[[], object]:
        """A zero-argument call running one prepared input: the unit the latency timer measures."""
        prepared = self.prepare(check_images(x, str(self.path), self.input_shape))
        return lambda: self.run(prepared)


def io_quantization(runner) -> dict[str, str]:
    """An integer model's input and output scale and zero point, as metadata strings."""
    return {"input_scale": repr(float(runner.input_scale)), "input_zero_point": str(int(runner.input_zero_point)),
            "output_scale": repr(float(runner.output_scale)),
            "output_zero_point": str(int(runner.output_zero_point))}


def metadata_quantization(metadata: dict[str, str], path) -> tuple[float, int, float, int]:
    """(input scale, input zero point, output scale, output zero point) from an integer model's metadata strings
    (an ONNX file's metadata_props: the inverse of io_quantization); missing or malformed is a one-line error."""
    try:
        return (float(metadata["input_scale"]), int(metadata["input_zero_point"]),
                float(metadata["output_scale"]), int(metadata["output_zero_point"]))
    except (KeyError, ValueError) as exc:
        raise EdgeMnistError(f"{path}: integer input but no quantization metadata ({exc})") from exc
