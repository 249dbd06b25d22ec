"""Per-layer quantization error of an int8 artifact against its calibrated float model: the analysis
`debug` reports and `export --fallback` ranks layers by.

For each Keras layer an int8 artifact holds:
- weights: SQNR (dB) of the dequantized int8 weights against the float ones, and their RMSE in
  units of the quantization scale (0.29 is rounding alone);
- activations: the layer's input and output quantized onto the artifact's own int8 grid, from
  the float model's values (SQNR as the mean over channels, so a grid stretched by one huge
  channel shows even though that channel dominates the tensor's power), and the end-to-end
  SQNR of what the artifact really computes there against float;
- the test accuracy with only that layer kept float (quantize.mixed), in the artifact's runtime.
Layers are sorted worst first by the lowest SQNR they touch.

A QAT artifact is measured against its QAT model with the fake quantization off (quantize.qat.float_model),
calibrated like a float model; its tensors carry other names (tfmot's `quant_conv1`), so they are matched
to the artifact's operator by operator (FloatReference). Its accuracy with a layer kept float is left out:
for QAT that means fine-tuning again, which `export --method qat --fallback` does for the layers it tries.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_mnist.core.tfenv import filtered_stderr
from edge_mnist.quantize.mixed import IGNORED, Mixer, Op, op_layers
from edge_mnist.quantize.qat import float_model
from edge_mnist.quantize.onnx_from_tflite import TFLITE_NAME_TAG
from edge_mnist.registry.formats import INPUT_NAME
from edge_mnist.registry.methods import FLOAT_KERAS
from edge_mnist.runtime.base import quantize
from edge_mnist.runtime.tflite_graph import read_tflite

DEBUG_IMAGES = 500  # test images the activation statistics use
EXACT_DB = 99.0  # SQNR reported for a value quantized without error


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (EXACT_DB for no error, NaN for no signal)."""
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference.astype(np.float64) - approx)))
    if signal == 0:
        return math.nan
    return EXACT_DB if noise == 0 else min(EXACT_DB, 10 * math.log10(signal / noise))


def channel_sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Mean over the last axis (channels) of each channel's SQNR; channels without signal are left out."""
    values = [sqnr_db(reference[..., c], approx[..., c]) for c in range(reference.shape[-1])]
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def fake_quantize(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int | None = None):
    """`values` rounded onto an int8 grid and back (per channel along `axis` when scales are several)."""
    shape = [1] * values.ndim
    if axis is not None and scale.size > 1:
        shape[axis] = -1
    s, z = scale.reshape(shape), zero_point.reshape(shape)
    return (np.clip(np.round(values / s) + z, -128, 127) - z) * s


def rmse_over_scale(reference: np.ndarray, approx: np.ndarray, scale: np.ndarray, axis: int | None = None) -> float:
    """Root-mean-square error in units of the quantization step (mean over channels for per-channel scales)."""
    if axis is None or scale.size == 1:
        return float(np.sqrt(np.mean(np.square(reference - approx))) / float(scale.reshape(-1)[0]))
    moved = np.moveaxis(reference - approx, axis, 0).reshape(scale.size, -1)
    return float(np.mean(np.sqrt(np.mean(np.square(moved), axis=1)) / scale))


@dataclass
class LayerDebug:
    """The quantization error of one Keras layer in one artifact."""

    layer: str
    operators: list[str]
    can_stay_float: bool
    weight_sqnr_db: float | None = None
    weight_rmse_over_scale: float | None = None
    input_sqnr_db: float | None = None
    output_sqnr_db: float | None = None
    output_rmse_over_scale: float | None = None
    end_to_end_sqnr_db: float | None = None
    accuracy_if_float: float | None = None
    accuracy_gain_pp: float | None = None

    @property
    def score(self) -> float:
        """The lowest SQNR the layer touches (its weights, its input grid, its output grid): the rank key."""
        values = [v for v in (self.weight_sqnr_db, self.input_sqnr_db, self.output_sqnr_db)
                  if v is not None and not math.isnan(v)]
        return min(values) if values else EXACT_DB


@dataclass
class ArtifactDebug:
    """One artifact's per-layer table, worst first."""

    file: str
    runtime: str
    accuracy: float
    layers: list[LayerDebug] = field(default_factory=list)

    def ranking(self) -> list[str]:
        """Layers that can stay float, worst first (ties: larger accuracy gain first, then graph order)."""
        return [row.layer for row in self.layers if row.can_stay_float]


@dataclass
class FloatReference:
    """The float model an int8 graph is measured against: its calibrated graph and operators (for the float
    weights) and its tensors on the debug images, both under the int8 graph's tensor names."""

    graph: object
    ops: list[Op]
    values: dict[str, np.ndarray]


