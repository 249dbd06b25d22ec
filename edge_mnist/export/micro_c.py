"""Interpreter-free C for microcontrollers: an all-integer int8 .tflite turned into plain C99.

`model_int8_micro.c` holds the weights as `const` arrays, the requantization constants TFLite
Micro would compute at prepare time (computed here, once, with its exact rules), one static
activation buffer planned from tensor lifetimes, and `model_int8_invoke()`, a straight list of
kernel calls. The kernels (micro_kernels.c, copied in) are TFLite's reference integer arithmetic,
so the outputs equal TFLM's byte for byte; `emulate --target cortex-m4` checks that on the
instruction set. `model_int8_micro.h` declares the function and the task (shape, labels, input and
output quantization). No malloc, no stdio, `<stdint.h>` only.

A graph with an operator outside EMITTERS raises UnsupportedOperator naming it: export writes
no C for that model (one line says why) and keeps the TFLM array.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, MissingDependency
from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.core.version import __version__
from edge_mnist.export.c_array import c_string
from edge_mnist.export.job import Exported, ExportJob, NotExported
from edge_mnist.registry.datasets import Task
from edge_mnist.runtime.tflite_graph import TfliteGraph, read_tflite

INT8, INT32 = 9, 2
ALIGN = 4  # every activation starts on a word: the kernels read bytes, but a word-aligned plan is free
VALUES_PER_LINE = 24


class UnsupportedOperator(NotExported):
    """The graph holds an operator (or a tensor type) the generated C does not implement."""


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: (significand in Q31, power-of-two exponent) with real = m * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = _round_away(fraction * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def _round_away(x: float) -> int:
    """std::round: halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: the clamp a fused NONE / RELU / RELU_N1_TO_1 / RELU6 becomes."""
    def quantized(value: float) -> int:
        """Quantize(): zero point + round(value / scale), the division in float32 as TFLM does it."""
        return zero_point + _round_away(float(np.float32(value) / np.float32(scale)))
    bounds = {0: (-128, 127), 1: (quantized(0.0), 127), 2: (quantized(-1.0), quantized(1.0)),
              3: (quantized(0.0), quantized(6.0))}
    if activation not in bounds:
        raise UnsupportedOperator(f"fused activation {activation}")
    low, high = bounds[activation]
    return max(-128, low), min(127, high)


def same_padding(size: int, out: int, stride: int, kernel: int, dilation: int) -> int:
    """TFLite's leading padding for an output of `out` (SAME; 0 for VALID outputs)."""
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0) // 2


@dataclass
class Emitter:
    """The C being built: constant arrays, statements of the invoke function, and the arena plan."""

    prefix: str
    graph: TfliteGraph
    constants: list[str] = field(default_factory=list)
    where: dict[int, str] = field(default_factory=dict)
    constant_bytes: int = 0  # of every array written: weights, biases and requantization constants

    def array(self, kind: str, values) -> str:
        """A `static const` array of `values` (int8_t or int32_t); returns its name."""
        name = f"{kind[0]}{len(self.constants)}"
        flat = [int(v) for v in np.asarray(values).reshape(-1)]
        self.constant_bytes += len(flat) * (1 if kind == "int8_t" else 4)
        lines = ",\n".join("  " + ", ".join(str(v) for v in flat[i:i + VALUES_PER_LINE])
                           for i in range(0, len(flat), VALUES_PER_LINE)) or "  0"
        self.constants.append(f"static const {kind} {name}[{max(len(flat), 1)}] = {{\n{lines}\n}};\n")
        return name

    def quant(self, tensor: int) -> tuple[float, int]:
        """(scale, zero point) of an int8 activation tensor; refuses float or per-axis activations."""
        q = self.graph.quant[tensor]
        if self.graph.types[tensor] != INT8 or q is None or not q.per_tensor:
            raise UnsupportedOperator(f"tensor {self.graph.names[tensor]!r} is not a per-tensor int8 activation")
        return float(q.scale[0]), int(q.zero_point[0])

    def shape(self, tensor: int) -> list[int]:
        """A tensor's shape, as [h, w, c] for 4-D activations of one image."""
        shape = self.graph.shapes[tensor]
        return shape[1:] if len(shape) == 4 else shape

    def requant_arrays(self, input_t: int, filter_t: int, output_t: int, channels: int,
                       float_product: bool) -> tuple[str, str]:
        """Per-output-channel multiplier and shift arrays, as TFLM's prepare computes them: the conv rule
        (double(input) * double(filter) / double(output)) or, for a per-tensor dense layer, the
        float32 product of input and filter scale over the output scale."""
        in_scale, _ = self.quant(input_t)
        out_scale, _ = self.quant(output_t)
        if filter_t not in self.graph.data or self.graph.quant[filter_t] is None:
            raise UnsupportedOperator(f"weights {self.graph.names[filter_t]!r} are not constant and quantized")
        scales = np.asarray(self.graph.quant[filter_t].scale, np.float32)
        if scales.size == 1:
            scales = np.repeat(scales, channels)
        pairs = []
        for s in scales:
            product = float(np.float32(in_scale) * s) if float_product else float(np.float32(in_scale)) * float(s)
            pairs.append(quantize_multiplier(product / float(np.float32(out_scale))))
        return self.array("int32_t", [m for m, _ in pairs]), self.array("int32_t", [s for _, s in pairs])

    def bias(self, tensor: int) -> str:
        """The bias array's name, or NULL for an absent bias."""
        if tensor < 0:
            return "0"
        if self.graph.types[tensor] != INT32:
            raise UnsupportedOperator(f"bias {self.graph.names[tensor]!r} is not int32")
        return self.array("int32_t", self.graph.data[tensor])

    def weights(self, tensor: int) -> str:
        """A constant int8 weight tensor's array name."""
        if tensor not in self.graph.data or self.graph.types[tensor] != INT8:
            raise UnsupportedOperator(f"weights {self.graph.names[tensor]!r} are not constant int8")
        return self.array("int8_t", self.graph.data[tensor])


def _conv(e: Emitter, ins: list[int], out: int, opt, depthwise: bool) -> str:
    """A CONV_2D or DEPTHWISE_CONV_2D call."""
    (in_h, in_w, in_c), (out_h, out_w, out_c) = e.shape(ins[0]), e.shape(out)
    filter_shape = e.graph.shapes[ins[1]]
    k_h, k_w = filter_shape[1], filter_shape[2]
    if not depthwise and filter_shape[3] != in_c:
        raise UnsupportedOperator("CONV_2D with groups")
    _, in_zp = e.quant(ins[0])
    out_scale, out_zp = e.quant(out)
    low, high = activation_range(opt.fusedActivationFunction, out_scale, out_zp)
    stride, dilation = (opt.strideH, opt.strideW), (opt.dilationHFactor, opt.dilationWFactor)
    pads = (same_padding(in_h, out_h, stride[0], k_h, dilation[0]),
            same_padding(in_w, out_w, stride[1], k_w, dilation[1]))
    mult, shift = e.requant_arrays(ins[0], ins[1], out, out_c, float_product=False)
    weights, bias = e.weights(ins[1]), e.bias(ins[2] if len(ins) > 2 else -1)
    params = (in_h, in_w, in_c, k_h, k_w, out_h, out_w, out_c, *stride, *dilation, *pads, -in_zp, out_zp, low, high)
    fields = ", ".join(str(v) for v in params)
    kernel = "em_depthwise" if depthwise else "em_conv"
    return (f"{{ static const em_conv_t p = {{{fields}}};\n"
            f"    {kernel}(&p, {e.where[ins[0]]}, {weights}, {bias}, {mult}, {shift}, {e.where[out]}); }}")


def _dense(e: Emitter, ins: list[int], out: int, opt) -> str:
    """A FULLY_CONNECTED call (one row: the flattened input is the filter's depth)."""
    units, depth = e.graph.shapes[ins[1]]
    if int(np.prod(e.graph.shapes[ins[0]])) != depth or opt.weightsFormat != 0:
        raise UnsupportedOperator("FULLY_CONNECTED over more than one row or with shuffled weights")
    _, in_zp = e.quant(ins[0])
    out_scale, out_zp = e.quant(out)
    low, high = activation_range(opt.fusedActivationFunction, out_scale, out_zp)
    per_tensor = e.graph.quant[ins[1]] is not None and e.graph.quant[ins[1]].per_tensor
    mult, shift = e.requant_arrays(ins[0], ins[1], out, units, float_product=per_tensor)
    weights, bias = e.weights(ins[1]), e.bias(ins[2] if len(ins) > 2 else -1)
    return (f"em_dense({depth}, {units}, {e.where[ins[0]]}, {weights}, {bias}, {mult}, {shift}, {-in_zp}, {out_zp}, "
            f"{low}, {high}, {e.where[out]});")


def _pool(e: Emitter, ins: list[int], out: int, opt, average: bool) -> str:
    """A MAX_POOL_2D or AVERAGE_POOL_2D call."""
    (in_h, in_w, c), (out_h, out_w, _) = e.shape(ins[0]), e.shape(out)
    if e.quant(ins[0]) != e.quant(out):
        raise UnsupportedOperator("pooling that requantizes")
    low, high = activation_range(opt.fusedActivationFunction, *e.quant(out))
    k, stride = (opt.filterHeight, opt.filterWidth), (opt.strideH, opt.strideW)
    pads = (same_padding(in_h, out_h, stride[0], k[0], 1), same_padding(in_w, out_w, stride[1], k[1], 1))
    fields = ", ".join(str(v) for v in (in_h, in_w, c, *k, out_h, out_w, *stride, *pads, low, high))
    return (f"{{ static const em_pool_t p = {{{fields}}};\n"
            f"    em_pool(&p, {int(average)}, {e.where[ins[0]]}, {e.where[out]}); }}")


def _softmax(e: Emitter, ins: list[int], out: int, opt) -> str:
    """A SOFTMAX call with TFLM's prepare-time constants (PreprocessSoftmaxScaling, CalculateInputRadius)."""
    in_scale, _ = e.quant(ins[0])
    out_scale, out_zp = e.quant(out)
    if out_zp != -128 or np.float32(out_scale) != np.float32(1 / 256):
        raise UnsupportedOperator("SOFTMAX whose output is not scale 1/256, zero point -128")
    real = min(float(opt.beta) * float(np.float32(in_scale)) * (1 << (31 - 5)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -math.floor(((1 << 5) - 1) * (1 << (31 - 5)) / (1 << left_shift))
    shape = e.graph.shapes[out]
    depth = shape[-1]
    return (f"em_softmax({int(np.prod(shape)) // depth}, {depth}, {e.where[ins[0]]}, {multiplier}, {left_shift}, "
            f"{diff_min}, {e.where[out]});")


def _operands(e: Emitter, ins: list[int], out: int, op: str) -> tuple[int, int, str]:
    """(activation input, other input, its array or buffer) of ADD or MUL, the other input either of the
    output's shape or a constant broadcast over the trailing dimension (per channel or scalar)."""
    a, b = ins if ins[0] not in e.graph.data else ins[::-1]
    out_shape, b_shape = e.graph.shapes[out], list(e.graph.shapes[b])
    while b_shape and b_shape[0] == 1:
        b_shape.pop(0)  # leading ones broadcast away: [1, 1, 1, C] is [C]
    same = e.graph.shapes[b] == out_shape
    per_channel_or_scalar = b in e.graph.data and (b_shape == [out_shape[-1]] or not b_shape)
    if a in e.graph.data or e.graph.shapes[a] != out_shape or not (same or per_channel_or_scalar):
        raise UnsupportedOperator(f"{op} with a broadcast other than a per-channel or scalar constant")
    e.quant(b)
    return a, b, e.weights(b) if b in e.graph.data else e.where[b]


def _sizes(e: Emitter, out: int, b: int) -> str:
    """'n, b_n' of an elementwise call: the output's elements and the other operand's (broadcast over them)."""
    return f"{int(np.prod(e.graph.shapes[out]))}, {int(np.prod(e.graph.shapes[b]))}"


def _add(e: Emitter, ins: list[int], out: int, opt) -> str:
    """An ADD, with TFLM's prepare-time constants (left shift 20, inputs rescaled to twice the larger scale)."""
    a, b, b_ref = _operands(e, ins, out, "ADD")
    (s1, z1), (s2, z2), (so, zo) = e.quant(a), e.quant(b), e.quant(out)
    twice_max = 2 * float(max(np.float32(s1), np.float32(s2)))
    left_shift = 20
    m1, sh1 = quantize_multiplier(float(np.float32(s1)) / twice_max)
    m2, sh2 = quantize_multiplier(float(np.float32(s2)) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(so))))
    low, high = activation_range(opt.fusedActivationFunction, so, zo)
    q = e.array("int32_t", [-z1, m1, sh1, -z2, m2, sh2, left_shift, mo, sho, zo, low, high])
    return f"em_add({_sizes(e, out, b)}, {e.where[a]}, {b_ref}, {q}, {e.where[out]});"


def _mul(e: Emitter, ins: list[int], out: int, opt) -> str:
    """A MUL (a BatchNorm the converter could not fold), with TFLM's multiplier:
    double(s1) * double(s2) / double(so)."""
    a, b, b_ref = _operands(e, ins, out, "MUL")
    (s1, z1), (s2, z2), (so, zo) = e.quant(a), e.quant(b), e.quant(out)
    multiplier, shift = quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(so)))
    low, high = activation_range(opt.fusedActivationFunction, so, zo)
    q = e.array("int32_t", [-z1, -z2, multiplier, shift, zo, low, high])
    return f"em_mul({_sizes(e, out, b)}, {e.where[a]}, {b_ref}, {q}, {e.where[out]});"


def _mean(e: Emitter, ins: list[int], out: int, opt) -> str:
    """A MEAN over height and width of one image (GlobalAveragePooling2D), TFLM's multiplier with 1/count
    folded in as its reduce kernel folds it."""
    axes = sorted(int(a) % 4 for a in np.asarray(e.graph.data.get(ins[1], [])).reshape(-1))
    if len(e.graph.shapes[ins[0]]) != 4 or axes != [1, 2]:
        raise UnsupportedOperator("MEAN over axes other than height and width")
    (in_scale, in_zp), (out_scale, out_zp) = e.quant(ins[0]), e.quant(out)
    height, width, channels = e.shape(ins[0])
    count = height * width
    multiplier, shift = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier, shift = (multiplier << fold) // count, shift - fold
    return f"em_mean({count}, {channels}, {e.where[ins[0]]}, {in_zp}, {multiplier}, {shift}, {out_zp}, {e.where[out]});"


def _relu(e: Emitter, ins: list[int], out: int, opt) -> str:
    """A standalone RELU (one the converter could not fuse), with TFLM's multiplier: the float32 quotient
    of the input and output scales."""
    (in_scale, in_zp), (out_scale, out_zp) = e.quant(ins[0]), e.quant(out)
    multiplier, shift = quantize_multiplier(float(np.float32(in_scale) / np.float32(out_scale)))
    q = e.array("int32_t", [in_zp, multiplier, shift, out_zp, max(-128, out_zp), 127])
    return f"em_relu({int(np.prod(e.graph.shapes[out]))}, {e.where[ins[0]]}, {q}, {e.where[out]});"


def _relu6(e: Emitter, ins: list[int], out: int, opt) -> str:
    """A standalone RELU6 as TFLM computes it: the input clamped to its own zero and 6.0, not requantized."""
    in_scale, in_zp = e.quant(ins[0])
    six = min(127, max(-128, _round_away(float(np.float32(6.0) / np.float32(in_scale))) + in_zp))
    return f"em_clip({int(np.prod(e.graph.shapes[out]))}, {e.where[ins[0]]}, {in_zp}, {six}, {e.where[out]});"


