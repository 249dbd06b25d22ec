"""Post-training full-integer int8 for TFLite: the TF converter configured with calibration data."""
from __future__ import annotations

import numpy as np

from edge_mnist.core.tfenv import import_tf
from edge_mnist.registry.formats import INPUT_NAME, OUTPUT_NAME


def named(model):
    """`model` behind one input named `image` and one output named `probs`, the names every
    artifact's signature carries (a QAT model's own output is called `quant_probs`)."""
    _, keras = import_tf()
    image = keras.Input(model.input_shape[1:], name=INPUT_NAME)
    probs = keras.layers.Activation("linear", name=OUTPUT_NAME)(model(image, training=False))
    return keras.Model(image, probs, name=model.name)


def converter_for(model):
    """A TFLiteConverter for `model` with the signature `serving_default`: image -> probs."""
    tf, _ = import_tf()
    return tf.lite.TFLiteConverter.from_keras_model(named(model))


def int8_converter(model, calib: np.ndarray):
    """A TFLiteConverter for `model` producing int8 weights and activations with int8 input and output.

    Activation ranges come from `calib` (training images). For a QAT model the ranges
    learned during fine-tuning are used and the calibration data only fills any gaps.
    Dense weights get one scale per tensor, as tfmot's QAT scheme gives them: onnxruntime's
    integer GEMM is markedly slower with per-channel scales, and the ONNX files carry these same
    integers (benchmarks/README.md has the measurement); convolutions stay per channel.
    """
    tf, _ = import_tf()
    converter = converter_for(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter
