"""quantize/ptq.py: the TFLite converter as post-training int8 sets it up (int8 in and out, per-tensor Dense and
per-channel convolution scales, the image -> probs signature); on the committed files and a tiny model converted here."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.runtime import open_model
from edge_mnist.runtime.tflite_graph import read_tflite


def weight_scales(graph, op_kind: str) -> list[tuple[int, int]]:
    """(number of scales, output channels) of the weights of every `op_kind` operator of a .tflite graph."""
    return [(graph.quant[inputs[1]].scale.size, graph.shapes[inputs[1]][0])
            for op, inputs, _, _ in graph.ops if op == op_kind]


@pytest.mark.device
@pytest.mark.parametrize("name", ["model_int8.tflite", "model_qat_int8.tflite"])
def test_dense_weights_have_one_scale_and_conv_weights_one_per_channel(device_export, name):
    """Per-tensor Dense weights keep onnxruntime's integer GEMM on its fast path in the ONNX files
    made from these integers; per-channel convolution weights keep the accuracy."""
    path = device_export / name
    graph = read_tflite(path.read_bytes(), path)
    dense, conv = weight_scales(graph, "FULLY_CONNECTED"), weight_scales(graph, "CONV_2D")
    assert dense and all(scales == 1 for scales, _ in dense)
    assert conv and all(scales == channels for scales, channels in conv)


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained two-layer CNN whose output layer is not named probs (as a QAT model's is not)."""
    from edge_mnist.core.tfenv import import_tf

    _, keras = import_tf()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="quant_probs")(hidden))


@pytest.mark.tf
def test_the_int8_converter_makes_a_full_integer_file_named_image_to_probs(tiny_model, test_images, tmp_path):
    """int8 input and output on calibrated grids, the signature every artifact carries, and the same classes
    as the float model on most images (untrained weights: near-ties are many)."""
    from edge_mnist.quantize.ptq import int8_converter

    x = test_images[0]
    data = int8_converter(tiny_model, x[:32]).convert()
    runner = open_model(tmp_path / "m.tflite", content=data)
    assert runner.input_dtype == np.int8 and runner.precision == "int8" and "float32" not in runner.tensor_dtypes()
    assert runner.interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["probs"]}}
    agree = (runner.predict(x).argmax(1) == tiny_model.predict(x, verbose=0).argmax(1)).mean()
    assert agree > 0.9
    graph = read_tflite(data, "m.tflite")
    assert weight_scales(graph, "FULLY_CONNECTED") == [(1, 10)] and weight_scales(graph, "CONV_2D") == [(4, 4)]


@pytest.mark.tf
def test_the_float_converter_keeps_float_and_the_same_signature(tiny_model, test_images, tmp_path):
    from edge_mnist.quantize.ptq import converter_for

    runner = open_model(tmp_path / "f.tflite", content=converter_for(tiny_model).convert())
    assert runner.input_dtype == np.float32 and runner.precision == "float32"
    assert runner.interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["probs"]}}
    x = test_images[0][:16]
    np.testing.assert_allclose(runner.predict(x), tiny_model.predict(x, verbose=0), atol=1e-5)