def _reshape(e: Emitter, ins: list[int], out: int, opt) -> str:
    """RESHAPE: the planner aliases its output to its input; only a reshape into the caller's output copies."""
    if e.where[ins[0]] == e.where[out]:
        return ""
    n = int(np.prod(e.graph.shapes[out]))
    return f"{{ int i; for (i = 0; i < {n}; ++i) {e.where[out]}[i] = {e.where[ins[0]]}[i]; }}"


# The kernel each operator calls: the source defines EM_USE_<kernel> for the ones it uses, so unused
# kernels are not compiled (no unused-function warnings under -Wall -Werror).
KERNELS = {"CONV_2D": "CONV", "DEPTHWISE_CONV_2D": "DEPTHWISE", "FULLY_CONNECTED": "DENSE", "MAX_POOL_2D": "POOL",
           "AVERAGE_POOL_2D": "POOL", "SOFTMAX": "SOFTMAX", "ADD": "ADD", "MUL": "MUL", "MEAN": "MEAN",
           "RELU": "RELU", "RELU6": "CLIP"}

EMITTERS = {
    "CONV_2D": lambda e, i, o, opt: _conv(e, i, o, opt, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda e, i, o, opt: _conv(e, i, o, opt, depthwise=True),
    "FULLY_CONNECTED": _dense,
    "MAX_POOL_2D": lambda e, i, o, opt: _pool(e, i, o, opt, average=False),
    "AVERAGE_POOL_2D": lambda e, i, o, opt: _pool(e, i, o, opt, average=True),
    "SOFTMAX": _softmax,
    "ADD": _add,
    "MUL": _mul,
    "MEAN": _mean,
    "RELU": _relu,
    "RELU6": _relu6,
    "RESHAPE": _reshape,
}


def plan_arena(graph: TfliteGraph) -> tuple[dict[int, int], dict[int, int], int]:
    """(storage root per activation tensor, byte offset per root, arena bytes): reshapes share their
    input's storage; roots alive at the same time never overlap (greedy, largest first, as TFLM's
    greedy planner). The graph input and output live in the caller's buffers, not the arena."""
    root = {}
    for name, ins, outs, _ in graph.ops:
        for t in outs:
            # a reshape into the graph's output writes the caller's buffer (a copy); any other shares its input
            root[t] = root.get(ins[0], ins[0]) if name == "RESHAPE" and t not in graph.outputs else t
    born, dies = {}, {}
    for i, (_, ins, outs, _) in enumerate(graph.ops):
        for t in outs:
            born.setdefault(root[t], i)
        for t in ins:
            if t in root:
                dies[root[t]] = max(dies.get(root[t], i), i)
    arena_roots = [r for r in set(root.values()) if r not in graph.inputs and r not in graph.outputs]
    size = {r: -(-int(np.prod(graph.shapes[r])) // ALIGN) * ALIGN for r in arena_roots}
    placed: list[tuple[int, int, int, int]] = []  # offset, size, born, dies
    offsets = {}
    for r in sorted(arena_roots, key=lambda t: (-size[t], t)):
        life = (born.get(r, -1), dies.get(r, born.get(r, -1)))
        offset = 0
        for o, s, b, d in sorted(placed):
            overlaps_in_time = not (d < life[0] or life[1] < b)
            if overlaps_in_time and offset < o + s and o < offset + size[r]:
                offset = o + s
        offsets[r] = offset
        placed.append((offset, size[r], *life))
    return root, offsets, max((o + s for o, s, _, _ in placed), default=0)


@dataclass
class MicroC:
    """The generated files' text and what the plan measured."""

    source: str
    header: str
    arena_bytes: int
    weight_bytes: int  # the constant arrays: weights, biases and requantization constants


def _kernels() -> str:
    """The kernel library's text (micro_kernels.c beside this module)."""
    return resources.files("edge_mnist.export").joinpath("micro_kernels.c").read_text(encoding="utf-8")


def generate(tflite: bytes, path: Path, prefix: str, task: Task) -> MicroC:
    """The C source and header of the int8 model `tflite` (read from `path`), symbols named `prefix`
    (model_int8 -> model_int8_invoke, MODEL_INT8_...); UnsupportedOperator names what stops it."""
    graph = read_tflite(tflite, path)
    unsupported = sorted({name for name, *_ in graph.ops if name not in EMITTERS})
    if unsupported:
        raise UnsupportedOperator(f"{path}: operator {', '.join(unsupported)} has no interpreter-free C "
                                  f"(supported: {', '.join(EMITTERS)})")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOperator(f"{path}: one input and one output are supported")
    e = Emitter(prefix, graph)
    in_scale, in_zp = e.quant(graph.inputs[0])
    out_scale, out_zp = e.quant(graph.outputs[0])
    root, offsets, arena = plan_arena(graph)
    e.where = {t: (f"(arena + {offsets[r]})" if r in offsets else "input" if r in graph.inputs else "output")
               for t, r in root.items()}
    e.where[graph.inputs[0]] = "input"
    try:
        lines = [EMITTERS[name](e, ins, outs[0], opt) for name, ins, outs, opt in graph.ops]
    except UnsupportedOperator as exc:
        raise UnsupportedOperator(f"{path}: {exc}") from None
    macros = _macros(prefix, task, graph, e, (in_scale, in_zp, out_scale, out_zp), arena)
    kernels = sorted({KERNELS[name] for name, *_ in graph.ops if name in KERNELS})
    return MicroC(_source(prefix, task, e, [s for s in lines if s], arena, kernels), _header(prefix, macros), arena,
                  e.constant_bytes)


def _macros(prefix: str, task: Task, graph: TfliteGraph, e: Emitter, io: tuple, arena: int) -> list[tuple[str, str]]:
    """The header's (name, value) macros: sizes, shape, quantization, arena."""
    upper = prefix.upper()
    height, width, channels = task.input_shape
    in_scale, in_zp, out_scale, out_zp = io
    return [(f"{upper}_INPUT_BYTES", str(int(np.prod(graph.shapes[graph.inputs[0]])))),
            (f"{upper}_OUTPUT_BYTES", str(int(np.prod(graph.shapes[graph.outputs[0]])))),
            (f"{upper}_INPUT_HEIGHT", str(height)), (f"{upper}_INPUT_WIDTH", str(width)),
            (f"{upper}_INPUT_CHANNELS", str(channels)), (f"{upper}_NUM_CLASSES", str(task.num_classes)),
            (f"{upper}_INPUT_SCALE", f"{in_scale:.9g}f"), (f"{upper}_INPUT_ZERO_POINT", f"({in_zp})"),
            (f"{upper}_OUTPUT_SCALE", f"{out_scale:.9g}f"), (f"{upper}_OUTPUT_ZERO_POINT", f"({out_zp})"),
            (f"{upper}_ARENA_BYTES", str(arena))]


def _header(prefix: str, macros: list[tuple[str, str]]) -> str:
    """The header text: macros, the invoke function and the labels."""
    guard = f"EDGE_MNIST_{prefix.upper()}_MICRO_H_"
    upper = prefix.upper()
    defines = "\n".join(f"#define {name} {value}" for name, value in macros)
    return (f"/* {prefix}_micro.h: generated by edge-mnist from {prefix}.tflite. Do not edit: re-export.\n"
            f" * Input: pixel p in 0..255 -> int8 q = round(p / 255.0f / {upper}_INPUT_SCALE)"
            f" + {upper}_INPUT_ZERO_POINT,\n"
            f" * HWC order. Output: probability of class i = (q[i] - {upper}_OUTPUT_ZERO_POINT)"
            f" * {upper}_OUTPUT_SCALE. */\n"
            f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n{defines}\n\n"
            f"#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
            f"/* Runs the model on one image: 0 on success. Not reentrant (one static activation buffer). */\n"
            f"int {prefix}_invoke(const int8_t *input, int8_t *output);\n"
            f"extern const char *const {prefix}_labels[{upper}_NUM_CLASSES];\n\n"
            f"#ifdef __cplusplus\n}}\n#endif\n\n#endif  /* {guard} */\n")


def _source(prefix: str, task: Task, e: Emitter, lines: list[str], arena: int, kernels: list[str]) -> str:
    """The source text: kernels, constants, labels, the arena and the invoke function."""
    labels = ",\n".join(f"  {c_string(label)}" for label in task.class_names)
    body = "\n  ".join(lines)
    uses = "".join(f"#define EM_USE_{k} 1\n" for k in kernels)
    return (f"/* {prefix}_micro.c: generated by edge-mnist from {prefix}.tflite. Do not edit: re-export. */\n"
            f'#include "{prefix}_micro.h"\n\n{uses}{_kernels()}\n'
            f"{''.join(e.constants)}\n"
            f"const char *const {prefix}_labels[{prefix.upper()}_NUM_CLASSES] = {{\n{labels}\n}};\n\n"
            f"static int32_t {prefix}_arena[{max(arena // 4, 1)}];\n\n"
            f"int {prefix}_invoke(const int8_t *input, int8_t *output) {{\n"
            f"  int8_t *const arena = (int8_t *){prefix}_arena;\n  (void)arena;\n"
            f"  {body}\n  return 0;\n}}\n")


def _generated(job: ExportJob) -> MicroC:
    """The C of the .tflite this file is made from, named after it (model_int8 -> model_int8_invoke)."""
    tflite = job.built_from_path
    return generate(tflite.read_bytes(), Path(tflite.name), tflite.stem, job.task)


def _exported(micro: MicroC, name: str) -> Exported:
    """What the manifest records about a generated file."""
    return Exported(converter=f"edge-mnist {__version__} interpreter-free C", quantization=f"from {name}",
                    measured={"static_activation_bytes": str(micro.arena_bytes),
                              "weight_bytes": str(micro.weight_bytes)})


def export_source(job: ExportJob) -> Exported:
    """Write MODEL_micro.c (raises UnsupportedOperator, and writes nothing, for an operator it lacks)."""
    micro = _generated(job)
    atomic_write_bytes(job.path, micro.source.encode())
    return _exported(micro, job.built_from_path.name)


def export_header(job: ExportJob) -> Exported:
    """Write MODEL_micro.h (raises UnsupportedOperator, and writes nothing, for an operator it lacks)."""
    micro = _generated(job)
    atomic_write_bytes(job.path, micro.header.encode())
    return _exported(micro, job.built_from_path.name)


def _verify(path: Path, tflite: bytes, task: Task, part: str) -> list[str]:
    """[] when the file is exactly what this version generates from the gated .tflite, else the problem."""
    prefix = Path(path).stem.removesuffix("_micro")
    try:
        expected = getattr(generate(tflite, Path(path).with_name(f"{prefix}.tflite"), prefix, task), part)
        written = Path(path).read_text(encoding="utf-8")
    except MissingDependency:
        raise  # no ai-edge-litert schema here (32-bit Pi OS): the gate lists the file as not regenerated
    except (OSError, UnicodeDecodeError, EdgeMnistError) as exc:
        return [f"cannot be checked ({str(exc)[:160]})"]
    except Exception as exc:  # a .tflite the generator trips on is a failed check, not a crash of the gate
        return [f"cannot be checked ({type(exc).__name__}: {str(exc)[:160]})"]
    if written != expected:
        return ["not the C generated from the checked .tflite and task (edited after export, or exported by "
                "another edge-mnist version: re-export)"]
    return []


def verify_source(path: Path, tflite: bytes, task: Task, runner) -> list[str]:
    """What in MODEL_micro.c disagrees with the gated .tflite ([] when nothing): weights, constants and
    labels are all regenerated from it and compared."""
    return _verify(path, tflite, task, "source")


def verify_header(path: Path, tflite: bytes, task: Task, runner) -> list[str]:
    """What in MODEL_micro.h disagrees with the gated .tflite ([] when nothing)."""
    return _verify(path, tflite, task, "header")


__all__ = ["generate", "UnsupportedOperator", "export_source", "export_header", "verify_source", "verify_header",
           "quantize_multiplier", "plan_arena"]
