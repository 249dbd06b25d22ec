"""int8 ONNX from an int8 .tflite: the same integer model, laid out for onnxruntime's fast kernels.

Every weight, bias, scale and zero point is copied from the .tflite, so the ONNX file is the
same integer model: the same top-1 as LiteRT, outputs within a few int8 steps (where float
rounding in the stem moves a value across a quantization boundary). The graph is QDQ in the
shapes onnxruntime fuses into integer kernels in a default session, with nothing the session
must be told (tests/export/test_artifacts.py and test_onnx.py check the optimized graph):
- every activation is a QuantizeLinear -> DequantizeLinear pair in uint8, the .tflite's int8
  values shifted by 128 with their zero point (the same real numbers): onnxruntime on x86 runs
  uint8 activations either way, and OpenVINO's CPU plugin needs them, since it maps an int8 QDQ
  pair to int8 activations carrying a zero point, which its int8 kernels do not all take
  (tests/runtime/test_openvino.py); only the graph's `image` input and `probs` output stay int8;
- Conv and Gemm become QLinearConv and QGemm; a fused ReLU is dropped when the output zero point
  is the int8 minimum (the quantizer clamps there anyway), else it is an integer Clip at the zero
  point after the quantizer (exact, but onnxruntime cannot fuse it: slow);
- the stem, a first Conv on the image followed by MaxPool, runs in float32 with the .tflite's
  int8 weights dequantized, and is quantized after the pooling, which gives the same int8
  values (quantization is monotonic, so it commutes with max and ReLU): onnxruntime's int8
  convolution is slow on one input channel and its float one is not;
- a flatten goes back to TFLite's NHWC order first, so the Dense weights keep their order.
Input `image` and output `probs` are int8 with the .tflite's scale and zero point, so an
application quantizes and dequantizes alike for both formats. The operators of the image
classifiers edge-mnist exports are supported: convolutions, Dense, pooling (max, average, global
average), residual and BatchNorm ADD/MUL, ReLU/ReLU6, reshape and softmax; anything else is a
one-line error naming the operator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.formats import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME
from edge_mnist.runtime.tflite_graph import TFLITE_TYPES, Quant, TfliteGraph, read_tflite

IR_VERSION = 8  # what onnxruntime releases since 1.14 read
INT8_MIN, INT8_MAX = -128, 127
UINT8_SHIFT = 128  # an int8 activation value plus this is its uint8 value in the ONNX graph
FLOAT32 = 0  # TFLite TensorType code
TFLITE_NAME_TAG = "tflite:"
ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}  # TFLite ActivationFunctionType codes


class Converter:
    """Walks the TFLite operators in order and emits the ONNX nodes and initializers for each."""

    def __init__(self, graph: TfliteGraph, path: Path):
        """Start from the graph input; `values` maps a TFLite tensor to its int8 ONNX value."""
        self.graph, self.path = graph, path
        self.nodes: list = []
        self.initializers: list = []
        self.values: dict[int, str] = {}
        self.nchw: set[int] = set()  # TFLite tensors whose ONNX value is laid out NCHW

    def const(self, name: str, value) -> str:
        """Add an initializer and return its name."""
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        """Add a node whose single output is `output`; returns that name."""
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def is_float(self, index: int) -> bool:
        """True for a float32 tensor of a mixed model (a layer kept float, quantize.mixed)."""
        return self.graph.quant[index] is None and self.graph.types[index] == FLOAT32

    def quant(self, index: int) -> Quant:
        """A tensor's quantization, or a one-line error for a float tensor in an int8 graph."""
        q = self.graph.quant[index]
        if q is None:
            raise EdgeMnistError(f"{self.path}: tensor {self.graph.names[index]!r} is not quantized; "
                                 "export a full-integer model")
        return q

    def qparams(self, name: str, q: Quant, dtype) -> list[str]:
        """Scale and zero-point initializers for a Quantize/DequantizeLinear node; a uint8 `dtype` (an
        activation) takes the .tflite's int8 zero point shifted by UINT8_SHIFT."""
        zero = q.zero_point.astype(np.int64) + (UINT8_SHIFT if np.dtype(dtype) == np.uint8 else 0)
        if q.per_tensor:
            return [self.const(f"{name}_scale", q.scale.reshape(())),
                    self.const(f"{name}_zero_point", zero.astype(dtype).reshape(()))]
        return [self.const(f"{name}_scale", q.scale), self.const(f"{name}_zero_point", zero.astype(dtype))]

    def activation_dtype(self, index: int):
        """The ONNX element type of tensor `index`'s value: int8 for the graph output `probs` (the
        application's interface), uint8 for every activation inside the graph (the module docstring)."""
        return np.int8 if index in self.graph.outputs else np.uint8

    def dequantize(self, name: str, source: str, q: Quant, dtype=np.int8) -> str:
        """DequantizeLinear of `source` (per channel along axis 0 when `q` has several scales)."""
        attrs = {} if q.per_tensor else {"axis": 0}
        return self.node("DequantizeLinear", [source, *self.qparams(name, q, dtype)], f"{name}_dq", **attrs)

    def tensor(self, index: int, nchw: bool | None = None) -> str:
        """The float value of TFLite tensor `index`: its integer ONNX value (uint8 activations) dequantized.

        `nchw` states the layout the consuming operator needs (True: a 4-D NCHW value, False: not
        one); a value in the other layout is a one-line error rather than a silently wrong graph.
        """
        if index not in self.values:
            raise EdgeMnistError(f"{self.path}: tensor {self.graph.names[index]!r} is used before any supported "
                                 "operator produces it")
        if nchw is not None and (index in self.nchw) != nchw:
            raise EdgeMnistError(f"{self.path}: {self.graph.names[index]!r} reaches an operator in a layout this "
                                 "converter does not map (only Conv/Pool stacks, then a flatten, then Dense)")
        if self.is_float(index):
            return self.values[index]
        return self.dequantize(f"t{index}_in{len(self.nodes)}", self.values[index], self.quant(index),
                               self.activation_dtype(index))

    def constant(self, index: int, name: str, dtype=np.int8, layout=None, stored_float: bool = False) -> str:
        """A TFLite constant (weights or int32 bias), transposed by `layout`, dequantized.

        stored_float=True stores the dequantized values themselves (the same float32 numbers a
        DequantizeLinear gives): onnxruntime prepacks constant float weights, not computed ones.
        """
        data = self.graph.data[index]
        data = data if layout is None else data.transpose(layout)
        if self.is_float(index):
            return self.const(f"{name}_float", np.ascontiguousarray(data, np.float32))
        q = self.quant(index)
        axis = q.axis if layout is None else layout.index(q.axis)
        if not q.per_tensor and axis != 0:
            raise EdgeMnistError(f"{self.path}: {self.graph.names[index]!r} is quantized per channel along "
                                 f"axis {q.axis}, which this converter does not map")
        if stored_float:
            shape = (-1,) + (1,) * (data.ndim - 1)
            values = (data.astype(np.float32) - q.zero_point.reshape(shape).astype(np.float32)) * q.scale.reshape(shape)
            return self.const(f"{name}_float", values.astype(np.float32))
        return self.dequantize(name, self.const(f"{name}_q", data), q, dtype)

    def output_name(self, index: int) -> str:
        """ONNX value name of a TFLite tensor: the public names for the graph input and output."""
        if index in self.graph.inputs:
            return INPUT_NAME
        return OUTPUT_NAME if index in self.graph.outputs else f"t{index}"

    def requantize(self, value: str, out: int, activation: str | None) -> None:
        """QuantizeLinear onto tensor `out`'s grid, then the fused activation as an integer Clip; a float
        `out` (a layer kept float) gets the activation in float instead."""
        if self.is_float(out):
            self.values[out] = self.float_activation(value, out, activation)
            self.describe(out)
            return
        q, name, dtype = self.quant(out), self.output_name(out), self.activation_dtype(out)
        zero = int(q.zero_point.reshape(-1)[0])
        low = zero if activation in ("relu", "relu6") else INT8_MIN
        high = INT8_MAX
        if activation == "relu6":
            high = min(INT8_MAX, zero + int(np.floor(6.0 / float(q.scale.reshape(-1)[0]) + 0.5)))
        if low <= INT8_MIN and high == INT8_MAX:
            self.values[out] = self.node("QuantizeLinear", [value, *self.qparams(name, q, dtype)], name)
        else:
            shift = UINT8_SHIFT if dtype == np.uint8 else 0
            quantized = self.node("QuantizeLinear", [value, *self.qparams(f"{name}_q", q, dtype)], f"{name}_q")
            self.values[out] = self.node("Clip", [quantized, self.const(f"{name}_min", dtype(low + shift)),
                                                  self.const(f"{name}_max", dtype(high + shift))], name)
        self.describe(out)

    def describe(self, out: int) -> None:
        """Name the .tflite tensor a node computes in its doc_string (tflite:<fused tensor name>), so the
        ONNX file maps back to Keras layers by itself (edge-mnist debug)."""
        node = next(n for n in reversed(self.nodes) if n.output[0] == self.values[out])
        node.doc_string = f"{TFLITE_NAME_TAG}{self.graph.names[out]}"

    def float_activation(self, value: str, out: int, activation: str | None) -> str:
        """The fused activation of a float operator as a float Relu/Clip (or nothing)."""
        name = self.output_name(out)
        if activation == "relu":
            return self.node("Relu", [value], f"{name}_relu")
        if activation == "relu6":
            return self.node("Clip", [value, self.const(f"{name}_min", np.float32(0)),
                                      self.const(f"{name}_max", np.float32(6))], f"{name}_relu6")
        return value

    def activation(self, options) -> str | None:
        """The fused activation of an operator; a one-line error for one not supported here."""
        code = getattr(options, "fusedActivationFunction", 0)
        if code not in ACTIVATIONS:
            raise EdgeMnistError(f"{self.path}: fused activation {code} is not supported")
        return ACTIVATIONS[code]

    def conv(self, inputs: list[int], out: int, options, depthwise: bool = False, source: str | None = None) -> str:
        """A CONV_2D / DEPTHWISE_CONV_2D node in float on dequantized int8 weights; returns its output.

        With a float `source` (the stem) the weights are stored dequantized, so the float kernel
        can prepack them.
        """
        x, w = inputs[0], inputs[1]
        name = f"op{out}"
        if depthwise:  # TFLite [1, H, W, C*M] -> ONNX [C*M, 1, H, W], group = C
            layout, group = (3, 0, 1, 2), self.graph.shapes[x][3]
        else:  # TFLite OHWI -> ONNX OIHW
            layout, group = (0, 3, 1, 2), 1
        stored_float = source is not None
        feeds = [source or self.tensor(x, nchw=True),
                 self.constant(w, f"{name}_w", layout=layout, stored_float=stored_float)]
        if len(inputs) > 2 and inputs[2] >= 0:
            feeds.append(self.constant(inputs[2], f"{name}_bias", np.int32, stored_float=stored_float))
        kernel = [int(k) for k in self.graph.data[w].shape[1:3]]
        strides, dilation = [options.strideH, options.strideW], [options.dilationHFactor, options.dilationWFactor]
        pads = _padding(options, self.graph.shapes[x][1:3], kernel, strides, dilation)
        return self.node("Conv", feeds, f"{name}_conv", strides=strides, dilations=dilation, pads=pads, group=group)

    def op_conv(self, inputs: list[int], out: int, options, depthwise: bool = False) -> None:
        """Conv as DQ -> Conv -> Q (+ integer Clip): onnxruntime's QLinearConv."""
        self.requantize(self.conv(inputs, out, options, depthwise), out, self.activation(options))
        self.nchw.add(out)

    def op_depthwise(self, inputs: list[int], out: int, options) -> None:
        """DEPTHWISE_CONV_2D: a grouped Conv."""
        self.op_conv(inputs, out, options, depthwise=True)

    def op_fully_connected(self, inputs: list[int], out: int, options) -> None:
        """FULLY_CONNECTED as DQ -> Gemm(transB) -> Q (+ integer Clip): onnxruntime's QGemm."""
        name = f"op{out}"
        feeds = [self.tensor(inputs[0], nchw=False), self.constant(inputs[1], f"{name}_w")]
        if len(inputs) > 2 and inputs[2] >= 0:
            feeds.append(self.constant(inputs[2], f"{name}_bias", np.int32))
        self.requantize(self.node("Gemm", feeds, f"{name}_gemm", transB=1), out, self.activation(options))

    def same_grid(self, a: int, c: int, op: str) -> None:
        """MaxPool and Reshape keep the grid (TFLite's rule), so no rescaling is emitted for them."""
        if self.is_float(a) and self.is_float(c):
            return
        qa, qc = self.quant(a), self.quant(c)
        if not (np.allclose(qa.scale, qc.scale) and np.array_equal(qa.zero_point, qc.zero_point)):
            raise EdgeMnistError(f"{self.path}: {op} changes the quantization of {self.graph.names[a]!r}; "
                                 "not supported")

    def pool(self, source: str, x: int, out: int, options, op: str = "MaxPool") -> str:
        """A MaxPool/AveragePool node over `source` with the TFLite operator's window, strides and padding
        (AveragePool leaves padding out of the mean, as TensorFlow does: ONNX's default)."""
        if self.activation(options) is not None:
            raise EdgeMnistError(f"{self.path}: a pooling operator with a fused activation is not supported")
        kernel, strides = [options.filterHeight, options.filterWidth], [options.strideH, options.strideW]
        pads = _padding(options, self.graph.shapes[x][1:3], kernel, strides, [1, 1])
        return self.node(op, [source], f"op{out}_pool", kernel_shape=kernel, strides=strides, pads=pads)

    def op_max_pool(self, inputs: list[int], out: int, options, op: str = "MaxPool") -> None:
        """MAX_POOL_2D between a DQ and a Q of one grid (onnxruntime drops the pair: int8 MaxPool)."""
        self.same_grid(inputs[0], out, op)
        self.requantize(self.pool(self.tensor(inputs[0], nchw=True), inputs[0], out, options, op), out, None)
        self.nchw.add(out)

    def op_average_pool(self, inputs: list[int], out: int, options) -> None:
        """AVERAGE_POOL_2D: an AveragePool between DQ and Q (onnxruntime's QLinearAveragePool)."""
        self.op_max_pool(inputs, out, options, "AveragePool")

    def operand(self, index: int, like: int, name: str) -> str:
        """One input of an elementwise operator: a tensor, or a constant broadcast in the layout of `like`
        (a per-channel NHWC constant becomes [1, C, 1, 1] when `like` is NCHW here)."""
        if index not in self.graph.data:
            return self.tensor(index, nchw=like in self.nchw)
        value = self.graph.data[index]
        if like in self.nchw and value.size > 1:
            if value.size != value.shape[-1]:
                raise EdgeMnistError(f"{self.path}: constant {self.graph.names[index]!r} is not per channel")
            value = value.reshape(1, -1, 1, 1)
        if self.is_float(index):
            return self.const(f"{name}_float", value.astype(np.float32))
        return self.dequantize(name, self.const(f"{name}_q", value), self.quant(index))

    def elementwise(self, op: str, inputs: list[int], out: int, options) -> None:
        """ADD/MUL of two tensors or a tensor and a constant (a BatchNorm the converter could not fold,
        a residual connection): DQ -> Add/Mul -> Q, onnxruntime's QLinearAdd/QLinearMul."""
        a, b = inputs
        like = b if a in self.graph.data else a
        if a not in self.graph.data and b not in self.graph.data and (a in self.nchw) != (b in self.nchw):
            raise EdgeMnistError(f"{self.path}: {op} of two tensors in different layouts is not supported")
        feeds = [self.operand(a, like, f"op{out}_a"), self.operand(b, like, f"op{out}_b")]
        self.requantize(self.node(op, feeds, f"op{out}_{op.lower()}"), out, self.activation(options))
        if like in self.nchw:
            self.nchw.add(out)

    def op_add(self, inputs: list[int], out: int, options) -> None:
        """ADD (see `elementwise`)."""
        self.elementwise("Add", inputs, out, options)

    def op_mul(self, inputs: list[int], out: int, options) -> None:
        """MUL (see `elementwise`)."""
        self.elementwise("Mul", inputs, out, options)

    def op_relu(self, inputs: list[int], out: int, options, activation: str = "relu") -> None:
        """A standalone RELU/RELU6: the integer clamp of `requantize` on the output grid."""
        x = inputs[0]
        self.requantize(self.tensor(x), out, activation)
        if x in self.nchw:
            self.nchw.add(out)

    def op_relu6(self, inputs: list[int], out: int, options) -> None:
        """RELU6 (see `op_relu`)."""
        self.op_relu(inputs, out, options, "relu6")

    def op_mean(self, inputs: list[int], out: int, options) -> None:
        """MEAN over height and width (global average pooling): GlobalAveragePool, then a reshape to
        [N, C] unless the dimensions are kept."""
        x, axes = inputs[0], sorted(int(a) % 4 for a in self.graph.data[inputs[1]].reshape(-1))
        if axes != [1, 2] or x not in self.nchw:
            raise EdgeMnistError(f"{self.path}: MEAN is supported over height and width only")
        pooled = self.node("GlobalAveragePool", [self.tensor(x, nchw=True)], f"op{out}_gap")
        if getattr(options, "keepDims", False):
            self.requantize(pooled, out, None)
            self.nchw.add(out)
            return
        shape = self.const(f"op{out}_shape", np.array([-1, self.graph.shapes[out][-1]], np.int64))
        self.requantize(self.node("Reshape", [pooled, shape], f"op{out}_flat"), out, None)

    def op_reshape(self, inputs: list[int], out: int, options) -> None:
        """RESHAPE, from TFLite's NHWC order (a transpose first when the value is NCHW here)."""
        x = inputs[0]
        self.same_grid(x, out, "RESHAPE")
        source = self.tensor(x)
        if x in self.nchw:
            source = self.node("Transpose", [source], f"op{out}_nhwc", perm=[0, 2, 3, 1])
        shape = self.const(f"op{out}_shape", np.array([-1, *self.graph.shapes[out][1:]], np.int64))
        self.requantize(self.node("Reshape", [source, shape], f"op{out}_reshape"), out, None)

    def op_softmax(self, inputs: list[int], out: int, options) -> None:
        """SOFTMAX in float between DQ and Q (ten values: cheap)."""
        scaled = self.tensor(inputs[0], nchw=False)
        beta = float(getattr(options, "beta", 1.0) or 1.0)
        if beta != 1.0:
            scaled = self.node("Mul", [scaled, self.const(f"op{out}_beta", np.float32(beta))], f"op{out}_scaled")
        self.requantize(self.node("Softmax", [scaled], f"op{out}_softmax", axis=-1), out, None)

    def op_dequantize(self, inputs: list[int], out: int, options) -> None:
        """DEQUANTIZE into a layer kept float, as Cast -> Sub -> Mul rather than DequantizeLinear: onnxruntime's
        WeightBiasQuantization turns a float Conv/Gemm whose input comes from a DequantizeLinear into int8
        with per-tensor weights of its own, which is exactly the precision the layer was kept float to avoid."""
        x, q = inputs[0], self.quant(inputs[0])
        if not q.per_tensor:
            raise EdgeMnistError(f"{self.path}: DEQUANTIZE of a per-channel tensor is not supported")
        name = f"op{out}_dequantize"
        zero = q.zero_point.astype(np.float32) + (UINT8_SHIFT if self.activation_dtype(x) == np.uint8 else 0)
        value = self.node("Cast", [self.values[x]], f"{name}_cast", to=1)
        value = self.node("Sub", [value, self.const(f"{name}_zero_point", zero.reshape(()))], f"{name}_shift")
        self.values[out] = self.node("Mul", [value, self.const(f"{name}_scale", q.scale.reshape(()))], f"{name}_scaled")
        if x in self.nchw:
            self.nchw.add(out)

    def op_quantize(self, inputs: list[int], out: int, options) -> None:
        """QUANTIZE out of a layer kept float: a QuantizeLinear onto the int8 grid of `out`."""
        self.requantize(self.tensor(inputs[0]), out, None)
        if inputs[0] in self.nchw:
            self.nchw.add(out)

    def image(self, transpose_first: bool) -> str:
        """The int8 NHWC `image` input as a float NCHW value.

        The float stem transposes the int8 tensor (a quarter of the bytes) and then dequantizes;
        an int8 first Conv needs the dequantize right at the input and a quantize after the
        transpose, which is the QDQ pair onnxruntime turns into its integer input.
        """
        (index,) = self.graph.inputs
        if self.graph.types[index] != 9 or len(self.graph.shapes[index]) != 4:
            raise EdgeMnistError(f"{self.path}: expected one int8 NHWC image input; export a full-integer model")
        if transpose_first:
            nchw = self.node("Transpose", [INPUT_NAME], "image_nchw", perm=[0, 3, 1, 2])
            return self.dequantize(INPUT_NAME, nchw, self.quant(index))
        return self.node("Transpose", [self.dequantize(INPUT_NAME, INPUT_NAME, self.quant(index))], "image_nchw",
                         perm=[0, 3, 1, 2])

    def stem(self) -> int:
        """Convert a leading Conv -> MaxPool in float (see the module docstring); returns the ops used (0 or 2)."""
        ops, (index,) = self.graph.ops, self.graph.inputs
        if len(ops) < 2 or (ops[0][0], ops[1][0]) != ("CONV_2D", "MAX_POOL_2D"):
            return 0
        (_, conv_in, (conv_out,), conv_opts), (_, pool_in, (pool_out,), pool_opts) = ops[0], ops[1]
        used_later = any(conv_out in op[1] for op in ops[2:])
        if conv_in[0] != index or pool_in[0] != conv_out or used_later:
            return 0
        self.same_grid(conv_out, pool_out, "MAX_POOL_2D")
        pooled = self.pool(self.conv(conv_in, conv_out, conv_opts, source=self.image(True)), conv_out, pool_out,
                           pool_opts)
        activation = self.activation(conv_opts)
        if activation == "relu":
            pooled = self.node("Relu", [pooled], f"op{pool_out}_relu")
        elif activation == "relu6":
            pooled = self.node("Clip", [pooled, self.const("relu6_min", np.float32(0)),
                                        self.const("relu6_max", np.float32(6))], f"op{pool_out}_relu6")
        self.requantize(pooled, pool_out, None)
        self.nchw.add(pool_out)
        return 2

    def input_pair(self) -> None:
        """Without a float stem, the NCHW image is quantized again so the first Conv sees a QDQ pair."""
        (index,) = self.graph.inputs
        q = self.quant(index)
        self.values[index] = self.node("QuantizeLinear", [self.image(False), *self.qparams("image_nchw_q", q, np.uint8)],
                                       "image_nchw_q")
        self.nchw.add(index)


