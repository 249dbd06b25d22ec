"""Post-training full-integer int8 for TFLite: the TF converter configured with calibration data."""
from __future__ import annotations

import numpy as np

from ..tfenv import import_tf


def int8_converter(model, calib: np.ndarray):
    """A TFLiteConverter for `model` producing int8 weights and activations with int8 input and output.

    Activation ranges come from `calib` (training images). For a QAT model the ranges
    learned during fine-tuning are used and the calibration data only fills any gaps.
    """
    tf, _ = import_tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter
