"""edge_mnist.runtime: runners for .tflite and .onnx, input checks and bad-model errors."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.errors import EdgeMnistError
from edge_mnist.runtime import check_images, open_model


def tiny_onnx(path, shape=("N", 28, 28, 1), elem=1):
    """A real ONNX model (flatten -> matmul -> softmax) built without TensorFlow."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    dtype = {1: np.float32, 11: np.float64}[elem]
    w = numpy_helper.from_array(rng.normal(size=(int(np.prod(shape[1:])), 10)).astype(dtype), "w")
    nodes = [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", elem, list(shape))],
                              [helper.make_tensor_value_info("probs", elem, ["N", 10])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_onnx_runner_predicts_probabilities(tmp_path):
    runner = open_model(tiny_onnx(tmp_path / "m.onnx"))
    probs = runner.predict(np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32))
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert runner.precision == "float32"


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_bound_call_matches_session_run(tmp_path, batch):
    """The IOBinding call the latency timer measures computes what session.run computes."""
    runner = open_model(tiny_onnx(tmp_path / "m.onnx"))
    images = np.random.default_rng(2).random((2, batch, 28, 28, 1), dtype=np.float32)
    calls = [runner.bound_call(x) for x in images]
    results = [call().copy() for call in calls]  # two bindings alive at once must not share buffers
    for x, got in zip(images, results):
        np.testing.assert_array_equal(got, runner.run(runner.prepare(x)))
    assert not np.array_equal(results[0], results[1])


def test_onnx_wrong_input_shape_is_refused(tmp_path):
    with pytest.raises(EdgeMnistError, match=r"m.onnx: model input shape is \[-1, 32, 32, 3\]"):
        open_model(tiny_onnx(tmp_path / "m.onnx", shape=("N", 32, 32, 3)))


def test_onnx_wrong_input_dtype_is_refused(tmp_path):
    with pytest.raises(EdgeMnistError, match="m.onnx: model input type tensor\\(double\\)"):
        open_model(tiny_onnx(tmp_path / "m.onnx", elem=11))


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_junk_model_files(tmp_path, suffix, content):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    with pytest.raises(EdgeMnistError, match=f"junk{suffix}: not a valid"):
        open_model(path)


def test_missing_and_unknown_model(tmp_path):
    with pytest.raises(EdgeMnistError, match="model file not found"):
        open_model(tmp_path / "none.tflite")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(EdgeMnistError, match="unknown model format"):
        open_model(tmp_path / "m.pt")


@pytest.mark.parametrize("images, message", [
    (np.full((1, 28, 28, 1), np.nan, np.float32), "NaN"),
    (np.full((1, 28, 28, 1), 255.0, np.float32), "expected \\[0, 1\\]"),
    (np.zeros((1, 32, 32, 1), np.float32), "shape"),
    (np.zeros((1, 28, 28, 1), np.uint8), "dtype uint8"),
    (np.zeros((0, 28, 28, 1), np.float32), "no images"),
])
def test_bad_images(images, message):
    with pytest.raises(EdgeMnistError, match=message):
        check_images(images, "input.npy")


@pytest.mark.tf
def test_truncated_tflite(tiny_export, tmp_path):
    path = tmp_path / "model_int8.tflite"
    path.write_bytes((tiny_export / "model_int8.tflite").read_bytes()[:5000])
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: not a valid TFLite model"):
        open_model(path)


@pytest.mark.tf
def test_int8_tflite_is_full_integer_and_matches_float(tiny_export, small_fashion_dir):
    from edge_mnist.data import load_dataset, to_float

    x = to_float(load_dataset("fashion-mnist", small_fashion_dir).x_test[:200])
    int8 = open_model(tiny_export / "model_int8.tflite")
    assert int8.input_dtype == np.int8 and int8.precision == "int8"
    assert "float32" not in int8.tensor_dtypes()
    float_probs = open_model(tiny_export / "model_float32.tflite").predict(x)
    agree = (int8.predict(x).argmax(1) == float_probs.argmax(1)).mean()
    assert agree >= 0.95


@pytest.mark.tf
def test_onnx_metadata_travels_with_the_file(tiny_export):
    runner = open_model(tiny_export / "model_int8.onnx")
    assert runner.metadata["precision"] == "int8" and runner.metadata["route"] == "ort-static"
    assert "Ankle boot" in runner.metadata["labels"]
