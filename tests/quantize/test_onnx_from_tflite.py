"""quantize/onnx_from_tflite.py on layers the reference CNN does not have (needs TensorFlow and onnx)."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError

pytestmark = pytest.mark.tf


def int8_tflite(layers, calib: np.ndarray) -> bytes:
    """A full-integer .tflite of a small Sequential model (untrained weights are enough to compare runtimes)."""
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.ptq import int8_converter

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
    from onnx import helper

    from edge_mnist.quantize.onnx_from_tflite import convert
    from edge_mnist.runtime import open_model

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


def residual_model(keras):
    """A functional model with what users bring: a residual add, a BatchNorm the TFLite converter
    cannot fold (after a ReLU: MUL and ADD with constants), average pooling, a standalone ReLU6,
    global average pooling. Random BatchNorm statistics so the affine map is not the identity."""
    L = keras.layers
    image = keras.Input((28, 28, 1), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = L.BatchNormalization()(x)
    y = L.Conv2D(8, 3, padding="same")(x)
    x = L.ReLU(max_value=6.0)(L.Add()([x, y]))
    x = L.AveragePooling2D()(x)
    x = L.Conv2D(16, 3, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(image, L.Dense(10, activation="softmax")(x))
    bn = next(layer for layer in model.layers if isinstance(layer, L.BatchNormalization))
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.uniform(0, 0.5, 8), rng.uniform(0.5, 2, 8)])
    return model


def test_residual_add_batchnorm_pooling_and_relu6_match_litert(images, tmp_path):
    """ADD of two tensors and of a constant, MUL, AVERAGE_POOL_2D, RELU6 and MEAN convert to a graph
    onnxruntime runs with outputs within 1 int8 step of LiteRT's, so the same top-1 wherever
    LiteRT's winner leads by 3 steps or more (this untrained model has many near-ties)."""
    import onnxruntime as ort

    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.onnx_from_tflite import convert
    from edge_mnist.quantize.ptq import int8_converter
    from edge_mnist.runtime import open_model
    from edge_mnist.runtime.tflite_graph import read_tflite

    _, keras = import_tf()
    keras.utils.set_random_seed(0)
    data = int8_converter(residual_model(keras), images[:100]).convert()
    ops = {op for op, *_ in read_tflite(data, tmp_path / "m.tflite").ops}
    assert {"ADD", "MUL", "AVERAGE_POOL_2D", "MEAN"} <= ops
    (tmp_path / "m.tflite").write_bytes(data)
    tflite = open_model(tmp_path / "m.tflite")
    q = tflite.prepare(images)
    session = ort.InferenceSession(convert(data, tmp_path / "m.tflite", {}).SerializeToString())
    got = session.run(None, {"image": q})[0].astype(np.int32)
    want = tflite.run(q).astype(np.int32)
    assert np.abs(got - want).max() <= 1
    top2 = np.sort(want, axis=1)
    clear = top2[:, -1] - top2[:, -2] >= 3
    assert clear.sum() >= 50
    np.testing.assert_array_equal(got.argmax(1)[clear], want.argmax(1)[clear])


def test_an_unsupported_operator_is_a_one_line_error(images, tmp_path):
    from edge_mnist.quantize.onnx_from_tflite import convert

    data = int8_tflite(lambda L: [L.Conv2D(4, 3, activation="relu"), L.GlobalMaxPooling2D(),
                                  L.Dense(10, activation="softmax")], images[:50])
    with pytest.raises(EdgeMnistError, match="m.tflite: TFLite operator REDUCE_MAX has no int8 ONNX conversion"):
        convert(data, tmp_path / "m.tflite", {})


def test_corrupt_tflite_bytes_are_a_one_line_error(tmp_path):
    from edge_mnist.quantize.onnx_from_tflite import convert

    with pytest.raises(EdgeMnistError, match="bad.tflite: unreadable TFLite model"):
        convert(b"TFL3" + b"\x07" * 300, tmp_path / "bad.tflite", {})


def test_activations_are_uint8_and_openvino_runs_them_as_it_runs_the_tflite(tmp_path):
    """Regression (issue 28): int8 QDQ activations became int8 tensors carrying a zero point in OpenVINO's
    CPU plugin (an int8 output at the second convolution, int8 inputs to the Dense layers), which its int8
    kernels do not all take ("No suitable implementations" on a Xeon). In uint8 every integer Convolution and
    FullyConnected gets uint8 activations, as from the .tflite; onnxruntime's outputs are unchanged (the
    tests above). The committed `compact` digits model has two int8 convolutions after the float stem."""
    import onnx
    from onnx import numpy_helper

    from edge_mnist.data import load_dataset, to_float
    from edge_mnist.quantize.onnx_from_tflite import convert
    from edge_mnist.runtime import open_model
    from tests.conftest import FIXTURES

    source = FIXTURES / "mnist_export" / "model_int8.tflite"
    proto = convert(source.read_bytes(), source, {"input_scale": "0.00392156862745098", "input_zero_point": "-128",
                                                   "output_scale": "0.00390625", "output_zero_point": "-128"})
    zero_points = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    quantized = {n.output[0]: zero_points[n.input[2]].dtype for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    assert quantized.pop("probs") == np.int8 and len(quantized) >= 6
    assert set(quantized.values()) == {np.dtype(np.uint8)}
    pytest.importorskip("openvino", reason="pip install 'edge-mnist[openvino]'")
    onnx.save(proto, tmp_path / "model_int8.onnx")
    vino, lite = open_model(tmp_path / "model_int8.onnx", runtime="openvino"), open_model(source)
    integer = [(op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
               for op in vino.compiled.get_runtime_model().get_ordered_ops()
               if op.get_rt_info()["layerType"].astype(str) in ("Convolution", "FullyConnected")]
    assert [p for _, p in integer] == ["f32", "u8", "u8", "u8", "u8"]  # float stem, two convs, two Dense
    images = to_float(load_dataset("mnist", FIXTURES / "mnist-digits").x_test)
    assert np.array_equal(vino.predict(images).argmax(1), lite.predict(images).argmax(1))
