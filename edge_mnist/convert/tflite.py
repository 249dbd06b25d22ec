"""TFLite exporters: float32, and full-integer int8 (int8 input and output) via the TF converter."""
from __future__ import annotations

from ..files import atomic_write_bytes
from ..tfenv import filtered_stderr, import_tf


def _converter(model):
    """A TFLiteConverter for a Keras model."""
    tf, _ = import_tf()
    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def export_float(job) -> None:
    """Plain float32 TFLite, the float baseline on LiteRT."""
    _, conv = _converter(job.model)
    with filtered_stderr():
        data = conv.convert()
    atomic_write_bytes(job.out / job.fmt.file, data)


def export_int8(job) -> None:
    """Full-integer int8: int8 weights and activations, int8 input and output tensors.

    Activation ranges come from `job.calib` (training images). For a QAT model the ranges
    learned during fine-tuning are used and the calibration data only fills any gaps.
    """
    tf, conv = _converter(job.model)
    calib = job.calib
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with filtered_stderr():
        data = conv.convert()
    atomic_write_bytes(job.out / job.fmt.file, data)
    job.details["converter"] = f"tf.lite.TFLiteConverter {tf.__version__}, full-integer int8"
