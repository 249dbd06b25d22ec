"""TFLite exporters: float32, and full-integer int8 (int8 input and output) via the TF converter.

Every file gets the set's description as a flatbuffer metadata entry named `edge_mnist` (JSON),
written with the flatbuffer tools ai-edge-litert ships; LiteRT ignores entries it does not know,
and edge_mnist.runtime.tflite reads it back.
"""
from __future__ import annotations

import json

import numpy as np

from edge_mnist.files import atomic_write_bytes
from edge_mnist.runtime.tflite import METADATA_NAME
from edge_mnist.tfenv import filtered_stderr, import_tf
from edge_mnist.export import ExportJob, Exported


def with_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """The .tflite flatbuffer with `metadata` added (or replaced) as a JSON metadata entry."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(obj.buffers) - 1
    kept = [m for m in (obj.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    obj.metadata = kept + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def export_float(job: ExportJob) -> Exported:
    """Plain float32 TFLite, the float baseline on LiteRT."""
    tf, _ = import_tf()
    from edge_mnist.quantize.ptq import converter_for

    with filtered_stderr():
        data = converter_for(job.model).convert()
    atomic_write_bytes(job.path, with_metadata(data, job.metadata))
    return Exported(converter=f"tf.lite.TFLiteConverter {tf.__version__}")


def export_int8(job: ExportJob) -> Exported:
    """Full-integer int8 (quantize.ptq); for a QAT model its learned ranges are kept."""
    tf, _ = import_tf()
    from edge_mnist.quantize.ptq import int8_converter
    from edge_mnist.runtime.tflite import TFLiteRunner
    from edge_mnist.export import io_quantization

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
