"""runtime/tflite.py: LiteRT on the committed .tflite files (int8 input, batches of any size), tflite-runtime
where ai-edge-litert has no wheel, and the files it refuses."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime import open_model
from edge_mnist.runtime.tflite import TFLiteRunner

pytestmark = pytest.mark.device


def test_int8_tflite_takes_quantized_int8_input(device_export):
    runner = open_model(device_export / "model_int8.tflite")
    assert runner.input_dtype == np.int8 and runner.input_scale > 0
    np.testing.assert_array_equal(runner.prepare(np.array([0.0, 1.0], np.float32)),
                                  np.round(np.array([0.0, 1.0]) / runner.input_scale) + runner.input_zero_point)
    assert "float32" not in runner.tensor_dtypes()


def test_any_batch_size_gives_the_rows_one_image_at_a_time_gives(device_export, test_images):
    """The interpreter is resized for each batch size and back: rows do not depend on the batch they ran in."""
    runner = TFLiteRunner(device_export / "model_int8.tflite")
    x = test_images[0][:7]
    one_by_one = np.concatenate([runner.predict(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(runner.predict(x, batch_size=3), one_by_one)
    np.testing.assert_array_equal(runner.predict(x[:1]), one_by_one[:1])


def test_a_float_file_runs_on_float_input_and_says_float32(device_export, test_images):
    runner = TFLiteRunner(device_export / "model_float32.tflite")
    x = test_images[0][:4]
    assert runner.input_dtype == np.float32 and runner.precision == "float32" and runner.prepare(x) is x
    assert runner.metadata["edge_mnist.format"] == "tflite_float32"


def test_truncated_tflite(device_export, tmp_path):
    path = tmp_path / "model_int8.tflite"
    path.write_bytes((device_export / "model_int8.tflite").read_bytes()[:5000])
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: not a valid TFLite model"):
        open_model(path)


def test_without_ai_edge_litert_the_tflite_runtime_interpreter_is_used(monkeypatch, device_export, test_images):
    """32-bit Pi OS has tflite-runtime only: the runner takes the next interpreter module of the list."""
    from edge_mnist.runtime import tflite

    monkeypatch.setattr(tflite, "INTERPRETERS", ("edge_mnist_no_such.interpreter", "ai_edge_litert.interpreter"))
    x, y = test_images
    assert (open_model(device_export / "model_int8.tflite").predict(x).argmax(1) == y).mean() > 0.7
    monkeypatch.setattr(tflite, "INTERPRETERS", ("edge_mnist_no_such.interpreter", "edge_mnist_nor_this.interpreter"))
    with pytest.raises(EdgeMnistError, match="install the 'runtime' extra"):
        open_model(device_export / "model_int8.tflite")
