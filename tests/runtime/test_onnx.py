"""runtime/onnx.py: ONNX Runtime on the committed .onnx and .ort files (the session an application gets, the
quantization read from metadata_props, the timed call) and the files it refuses."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime import open_model
from edge_mnist.runtime.onnx import OnnxRunner, session_options

pytestmark = pytest.mark.device


def test_the_session_is_the_default_one_with_a_fixed_thread_count():
    opts = session_options(ort, 3)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


@pytest.mark.parametrize("name", ["model_int8.onnx", "model_int8.ort", "model_qat_int8.onnx", "model_qat_int8.ort"])
def test_int8_files_take_the_tflite_grid_from_their_metadata(device_export, name):
    """The .onnx and .ort carry the integers of the .tflite they were made from: the same input and output grid,
    read from metadata_props, not from the graph."""
    runner = OnnxRunner(device_export / name)
    tflite = open_model(device_export / f"{name.split('.')[0]}.tflite")
    assert runner.input_dtype == np.int8 and runner.precision == "int8"
    assert (runner.input_scale, runner.input_zero_point, runner.output_scale, runner.output_zero_point) == (
        pytest.approx(tflite.input_scale), tflite.input_zero_point, pytest.approx(tflite.output_scale),
        tflite.output_zero_point)


def test_int8_predictions_are_the_dequantized_session_outputs(device_export, test_images):
    runner = OnnxRunner(device_export / "model_int8.onnx")
    x = test_images[0][:8]
    raw = runner.session.run(None, {"image": runner.prepare(x)})[0]
    assert raw.dtype == np.int8
    np.testing.assert_allclose(runner.predict(x), (raw.astype(np.float32) - runner.output_zero_point)
                               * runner.output_scale, rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_bound_call_matches_session_run(device_export, test_images, batch):
    """The call the latency timer measures computes what predict's session.run computes."""
    runner = open_model(device_export / "model_int8.onnx")
    images = test_images[0][:2 * batch].reshape(2, batch, 28, 28, 1)
    calls = [runner.bound_call(x) for x in images]
    results = [call().copy() for call in calls]  # two prepared calls alive at once must not share inputs
    for x, got in zip(images, results):
        np.testing.assert_array_equal(got, runner.run(runner.prepare(x)))
    assert not np.array_equal(results[0], results[1])


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x00\x00ORTM" + b"\xff" * 200, "not a valid ORT-format model"),
    (b"\x08\x07" + b"\x00" * 50, "not an ORT-format model"),
])
def test_junk_ort_files(tmp_path, content, message):
    path = tmp_path / "junk.ort"
    path.write_bytes(content)
    with pytest.raises(EdgeMnistError, match=f"junk.ort: {message}"):
        open_model(path)


def test_truncated_ort_and_misnamed_formats(device_export, tmp_path):
    ort_bytes = (device_export / "model_int8.ort").read_bytes()
    (tmp_path / "model_int8.ort").write_bytes(ort_bytes[:len(ort_bytes) // 2])
    with pytest.raises(EdgeMnistError, match="model_int8.ort: not a valid"):
        open_model(tmp_path / "model_int8.ort")
    (tmp_path / "model_int8.onnx").write_bytes(ort_bytes)
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: the file holds an ORT-format model"):
        open_model(tmp_path / "model_int8.onnx")


def test_an_int8_onnx_without_its_quantization_metadata_is_refused(device_export, tmp_path):
    """Without metadata_props the runner cannot quantize the images: a one-line error, not a guessed grid."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(device_export / "model_int8.onnx")
    kept = [p for p in model.metadata_props if p.key != "input_scale"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, tmp_path / "model_int8.onnx")
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: integer input but no quantization metadata "
                                             "\\('input_scale'\\)"):
        OnnxRunner(tmp_path / "model_int8.onnx")
