"""quantize/onnx_from_tflite.py on layers the reference CNN does not have (needs TensorFlow and onnx)."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.errors import EdgeMnistError

pytestmark = pytest.mark.tf


def int8_tflite(layers, calib: np.ndarray) -> bytes:
    """A full-integer .tflite of a small Sequential model (untrained weights are enough to compare runtimes)."""
    from edge_mnist.quantize.ptq import int8_converter
    from edge_mnist.tfenv import import_tf

    _, keras = import_tf()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((28, 28, 1), name="image"), *layers(keras.layers)])
    return int8_converter(model, calib).convert()


@pytest.fixture(scope="module")
def images(fixture_data_dir):
    from edge_mnist.data import load_dataset, to_float

    return to_float(load_dataset("fashion-mnist", fixture_data_dir).x_test)


@pytest.mark.parametrize("float_stem", [True, False])
def test_depthwise_same_padding_stride_2_and_relu6_match_litert(images, tmp_path, float_stem):
    import onnxruntime as ort

    from edge_mnist.quantize.onnx_from_tflite import convert
    from edge_mnist.runtime import open_model

    from onnx import helper

    data = int8_tflite(lambda L: [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                                  L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu6"),
                                  L.Conv2D(8, 3, padding="same", activation="relu"), L.Flatten(),
                                  L.Dense(10, activation="softmax")], images[:100])
    (tmp_path / "m.tflite").write_bytes(data)
    tflite = open_model(tmp_path / "m.tflite")
    q = tflite.prepare(images)
    proto = convert(data, tmp_path / "m.tflite", {}, float_stem=float_stem)
    groups = [helper.get_attribute_value(a) for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute
              if a.name == "group"]
    assert groups == [1, 4, 1]  # the depthwise layer is a grouped Conv over its 4 input channels
    session = ort.InferenceSession(proto.SerializeToString())
    got = session.run(None, {"image": q})[0].astype(np.int32)
    want = tflite.run(q).astype(np.int32)
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99
    assert np.abs(got - want).max() <= 2


def test_an_unsupported_operator_is_a_one_line_error(images, tmp_path):
    from edge_mnist.quantize.onnx_from_tflite import convert

    data = int8_tflite(lambda L: [L.Conv2D(4, 3, activation="relu"), L.AveragePooling2D(), L.Flatten(),
                                  L.Dense(10, activation="softmax")], images[:50])
    with pytest.raises(EdgeMnistError, match="m.tflite: TFLite operator AVERAGE_POOL_2D has no int8 ONNX conversion"):
        convert(data, tmp_path / "m.tflite", {})


def test_corrupt_tflite_bytes_are_a_one_line_error(tmp_path):
    from edge_mnist.quantize.onnx_from_tflite import convert

    with pytest.raises(EdgeMnistError, match="bad.tflite: unreadable TFLite model"):
        convert(b"TFL3" + b"\x07" * 300, tmp_path / "bad.tflite", {})
