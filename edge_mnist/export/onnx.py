"""ONNX exporters: float32 via tf2onnx, and int8 by the route each format's registry entry names.

Every file gets the set's description (task, labels, format, notes) in metadata_props, so it
travels with the model into any onnxruntime application.
"""
from __future__ import annotations

from ..files import atomic_write_bytes
from ..tfenv import filtered_stderr, import_tf
from . import ExportJob, Exported

OPSET = 17
INPUT_NAME = "image"


def keras_to_onnx(model, input_shape: tuple[int, ...]):
    """tf2onnx conversion of a Keras model with a dynamic batch dimension; returns a ModelProto."""
    tf, _ = import_tf()
    import tf2onnx

    spec = (tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME),)
    with filtered_stderr():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    return proto


def write_with_metadata(proto, job: ExportJob, extra: dict[str, str] | None = None) -> None:
    """Put the job's metadata (and `extra`) into metadata_props and save the model atomically."""
    import onnx

    props = {p.key: p.value for p in proto.metadata_props}
    props.update(job.metadata)
    props.update(extra or {})
    onnx.helper.set_model_props(proto, props)
    atomic_write_bytes(job.path, proto.SerializeToString())


def export_float(job: ExportJob) -> Exported:
    """Float32 ONNX straight from the Keras graph."""
    write_with_metadata(keras_to_onnx(job.model, job.task.input_shape), job)
    return Exported(converter="tf2onnx from_keras")


def export_int8_static(job: ExportJob) -> Exported:
    """int8 ONNX by onnxruntime's static quantization of the BatchNorm-folded float graph."""
    from ..quantize.batchnorm import fold_batchnorm
    from ..quantize.onnx_static import SHIPPED, quantize_qdq

    float_proto = keras_to_onnx(fold_batchnorm(job.model, through_relu=True), job.task.input_shape)
    proto, keep_float = quantize_qdq(float_proto, job.calib)
    write_with_metadata(proto, job, {"route": "ort-static"})
    return Exported(converter="ort-static",
                    quantization=f"{SHIPPED}; first conv stage float32 ({len(keep_float)} nodes)")


def export_int8_from_tflite(job: ExportJob) -> Exported:
    """int8 ONNX converted from the int8 .tflite this format is built from (same integer parameters)."""
    from ..quantize.onnx_from_tflite import convert

    proto, io_quant = convert(job.built_from_path)
    write_with_metadata(proto, job, {"route": "from-tflite", **io_quant})
    return Exported(converter="from-tflite",
                    quantization=f"tf2onnx from {job.built_from_path.name} (identical int8 parameters)")
