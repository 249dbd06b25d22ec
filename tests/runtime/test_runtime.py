"""edge_mnist.runtime: runners for .tflite and .onnx on committed real models, input checks, bad models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import load_dataset, to_float
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.runtime import open_model
from edge_mnist.runtime.base import check_images

pytestmark = pytest.mark.device

INT8 = ["model_int8.tflite", "model_int8.onnx", "model_qat_int8.tflite", "model_qat_int8.onnx"]


@pytest.fixture(scope="module")
def test_images(fixture_data_dir):
    data = load_dataset("fashion-mnist", fixture_data_dir)
    return to_float(data.x_test), data.y_test


@pytest.mark.parametrize("name", ["model_float32.tflite", "model_float32.onnx", *INT8])
def test_every_artifact_classifies_real_images(device_export, test_images, name):
    x, y = test_images
    runner = open_model(device_export / name, task=DATASETS["fashion-mnist"].task)
    probs = runner.predict(x)
    assert probs.shape == (len(x), 10)
    assert (probs.argmax(1) == y).mean() > 0.7  # the fixture model scores about 0.8; chance is 0.1
    assert runner.precision == ("int8" if "int8" in name else "float32")


def test_int8_tflite_takes_quantized_int8_input(device_export):
    runner = open_model(device_export / "model_int8.tflite")
    assert runner.input_dtype == np.int8 and runner.input_scale > 0
    np.testing.assert_array_equal(runner.prepare(np.array([0.0, 1.0], np.float32)),
                                  np.round(np.array([0.0, 1.0]) / runner.input_scale) + runner.input_zero_point)
    assert "float32" not in runner.tensor_dtypes()


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


def test_model_of_another_task_is_refused(device_export):
    from edge_mnist.registry.datasets import Task

    task = Task("letters", (28, 28, 1), tuple("abcdefghijklmnopqrstuvwxyz"), 20)
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: model takes \\[28, 28, 1\\] and gives 10 classes"):
        open_model(device_export / "model_int8.tflite", task=task)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_junk_model_files(tmp_path, suffix, content):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    with pytest.raises(EdgeMnistError, match=f"junk{suffix}: not a valid"):
        open_model(path)


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


def test_truncated_tflite(device_export, tmp_path):
    path = tmp_path / "model_int8.tflite"
    path.write_bytes((device_export / "model_int8.tflite").read_bytes()[:5000])
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: not a valid TFLite model"):
        open_model(path)


def test_missing_and_unknown_model(tmp_path):
    with pytest.raises(EdgeMnistError, match="model file not found"):
        open_model(tmp_path / "none.tflite")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(EdgeMnistError, match="unknown model format '.pt'"):
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
        check_images(images, "input.npy", (28, 28, 1))


def test_deeply_nested_tflite_metadata_is_a_one_line_error(device_export):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = device_export / "model_int8.tflite"
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    entry = next(m for m in model.metadata if m.name == b"edge_mnist")
    model.buffers[entry.buffer].data = np.frombuffer(b"[" * 200_000 + b"]" * 200_000, np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: unreadable edge_mnist metadata"):
        open_model(path)


@pytest.mark.parametrize("name", ["model_float32.tflite", "model_int8.tflite", "model_qat_int8.tflite"])
def test_the_runners_small_flatbuffer_reader_agrees_with_the_full_schema(device_export, name):
    """live_weights and read_metadata use `flatbuffers` alone (tflite-runtime ships no schema module)."""
    from edge_mnist.runtime.base import live_constants
    from edge_mnist.runtime.tflite_graph import TFLITE_TYPES, live_weights, read_metadata, read_tflite

    model = (device_export / name).read_bytes()
    graph = read_tflite(model, Path(name))
    constants = {i: (TFLITE_TYPES.get(graph.types[i], "other"), int(a.size)) for i, a in graph.data.items()}
    assert live_weights(model, Path(name)) == live_constants(graph.nodes, graph.outputs, constants)
    metadata = read_metadata(model, Path(name))
    assert json.loads(metadata["labels"])[-1] == "Ankle boot"
    assert metadata["precision"] == ("float32" if "float32" in name else "int8")


def test_without_ai_edge_litert_the_tflite_runtime_interpreter_is_used(monkeypatch, device_export, test_images):
    """32-bit Pi OS has tflite-runtime only: the runner takes the next interpreter module of the list."""
    from edge_mnist.runtime import tflite

    monkeypatch.setattr(tflite, "INTERPRETERS", ("edge_mnist_no_such.interpreter", "ai_edge_litert.interpreter"))
    x, y = test_images
    assert (open_model(device_export / "model_int8.tflite").predict(x).argmax(1) == y).mean() > 0.7
    monkeypatch.setattr(tflite, "INTERPRETERS", ("edge_mnist_no_such.interpreter", "edge_mnist_nor_this.interpreter"))
    with pytest.raises(EdgeMnistError, match="install the 'runtime' extra"):
        open_model(device_export / "model_int8.tflite")
