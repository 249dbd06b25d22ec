"""Mixed int8/float TFLite: the int8 model with chosen Keras layers kept in float32.

The TF converter calibrates once (`calibrated`), then TFLite's MLIR quantizer writes the int8
model leaving out the operators it is told to (`denylisted_nodes`, named by their output
tensors). Those tensor names are the fused names the converter gives, e.g.
"model/conv1/Relu;model/conv1/BiasAdd;...", so `op_layers` maps every operator back to the Keras
layer(s) it came from ("bn+probs" where a BatchNorm was folded into the next Dense). Pooling and
reshapes keep their input's grid, so they are never chosen on their own: one runs in float when
the layer before it does (a float layer's output is then quantized only where an int8 layer
needs it). Input and output stay int8 with the same scale and zero point as the all-int8 model.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.tfenv import filtered_stderr, import_tf
from edge_mnist.quantize.onnx_from_tflite import convert
from edge_mnist.quantize.ptq import int8_converter
from edge_mnist.quantize.qat import keras_names, qat_finetune
from edge_mnist.registry.methods import PTQ, QAT, Method
from edge_mnist.runtime.base import io_quantization
from edge_mnist.runtime.onnx import OnnxRunner
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.runtime.tflite_graph import read_tflite

PASS_THROUGH = ("MAX_POOL_2D", "RESHAPE")  # keep the input's quantization grid
IGNORED = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class Op:
    """One TFLite operator: its kind, tensors and the Keras layer label it belongs to."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    output: int
    name: str  # the output tensor's name, which the quantizer's denylist uses
    layer: str  # Keras layer name(s), "+"-joined when the converter fused several

    @property
    def candidate(self) -> bool:
        """An operator with its own output grid, which can be kept float on its own."""
        return self.kind not in PASS_THROUGH + IGNORED


def layer_label(tensor_name: str, layer_names: list[str] | dict[str, str]) -> str:
    """The Keras layers named in a (fused, ';'-joined) TFLite tensor name, in model order; '' for none.
    `layer_names` maps a name in the graph to the label to give (tfmot's `quant_conv1` is `conv1`)."""
    labels = layer_names if isinstance(layer_names, dict) else {name: name for name in layer_names}
    parts = {part for piece in tensor_name.split(";") for part in piece.split("/")}
    return "+".join(dict.fromkeys(label for name, label in labels.items() if name in parts))


def op_layers(graph, layer_names: list[str] | dict[str, str]) -> list[Op]:
    """The operators of a parsed .tflite (quantize.onnx_from_tflite.TfliteGraph) with their Keras layers;
    an operator whose name names no layer (the final softmax's 'StatefulPartitionedCall:0', a
    QUANTIZE) belongs to the layer that produced its input."""
    producer: dict[int, Op] = {}
    ops = []
    for index, (kind, inputs, outputs, _) in enumerate(graph.ops):
        name = graph.names[outputs[0]]
        label = layer_label(name, layer_names)
        if not label:
            source = next((producer[i] for i in inputs if i in producer), None)
            label = source.layer if source else "input"
        op = Op(index, kind, tuple(i for i in inputs if i >= 0), outputs[0], name, label)
        producer[outputs[0]] = op
        ops.append(op)
    return ops


def candidates(ops: list[Op]) -> list[str]:
    """Layer labels that can be kept float, in graph order."""
    seen: list[str] = []
    for op in ops:
        if op.candidate and op.layer not in seen:
            seen.append(op.layer)
    return seen


def denylist(ops: list[Op], float_layers: tuple[str, ...]) -> list[str]:
    """Output tensor names of the operators to keep float: those of `float_layers`, and every pooling or
    reshape that follows a float operator."""
    chosen, names = set(), []
    producer = {op.output: op for op in ops}
    for op in ops:
        follows = op.kind in PASS_THROUGH and any(producer.get(i) in chosen for i in op.inputs)
        if op.kind not in IGNORED and (op.layer in float_layers or follows):
            chosen.add(op)
            names.append(op.name)
    return names


def followers(ops: list[Op], float_layers: tuple[str, ...]) -> list[str]:
    """The pass-through layers that run in float because of `float_layers` (for the manifest's note)."""
    kept = set(denylist(ops, float_layers))
    return [op.layer for op in ops if op.name in kept and op.layer not in float_layers]


