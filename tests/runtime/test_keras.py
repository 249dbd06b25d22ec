"""runtime/keras.py: the float reference, the committed Keras model called directly, computes what its float
exports compute (needs TensorFlow)."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime import open_model
from edge_mnist.runtime.keras import KerasRunner

pytestmark = pytest.mark.tf


def test_the_keras_model_gives_the_float_onnx_probabilities(device_export, test_images):
    runner = KerasRunner(device_export / "model_float32.keras")
    assert (runner.runtime, runner.input_shape, runner.num_classes, runner.precision) == ("keras", (28, 28, 1), 10,
                                                                                          "float32")
    x = test_images[0]
    np.testing.assert_allclose(runner.predict(x), open_model(device_export / "model_float32.onnx").predict(x),
                               atol=1e-5)


def test_a_damaged_keras_file_is_one_line_naming_it(device_export, tmp_path):
    path = tmp_path / "model_float32.keras"
    path.write_bytes((device_export / "model_float32.keras").read_bytes()[:2000])
    with pytest.raises(EdgeMnistError, match="model_float32.keras: ") as info:
        KerasRunner(path)
    assert "\n" not in str(info.value)
