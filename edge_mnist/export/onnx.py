"""ONNX exporters: float32 via tf2onnx, and int8 converted from the int8 .tflite of the same method.

Every file gets the set's description (task, labels, format, notes) in metadata_props, so it
travels with the model into any onnxruntime application.
"""
from __future__ import annotations

from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.core.tfenv import filtered_stderr, import_tf
from edge_mnist.export.job import Exported, ExportJob
from edge_mnist.quantize.onnx_from_tflite import convert
from edge_mnist.quantize.ptq import named
from edge_mnist.registry.formats import INPUT_NAME, ONNX_OPSET
from edge_mnist.runtime.base import io_quantization
from edge_mnist.runtime.tflite import TFLiteRunner


def keras_to_onnx(model, input_shape: tuple[int, ...]):
    """tf2onnx conversion of a Keras model with a dynamic batch dimension, input `image` and output
    `probs`; returns a ModelProto."""
    tf, _ = import_tf()
    import tf2onnx


    model = named(model)
    spec = (tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME),)
    with filtered_stderr():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET)
    return proto


def with_props(proto, metadata: dict[str, str]):
    """`proto` with `metadata` merged into its metadata_props (new keys win)."""
    import onnx

    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **metadata})
    return proto


def write_with_metadata(proto, job: ExportJob) -> None:
    """Put the job's metadata into metadata_props and save the model atomically."""
    atomic_write_bytes(job.path, with_props(proto, job.metadata).SerializeToString())


def export_float(job: ExportJob) -> Exported:
    """Float32 ONNX straight from the Keras graph."""
    write_with_metadata(keras_to_onnx(job.model, job.task.input_shape), job)
    return Exported(converter="tf2onnx from_keras")


def export_int8(job: ExportJob) -> Exported:
    """int8 ONNX converted from the int8 .tflite this format is built from: the same integer model,
    in the QDQ shapes a default onnxruntime session fuses (quantize.onnx_from_tflite)."""

    model = job.built_from_path.read_bytes()
    io_quant = io_quantization(TFLiteRunner(job.built_from_path, content=model))
    proto = convert(model, job.built_from_path, {**job.metadata, **io_quant})
    atomic_write_bytes(job.path, proto.SerializeToString())
    return Exported(converter="edge-mnist tflite-to-onnx",
                    quantization=f"from {job.built_from_path.name}: same int8 weights, scales and zero points")