def calibrated(converter) -> bytes:
    """The float model with calibration statistics: the converter (quantize.ptq.int8_converter) run up to,
    not including, quantization."""
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True
    with filtered_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Statistics for quantized inputs were expected": int8 input is by design
        return converter.convert()


def quantize(calibrated_model: bytes, denylisted_nodes: list[str]) -> bytes:
    """The int8 model (int8 input and output, per-tensor Dense weights, as quantize.ptq) with the
    operators named in `denylisted_nodes` left in float32."""
    tf, _ = import_tf()
    from tensorflow.lite.python import convert

    with filtered_stderr():
        return convert.mlir_quantize(calibrated_model, fully_quantize=True, input_data_type=tf.int8,
                                     output_data_type=tf.int8, denylisted_nodes=list(denylisted_nodes),
                                     disable_per_channel_for_dense_layers=True)


@dataclass
class Mixer:
    """Builds and runs mixes of one calibrated model: the .tflite with some layers float, and the ONNX
    converted from it (quantize.onnx_from_tflite), as export would write them.

    `method` QAT: the calibrated model is a QAT model's, whose fake quantization fixes every annotated
    layer's grid, so only its all-int8 model is meaningful here; QatMixer makes QAT mixes."""

    calibrated_model: bytes
    layer_names: list[str] | dict[str, str]
    method: Method = PTQ
    keras_model: object = None  # the QAT model, for QAT
    calib: np.ndarray | None = None  # the images it was calibrated on, for QAT
    graph: object = None
    ops: list[Op] = field(default_factory=list)
    _built: dict = field(default_factory=dict)

    def __post_init__(self):
        """Parse the calibrated model once and map its operators to the Keras layers."""

        self.graph = read_tflite(self.calibrated_model, Path("calibrated.tflite"))
        self.ops = op_layers(self.graph, self.layer_names)

    @classmethod
    def for_model(cls, model, calib: np.ndarray) -> "Mixer":
        """Calibrate `model` (a tf_keras model) on `calib` with the converter settings of quantize.ptq."""

        return cls(calibrated(int8_converter(model, calib)), [layer.name for layer in model.layers])

    @classmethod
    def for_qat(cls, qat, calib: np.ndarray) -> "Mixer":
        """Calibrate a QAT model as export converts it; its operators are labelled with the Keras layers' own
        names (quantize.qat.keras_names)."""

        return cls(calibrated(int8_converter(qat, calib)), keras_names(qat), QAT, qat, calib)

    def source(self, float_layers: tuple[str, ...], images: np.ndarray) -> np.ndarray | None:
        """The Keras model a mix is gated against, its predictions; None: the float model itself."""
        return None

    def followers(self, float_layers: tuple[str, ...]) -> list[str]:
        """The pass-through layers that run in float in that mix because of `float_layers`."""
        return followers(self.ops, float_layers)

    @property
    def candidates(self) -> list[str]:
        """Layers that can be kept float, in graph order."""
        return candidates(self.ops)

    def tflite(self, float_layers: tuple[str, ...] = ()) -> bytes:
        """The .tflite with `float_layers` kept float (all int8 for none)."""
        key = ("tflite", tuple(sorted(float_layers)))
        if key not in self._built:
            self._built[key] = quantize(self.calibrated_model, denylist(self.ops, float_layers))
        return self._built[key]

    def onnx(self, float_layers: tuple[str, ...] = ()) -> bytes:
        """The int8 ONNX converted from that .tflite (converted once per mix)."""

        key = ("onnx", tuple(sorted(float_layers)))
        if key not in self._built:
            model, path = self.tflite(float_layers), Path("mixed.tflite")
            self._built[key] = convert(model, path, io_quantization(TFLiteRunner(path, content=model))
                                       ).SerializeToString()
        return self._built[key]

    def runner(self, float_layers: tuple[str, ...], runtime: str):
        """A LiteRT ("tflite") or onnxruntime ("onnx") runner of the mix."""

        name = "+".join(float_layers) or "int8"
        if runtime == "tflite":
            return TFLiteRunner(Path(f"{name}.tflite"), content=self.tflite(float_layers))
        return OnnxRunner(Path(f"{name}.onnx"), content=self.onnx(float_layers))

    def runners(self, float_layers: tuple[str, ...] = ()) -> dict[str, object]:
        """A LiteRT and an onnxruntime runner of the mix, keyed by runtime."""
        return {runtime: self.runner(float_layers, runtime) for runtime in ("tflite", "onnx")}