def float_reference(mixer, images: np.ndarray, like=None) -> FloatReference:
    """The calibrated model of `mixer` (quantize.mixed) run on `images`; with `like` (the Mixer of a QAT
    model), renamed to that model's tensor names (matching_names)."""
    values = tflite_tensors(mixer.calibrated_model, images)
    if like is None:
        return FloatReference(mixer.graph, mixer.ops, values)
    names = matching_names(mixer.graph, mixer.ops, like.graph, like.ops)
    renamed = {names[name]: value for name, value in values.items() if name in names}
    return FloatReference(mixer.graph, [replace(op, name=names.get(op.name, op.name)) for op in mixer.ops],
                          {**values, **renamed})  # the original names too: the input's is the artifact's


def reference_for(mixer, images: np.ndarray) -> FloatReference:
    """What the artifacts of `mixer` are measured against: its calibrated float model, or for a QAT model's
    mixer that model with the fake quantization off (quantize.qat.float_model), calibrated on the same images."""
    if mixer.method.source == FLOAT_KERAS:
        return float_reference(mixer, images)
    return float_reference(Mixer.for_model(float_model(mixer.keras_model), mixer.calib), images, like=mixer)


def matching_names(float_graph, float_ops: list[Op], int8_graph, int8_ops: list[Op]) -> dict[str, str]:
    """Float tensor name -> int8 tensor name: the k-th operator of a Keras layer in one graph is the k-th of
    that layer in the other (quantize and dequantize operators aside), and so are their first inputs."""
    def by_layer(ops):
        found: dict[str, list[Op]] = {}
        for op in ops:
            if op.kind not in IGNORED:
                found.setdefault(op.layer, []).append(op)
        return found

    int8_by_layer, names = by_layer(int8_ops), {}
    for layer, ops in by_layer(float_ops).items():
        for float_op, int8_op in zip(ops, int8_by_layer.get(layer, [])):
            if float_op.kind == int8_op.kind:
                names[float_op.name] = int8_op.name
                names.setdefault(float_graph.names[float_op.inputs[0]], int8_graph.names[int8_op.inputs[0]])
    return names


def tflite_tensors(model: bytes, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of a .tflite after one batch, by name, dequantized to float (LiteRT without delegates,
    which is what keeps the intermediate tensors)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType


    with filtered_stderr():
        it = Interpreter(model_content=model, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    detail = it.get_input_details()[0]
    it.resize_tensor_input(detail["index"], [len(images), *images.shape[1:]])
    it.allocate_tensors()
    scale, zero = detail["quantization"]
    it.set_tensor(detail["index"], images if detail["dtype"] == np.float32 else quantize(images, scale, zero,
                                                                                          detail["dtype"]))
    it.invoke()
    found = {}
    for t in it.get_tensor_details():
        try:
            value = it.get_tensor(t["index"])
        except ValueError:
            continue
        if value.ndim and value.shape[0] == len(images):
            s, z = t["quantization"]
            found[t["name"]] = value.astype(np.float32) if s == 0 else (value.astype(np.float32) - z) * s
    return found


def onnx_tensors(model: bytes, images: np.ndarray, input_scale: float, input_zero_point: int) -> dict:
    """The value of every node that names its .tflite tensor (doc_string, quantize.onnx_from_tflite), after one
    batch, dequantized and back in NHWC order; onnxruntime runs it with these values as extra outputs."""
    import onnx
    import onnxruntime as ort


    proto = onnx.load_from_string(model)
    producers = {n.output[0]: n for n in proto.graph.node}
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    tapped = {}
    for node in proto.graph.node:
        if node.doc_string.startswith(TFLITE_NAME_TAG):
            grid = node if node.op_type == "QuantizeLinear" else producers.get(node.input[0])
            quantized = grid is not None and grid.op_type == "QuantizeLinear"
            tapped[node.output[0]] = (node.doc_string[len(TFLITE_NAME_TAG):],
                                      (consts[grid.input[1]], consts[grid.input[2]]) if quantized else None)
    outputs = [o.name for o in proto.graph.output]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in tapped if n not in outputs)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = quantize(images, input_scale, input_zero_point, np.int8)
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT_NAME: feed})))
    found = {}
    for value_name, (tensor_name, grid) in tapped.items():
        value = values[value_name].astype(np.float32)
        if grid is not None:
            value = (value - grid[1].astype(np.float32)) * grid[0]
        found[tensor_name] = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
    return found


