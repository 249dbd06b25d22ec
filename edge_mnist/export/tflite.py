"""TFLite exporters: float32, and full-integer int8 (int8 input and output) via the TF converter."""
from __future__ import annotations

from ..files import atomic_write_bytes
from ..tfenv import filtered_stderr, import_tf
from . import ExportJob, Exported


def export_float(job: ExportJob) -> Exported:
    """Plain float32 TFLite, the float baseline on LiteRT."""
    tf, _ = import_tf()
    with filtered_stderr():
        data = tf.lite.TFLiteConverter.from_keras_model(job.model).convert()
    atomic_write_bytes(job.path, data)
    return Exported(converter=f"tf.lite.TFLiteConverter {tf.__version__}")


def export_int8(job: ExportJob) -> Exported:
    """Full-integer int8 (quantize.ptq); for a QAT model its learned ranges are kept."""
    tf, _ = import_tf()
    from ..quantize.ptq import int8_converter

    with filtered_stderr():
        data = int8_converter(job.model, job.calib).convert()
    atomic_write_bytes(job.path, data)
    return Exported(converter=f"tf.lite.TFLiteConverter {tf.__version__}, full-integer int8",
                    quantization=f"{len(job.calib)} calibration images")
