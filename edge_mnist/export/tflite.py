"""TFLite exporters: float32, and full-integer int8 (int8 input and output) via the TF converter.

Every file gets the set's description as a flatbuffer metadata entry named `edge_mnist` (JSON),
written with the flatbuffer tools ai-edge-litert ships; LiteRT ignores entries it does not know,
and edge_mnist.runtime.tflite reads it back.
"""
from __future__ import annotations

from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.core.tfenv import filtered_stderr, import_tf
from edge_mnist.export.job import Exported, ExportJob
from edge_mnist.quantize.cpu_build import cpu_build
from edge_mnist.quantize.ptq import converter_for, int8_converter
from edge_mnist.runtime.base import io_quantization
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.runtime.tflite_graph import with_metadata


def export_float(job: ExportJob) -> Exported:
    """Plain float32 TFLite, the float baseline on LiteRT."""
    tf, _ = import_tf()

    with filtered_stderr():
        data = converter_for(job.model).convert()
    atomic_write_bytes(job.path, with_metadata(data, job.metadata))
    return Exported(converter=f"tf.lite.TFLiteConverter {tf.__version__}")


def export_int8(job: ExportJob) -> Exported:
    """Full-integer int8 (quantize.ptq); for a QAT model its learned ranges are kept."""
    tf, _ = import_tf()

    if job.int8_model is None:
        with filtered_stderr():
            data = int8_converter(job.model, job.calib).convert()
        converter = f"tf.lite.TFLiteConverter {tf.__version__}, full-integer int8"
    else:
        data = job.int8_model
        converter = f"tf.lite.TFLiteConverter {tf.__version__} calibration + MLIR quantizer, int8 with float layers"
    io_quant = io_quantization(TFLiteRunner(job.path, content=data))
    atomic_write_bytes(job.path, with_metadata(data, {**job.metadata, **io_quant}))
    return Exported(converter=converter, quantization=f"{len(job.calib)} calibration images")


def export_cpu(job: ExportJob) -> Exported:
    """The CPU build of the int8 .tflite this format is built from (quantize.cpu_build): its stem float,
    the rest and the int8 input and output unchanged; what it keeps float is in its metadata."""
    source = job.built_from_path.read_bytes()
    data, note = cpu_build(source, job.built_from_path)
    io_quant = io_quantization(TFLiteRunner(job.path, content=data))
    atomic_write_bytes(job.path, with_metadata(data, {**job.metadata, **io_quant, "cpu_build": note}))
    return Exported(converter=f"edge-mnist CPU build of {job.built_from_path.name}", quantization=note)