def _weight_stats(graph, float_graph, op, float_op) -> tuple[float | None, float | None]:
    """SQNR and RMSE/scale of an operator's int8 weights against the float model's."""
    w, fw = op.inputs[1] if len(op.inputs) > 1 else -1, float_op.inputs[1] if len(float_op.inputs) > 1 else -1
    q = graph.quant[w] if w in graph.data else None
    if q is None or fw not in float_graph.data or graph.data[w].shape != float_graph.data[fw].shape:
        return None, None
    reference = float_graph.data[fw].astype(np.float32)
    axis = q.axis if q.scale.size > 1 else None
    shape = [1] * reference.ndim
    if axis is not None:
        shape[axis] = -1
    approx = (graph.data[w].astype(np.float32) - q.zero_point.reshape(shape)) * q.scale.reshape(shape)
    return sqnr_db(reference, approx), rmse_over_scale(reference, approx, q.scale, axis)


def _grid_sqnr(graph, index: int, reference: np.ndarray | None) -> tuple[float | None, float | None]:
    """(mean channel SQNR, RMSE/scale) of float values put on tensor `index`'s int8 grid."""
    q = graph.quant[index]
    if q is None or reference is None:
        return None, None
    approx = fake_quantize(reference, q.scale, q.zero_point)
    return channel_sqnr_db(reference, approx), rmse_over_scale(reference, approx, q.scale)


def layer_table(graph, ops, float_graph, float_ops, float_values: dict, actual: dict) -> list[LayerDebug]:
    """One LayerDebug per Keras layer of an int8 graph (quantize.mixed.op_layers order), statistics filled in."""
    float_by_name = {op.name: op for op in float_ops}
    rows: dict[str, LayerDebug] = {}
    for op in ops:
        if op.kind in ("QUANTIZE", "DEQUANTIZE"):
            continue
        row = rows.setdefault(op.layer, LayerDebug(op.layer, [], op.candidate))
        row.operators.append(op.kind)
        row.can_stay_float = row.can_stay_float or op.candidate
        if op.name in float_by_name and row.weight_sqnr_db is None:
            row.weight_sqnr_db, row.weight_rmse_over_scale = _weight_stats(graph, float_graph, op,
                                                                           float_by_name[op.name])
        if len(row.operators) == 1:
            source = graph.names[op.inputs[0]]
            row.input_sqnr_db, _ = _grid_sqnr(graph, op.inputs[0], float_values.get(source))
        reference = float_values.get(op.name)
        row.output_sqnr_db, row.output_rmse_over_scale = _grid_sqnr(graph, op.output, reference)
        if reference is not None and op.name in actual:
            row.end_to_end_sqnr_db = sqnr_db(reference, actual[op.name])
    return list(rows.values())


def rank(rows: list[LayerDebug]) -> list[LayerDebug]:
    """Worst first: lowest SQNR touched, then the larger accuracy gain from keeping it float. Pooling and
    reshapes come last: they keep the grid of the layer before them, which is where the error is made."""
    return sorted(rows, key=lambda r: (not r.can_stay_float, r.score, -(r.accuracy_gain_pp or 0.0)))


def analyse(mixer, artifact: bytes, runtime: str, images: np.ndarray, labels: np.ndarray, runner, name: str,
            progress=print, reference: FloatReference | None = None) -> ArtifactDebug:
    """The ranked per-layer table of one int8 artifact made from `mixer`'s calibrated model (quantize.mixed):
    statistics on the first DEBUG_IMAGES test images, accuracies on all of them. `reference`: the float model
    to measure against, when the caller has it (a QAT artifact's: module docstring); else `mixer`'s own."""

    sample = images[:DEBUG_IMAGES]
    graph = read_tflite(mixer.tflite(), Path(name))
    ops = op_layers(graph, mixer.layer_names)
    if reference is None:
        reference = reference_for(mixer, sample)
    actual = (tflite_tensors(artifact, sample) if runtime == "tflite" else
              onnx_tensors(artifact, sample, runner.input_scale, runner.input_zero_point))
    accuracy = float((runner.predict(images).argmax(1) == labels).mean())
    rows = layer_table(graph, ops, reference.graph, reference.ops, reference.values, actual)
    for row in (r for r in rows if r.can_stay_float and mixer.method.float_layer_accuracy):
        progress(f"  {name}: accuracy with {row.layer} kept float")
        mix = mixer.runner((row.layer,), runtime)
        row.accuracy_if_float = float((mix.predict(images).argmax(1) == labels).mean())
        row.accuracy_gain_pp = (row.accuracy_if_float - accuracy) * 100
    return ArtifactDebug(name, runtime, accuracy, rank(rows))