OPERATORS = {"CONV_2D": Converter.op_conv, "DEPTHWISE_CONV_2D": Converter.op_depthwise,
             "FULLY_CONNECTED": Converter.op_fully_connected, "MAX_POOL_2D": Converter.op_max_pool,
             "RESHAPE": Converter.op_reshape, "SOFTMAX": Converter.op_softmax,
             "AVERAGE_POOL_2D": Converter.op_average_pool, "ADD": Converter.op_add, "MUL": Converter.op_mul,
             "RELU": Converter.op_relu, "RELU6": Converter.op_relu6, "MEAN": Converter.op_mean,
             "QUANTIZE": Converter.op_quantize, "DEQUANTIZE": Converter.op_dequantize}


def _padding(options, in_hw: list[int], kernel: list[int], strides: list[int], dilation: list[int]) -> list[int]:
    """ONNX pads for TFLite's SAME (extra at the end, as TensorFlow does) or VALID padding."""
    if options.padding != 0:  # VALID
        return [0, 0, 0, 0]
    pads = []
    for size, k, s, d in zip(in_hw, kernel, strides, dilation):
        out = -(-size // s)
        pads.append(max(0, (out - 1) * s + (k - 1) * d + 1 - size))
    return [pads[0] // 2, pads[1] // 2, pads[0] - pads[0] // 2, pads[1] - pads[1] // 2]


def _walk(conv: Converter, float_stem: bool) -> None:
    """Emit every operator in order: the float stem where it applies, then one converter per operator."""
    done = conv.stem() if float_stem else 0
    if not done:
        conv.input_pair()
    for op, inputs, outputs, options in conv.graph.ops[done:]:
        if op not in OPERATORS:
            raise EdgeMnistError(f"{conv.path}: TFLite operator {op} has no int8 ONNX conversion here")
        OPERATORS[op](conv, inputs, outputs[0], options)


def convert(model: bytes, path: Path, metadata: dict[str, str], float_stem: bool = True):
    """The ONNX ModelProto computing the same int8 model as the .tflite bytes `model`.

    float_stem=False keeps every layer in int8 (benchmarks/onnx_variants.py measures both).
    """
    from onnx import TensorProto, checker, helper

    graph = read_tflite(model, path)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise EdgeMnistError(f"{path}: expected one input and one output, found {len(graph.inputs)} and "
                             f"{len(graph.outputs)}")
    for i, array in graph.data.items():
        if TFLITE_TYPES.get(graph.types[i]) not in ("float32", "int32", "int8"):
            raise EdgeMnistError(f"{path}: constant {graph.names[i]!r} has unsupported TFLite type {graph.types[i]}")
    conv = Converter(graph, path)
    try:
        _walk(conv, float_stem)
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise EdgeMnistError(f"{path}: cannot convert to ONNX ({type(exc).__name__}: {str(exc)[:120]})") from exc
    (index,) = graph.outputs
    if conv.values.get(index) != OUTPUT_NAME or graph.types[index] != 9 or index in conv.nchw:
        raise EdgeMnistError(f"{path}: the graph output is not a 2-D int8 tensor of a supported operator")
    shape = lambda i: ["batch", *graph.shapes[i][1:]]  # noqa: E731
    onnx_graph = helper.make_graph(
        conv.nodes, "edge_mnist_int8",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT8, shape(graph.inputs[0]))],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.INT8, shape(index))], conv.initializers)
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="edge-mnist")
    proto.ir_version = IR_VERSION
    helper.set_model_props(proto, metadata)
    checker.check_model(proto)
    return proto
