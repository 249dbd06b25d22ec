"""The CPU build of an int8 .tflite: the stem in float32 on the file's own int8 weights.

LiteRT's int8 convolution is slow on an image with one to three channels (the reference CNN's
conv1 runs at about 7 GMAC/s in int8 against 280 for conv2, and takes more than half of the
whole model's time), while its float kernel is not. The CPU build rewrites the all-integer file
so the stem, its first convolution on the image (and a max pooling that only it feeds), runs in
float32: DEQUANTIZE of the int8 image, the convolution with the int8 weights and int32 bias
dequantized (the same real numbers), the pooling, then QUANTIZE onto the int8 grid the integer
stem wrote. Quantization is monotonic, so it commutes with ReLU and max: the int8 values equal the
all-integer file's up to float rounding at a quantization boundary. Input and output stay int8
with the same scale and zero point, so an application feeds both files alike. Everything after
the stem is the all-integer file's operators and weights, untouched.

The all-integer file stays what TFLM, the C array, the microcontroller C and NPUs get; the CPU
build is for LiteRT and tflite-runtime on a phone, a Pi or a PC. The ONNX conversion does the same
in its own graph (quantize.onnx_from_tflite's stem); both find the stem with `find_stem`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime.tflite_graph import TfliteGraph, read_tflite

# The widest image the float stem is for: the rule of issue 29, measured in benchmarks/cpu_build.py.
MAX_STEM_CHANNELS = 3
FLOAT32, INT8 = 0, 9  # TFLite TensorType codes
# Operator versions the TFLite converter writes for these signatures (tensorflow/lite/tools/versioning).
VERSIONS = {"DEQUANTIZE": 2, "QUANTIZE": 2, "CONV_2D": 1, "MAX_POOL_2D": 1}


@dataclass(frozen=True)
class Stem:
    """The stem of an int8 graph: its first CONV_2D on the image, and the MAX_POOL_2D that alone reads it."""

    conv: int  # operator index
    pool: int | None

    @property
    def last(self) -> int:
        """The stem's last operator: its output is the first int8 tensor after the stem."""
        return self.conv if self.pool is None else self.pool


def find_stem(graph: TfliteGraph) -> Stem | None:
    """The graph's stem (module docstring), or None: no CONV_2D first, its input not the graph's image, or
    more than MAX_STEM_CHANNELS channels. Its MaxPool is kept when only the convolution feeds it."""
    ops, (image,) = graph.ops, graph.inputs
    if not ops or ops[0][0] != "CONV_2D" or ops[0][1][0] != image or graph.shapes[image][-1] > MAX_STEM_CHANNELS:
        return None
    conv_out = ops[0][2][0]
    readers = [i for i, op in enumerate(ops) if conv_out in op[1]]
    return Stem(0, 1 if readers == [1] and ops[1][0] == "MAX_POOL_2D" and conv_out not in graph.outputs else None)


def describe_stem(graph: TfliteGraph, stem: Stem | None) -> str:
    """What the CPU build keeps float, for its metadata and the manifest."""
    if stem is None:
        return "no float stem (the first operator is not a convolution on a 1- to 3-channel image): all int8"
    pooled = " and its max pooling" if stem.pool is not None else ""
    return (f"stem in float32: the first convolution{pooled} ({graph.names[graph.ops[stem.last][2][0]]}) on the "
            "int8 weights dequantized, then quantized onto the all-integer file's grid; the rest all int8")


def cpu_build(model: bytes, path: Path) -> tuple[bytes, str]:
    """The CPU build of the all-integer .tflite bytes `model` and what it keeps float (describe_stem); the
    bytes unchanged when the graph has no stem."""
    graph = read_tflite(model, path)
    stem = find_stem(graph)
    if stem is None:
        return model, describe_stem(graph, stem)
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    try:
        _rewrite(obj, graph, stem)
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise EdgeMnistError(f"{path}: cannot make the CPU build ({type(exc).__name__}: {str(exc)[:120]})") from exc
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj)), describe_stem(graph, stem)


def _rewrite(obj, graph: TfliteGraph, stem: Stem) -> None:
    """Turn the stem of the parsed flatbuffer `obj` float in place: DEQUANTIZE -> float stem -> QUANTIZE."""
    from ai_edge_litert import schema_py_generated as schema

    sub = obj.subgraphs[0]
    conv, last = sub.operators[stem.conv], sub.operators[stem.last]
    image, weights, bias = (list(conv.inputs) + [-1])[:3]
    image_scale = graph.quant[image].scale.reshape(-1)[0]
    weight_scale = graph.quant[weights].scale.reshape(-1, 1, 1, 1)
    _make_float(obj, sub.tensors[weights], graph.data[weights].astype(np.float32) * weight_scale)
    if bias >= 0:
        bias_scale = image_scale * weight_scale.reshape(-1)  # the int32 bias is in units of the accumulator
        _make_float(obj, sub.tensors[bias], graph.data[bias].astype(np.float64) * bias_scale)
    int8_out = last.outputs[0]
    image_float = _float_tensor(sub, sub.tensors[image], "image_float")
    stem_float = _float_tensor(sub, sub.tensors[int8_out], "stem_float")
    conv.inputs = [image_float, *list(conv.inputs)[1:]]
    if stem.pool is not None:
        _make_float(obj, sub.tensors[conv.outputs[0]], None)
    last.outputs = [stem_float]
    conv.opcodeIndex = _opcode(obj, schema, "CONV_2D")
    last.opcodeIndex = _opcode(obj, schema, "MAX_POOL_2D" if stem.pool is not None else "CONV_2D")
    before = _operator(schema, _opcode(obj, schema, "DEQUANTIZE"), image, image_float)
    after = _operator(schema, _opcode(obj, schema, "QUANTIZE"), stem_float, int8_out)
    sub.operators = [before, *sub.operators[:stem.last + 1], after, *sub.operators[stem.last + 1:]]


def _make_float(obj, tensor, values: np.ndarray | None) -> None:
    """Make `tensor` float32 with no quantization; a constant gets `values` as its new buffer."""
    tensor.type, tensor.quantization = FLOAT32, None
    if values is not None:
        obj.buffers[tensor.buffer].data = np.ascontiguousarray(values, np.float32).view(np.uint8).reshape(-1)


def _float_tensor(sub, like, suffix: str) -> int:
    """A new float32 activation tensor shaped as `like`; returns its index."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.shape, tensor.shapeSignature = like.shape, like.shapeSignature
    tensor.type, tensor.buffer, tensor.name = FLOAT32, 0, f"edge_mnist/{suffix}"
    sub.tensors.append(tensor)
    return len(sub.tensors) - 1


def _opcode(obj, schema, name: str) -> int:
    """The index of the operator code `name` at the version of VERSIONS, added when the file lacks it."""
    code = getattr(schema.BuiltinOperator, name)
    for i, entry in enumerate(obj.operatorCodes):
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code and entry.version == VERSIONS[name]:
            return i
    entry = schema.OperatorCodeT()
    entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), VERSIONS[name]
    obj.operatorCodes.append(entry)
    return len(obj.operatorCodes) - 1


def _operator(schema, opcode: int, source: int, target: int):
    """A one-input, one-output operator with no options (DEQUANTIZE, QUANTIZE)."""
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [source], [target]
    return op


__all__ = ["cpu_build", "find_stem", "describe_stem", "Stem", "MAX_STEM_CHANNELS"]
