"""ONNX exporters: float32 via tf2onnx, and int8 by one of two measured routes.

int8 routes (see README, "Which int8 ONNX"):
- "ort-static": BatchNorm folded into Dense512 through its ReLU (models.fold_batchnorm),
  tf2onnx float graph -> onnxruntime quant_pre_process -> quantize_static (QDQ, per-tensor,
  calibrated on training images), with the first Conv+MaxPool left in float32. Accurate and
  the fastest under onnxruntime on x86-64 (benchmarks/README.md has every variant we
  measured); used for PTQ.
- "from-tflite": tf2onnx converts the int8 .tflite, keeping its exact integer parameters,
  so the ONNX model computes what LiteRT computes; used for QAT, where the ranges learned
  in fine-tuning are the point.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..tfenv import filtered_stderr, import_tf

OPSET = 17
INPUT_NAME = "image"
INT8_ROUTE = {"ptq": "ort-static", "qat": "from-tflite"}


def _keras_to_onnx(model):
    """tf2onnx conversion of a Keras model with a dynamic batch dimension; returns a ModelProto."""
    tf, _ = import_tf()
    import tf2onnx

    spec = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name=INPUT_NAME),)
    with filtered_stderr():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    return proto


def _stamp_and_write(proto, path: Path, props: dict) -> None:
    """Write metadata_props into the model (so it travels with the file) and save atomically."""
    import onnx

    existing = {p.key: p.value for p in proto.metadata_props}
    existing.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()})
    onnx.helper.set_model_props(proto, existing)
    atomic_write_bytes(path, proto.SerializeToString())


def _props(job, route: str) -> dict:
    """Metadata common to every ONNX artifact."""
    from ..data import LABELS

    return {"edge_mnist.format": job.fmt.key, "precision": job.fmt.precision, "method": job.fmt.method,
            "route": route, "labels": LABELS.get(job.details.get("dataset", ""), [])}


def export_float(job) -> None:
    """Float32 ONNX straight from the Keras graph."""
    _stamp_and_write(_keras_to_onnx(job.model), job.out / job.fmt.file, _props(job, "tf2onnx"))
    job.details["converter"] = "tf2onnx from_keras"


def export_int8(job) -> None:
    """int8 ONNX by the route chosen for the format's method."""
    route = INT8_ROUTE[job.fmt.method]
    proto = _ort_static(job) if route == "ort-static" else _from_tflite(job)
    props = _props(job, route)
    props.update(job.details.pop("_io_quant", {}))
    _stamp_and_write(proto, job.out / job.fmt.file, props)
    job.details["converter"] = route


class _CalibReader:
    """onnxruntime CalibrationDataReader over the calibration images, one image per call."""

    def __init__(self, images: np.ndarray):
        self._it = iter(images[i:i + 1] for i in range(len(images)))

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: batch}


def first_stage_nodes(graph) -> list[str]:
    """Names of the nodes from the input through the first MaxPool after the first Conv.

    The first convolution of an MNIST CNN has one input channel. onnxruntime's int8 kernel
    for that shape costs ~16 us, its float NCHWc kernel ~4 us, and the uint8 NCHW MaxPool
    after it ~25 us against ~2 us in float, so keeping this stage in float32 (0.3 KB of
    weights, 6% of the MACs) is the largest single speed-up we measured.
    """
    names, seen_conv = [], False
    for node in graph.node:
        names.append(node.name)
        seen_conv = seen_conv or node.op_type == "Conv"
        if seen_conv and node.op_type == "MaxPool":
            return names
    return []


def quantize_qdq(float_proto, calib: np.ndarray, *, quant_format: str = "QDQ", per_channel: bool = False,
                 activation_type: str = "QUInt8", reduce_range: bool = False, float_first: bool = True):
    """onnxruntime static quantization of a float ModelProto; returns (int8 ModelProto, float node names).

    The defaults are what ships (QDQ, per-tensor, uint8 activations, int8 weights, first conv
    stage float); benchmarks/onnx_variants.py calls this with every alternative we measured.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        f32, pre, q8 = (Path(tmp) / n for n in ("f32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(float_proto, f32)
        quant_pre_process(str(f32), str(pre))
        keep_float = first_stage_nodes(onnx.load(pre).graph) if float_first else []
        quantize_static(str(pre), str(q8), _CalibReader(calib), quant_format=QuantFormat[quant_format],
                        per_channel=per_channel, activation_type=QuantType[activation_type],
                        weight_type=QuantType.QInt8, reduce_range=reduce_range, nodes_to_exclude=keep_float)
        return onnx.load(q8), keep_float


def _ort_static(job):
    """BatchNorm folded through ReLU, then quantize_qdq with the shipped settings."""
    from ..models import fold_batchnorm

    proto, keep_float = quantize_qdq(_keras_to_onnx(fold_batchnorm(job.model, through_relu=True)), job.calib)
    job.details["quantization"] = ("onnxruntime quantize_static QDQ, per-tensor, uint8 activations, int8 weights; "
                                   "BatchNorm folded into Dense512 through ReLU; "
                                   f"first conv stage float32 ({len(keep_float)} nodes)")
    return proto


def _from_tflite(job):
    """tf2onnx conversion of the int8 .tflite exported just before (same integer parameters)."""
    import onnx
    import tf2onnx

    from ..formats import FORMATS
    from ..runtime.tflite import TFLiteRunner

    tflite = next(f for f in FORMATS if f.runtime == "tflite" and f.method == job.fmt.method and f.is_int8)
    src = job.out / tflite.file
    runner = TFLiteRunner(src)
    job.details["_io_quant"] = {"input_scale": repr(float(runner.input_scale)),
                                "input_zero_point": str(int(runner.input_zero_point)),
                                "output_scale": repr(float(runner.output_scale)),
                                "output_zero_point": str(int(runner.output_zero_point))}
    with tempfile.TemporaryDirectory() as tmp, filtered_stderr():
        tf2onnx.convert.from_tflite(str(src), opset=OPSET, output_path=str(Path(tmp) / "m.onnx"))
        proto = onnx.load(Path(tmp) / "m.onnx")
    job.details["quantization"] = f"tf2onnx from {tflite.file} (identical int8 parameters)"
    return proto