@dataclass
class QatMixer:
    """Mixes of a QAT model, as Mixer's of a float one: keeping layers float means leaving them unannotated
    and fine-tuning again (quantize.qat.qat_finetune, the same settings), then converting with those layers
    denylisted as Mixer does (tfmot still quantizes a float layer's output where an annotated layer reads it,
    and that is where int8 resumes). Each set of float layers is fine-tuned and converted once."""

    model: object  # the float Keras model
    dataset: object
    calib: np.ndarray
    epochs: int
    batch_size: int
    seed: int
    qat: object = None  # the all-annotated QAT model, when the caller has it
    progress: Callable[[str], None] = print
    method: Method = QAT
    models: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # float layers -> the fine-tune's per-epoch metrics
    _mixers: dict = field(default_factory=dict)

    def qat_model(self, float_layers: tuple[str, ...] = ()):
        """The QAT model fine-tuned with `float_layers` unannotated."""
        key = tuple(sorted(float_layers))
        if key not in self.models:
            if not key and self.qat is not None:
                self.models[key] = self.qat
            else:
                self.progress(f"fallback: QAT fine-tuning with {', '.join(float_layers) or 'every layer'} "
                              f"{'unannotated' if float_layers else 'annotated'}")
                self.models[key], self.metrics[key] = qat_finetune(
                    self.model, self.dataset, self.epochs, self.batch_size, self.seed, self.calib,
                    float_layers=float_layers)
        return self.models[key]

    def mixer(self, float_layers: tuple[str, ...] = ()) -> Mixer:
        """The calibrated conversion of that QAT model."""
        key = tuple(sorted(float_layers))
        if key not in self._mixers:
            self._mixers[key] = Mixer.for_qat(self.qat_model(float_layers), self.calib)
        return self._mixers[key]

    @property
    def keras_model(self):
        """The all-annotated QAT model."""
        return self.qat_model()

    @property
    def calibrated_model(self) -> bytes:
        """The all-annotated QAT model's calibration (what the all-int8 files are quantized from)."""
        return self.mixer().calibrated_model

    @property
    def layer_names(self) -> dict[str, str]:
        """Graph name -> Keras name of the all-annotated QAT model's layers."""
        return self.mixer().layer_names

    @property
    def graph(self):
        """The all-annotated QAT model's calibrated graph."""
        return self.mixer().graph

    @property
    def ops(self) -> list[Op]:
        """Its operators, labelled with the Keras layers."""
        return self.mixer().ops

    def source(self, float_layers: tuple[str, ...], images: np.ndarray) -> np.ndarray:
        """The predictions of the mix's own QAT Keras model, which `check` holds QAT files to."""
        return self.qat_model(float_layers).predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)

    def followers(self, float_layers: tuple[str, ...]) -> list[str]:
        """The pass-through layers float in that mix (tfmot quantizes a float layer's output before an annotated
        one, so those after it stay int8)."""
        return self.mixer(float_layers).followers(float_layers)

    def tflite(self, float_layers: tuple[str, ...] = ()) -> bytes:
        """The .tflite of the QAT model with `float_layers` unannotated, those layers float."""
        return self.mixer(float_layers).tflite(float_layers)

    def onnx(self, float_layers: tuple[str, ...] = ()) -> bytes:
        """The int8 ONNX converted from that .tflite."""
        return self.mixer(float_layers).onnx(float_layers)

    def runner(self, float_layers: tuple[str, ...], runtime: str):
        """A LiteRT ("tflite") or onnxruntime ("onnx") runner of the mix."""
        return self.mixer(float_layers).runner(float_layers, runtime)

    def runners(self, float_layers: tuple[str, ...] = ()) -> dict[str, object]:
        """A LiteRT and an onnxruntime runner of the mix, keyed by runtime."""
        return self.mixer(float_layers).runners(float_layers)


__all__ = ["Mixer", "QatMixer", "Op", "op_layers", "candidates", "denylist", "followers", "calibrated", "quantize",
           "layer_label"]
