"""runtime/base.py: the input checks, the int8 (de)quantization every runner shares, the model signature rules,
and reading a model's I/O quantization back from its metadata; on the committed real models where one is needed."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.datasets import Task
from edge_mnist.runtime import open_model
from edge_mnist.runtime.base import (
    check_images,
    dequantize,
    image_signature,
    io_quantization,
    live_constants,
    metadata_quantization,
    quantize,
    read_model,
    weight_precision,
)

pytestmark = pytest.mark.device


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


def test_grey_images_get_their_channel_axis(test_images):
    """(N, H, W) images of a one-channel model are taken as (N, H, W, 1), float32 and contiguous."""
    x = test_images[0][:3, :, :, 0].astype(np.float64)
    checked = check_images(x, "input.npy", (28, 28, 1))
    assert checked.shape == (3, 28, 28, 1) and checked.dtype == np.float32 and checked.flags.c_contiguous


def test_quantization_round_trips_real_images_within_half_a_step(device_export, test_images):
    """On the int8 model's own input grid, images come back within scale / 2, and out-of-range values clip."""
    runner = open_model(device_export / "model_int8.tflite")
    scale, zero = runner.input_scale, runner.input_zero_point
    q = quantize(test_images[0], scale, zero, np.int8)
    assert q.dtype == np.int8
    assert np.abs(dequantize(q, scale, zero) - test_images[0]).max() <= scale / 2 + 1e-6
    assert quantize(np.array([-1e6, 1e6]), scale, zero, np.int8).tolist() == [-128, 127]


def test_model_of_another_task_is_refused(device_export):
    task = Task("letters", (28, 28, 1), tuple("abcdefghijklmnopqrstuvwxyz"), 20)
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: model takes \\[28, 28, 1\\] and gives 10 classes"):
        open_model(device_export / "model_int8.tflite", task=task)


@pytest.mark.parametrize("shape, out, dtype, message", [
    ([1, 28, 28], [1, 10], np.float32, "model input shape is \\[1, 28, 28\\], expected \\[N, height, width"),
    ([1, 28, 28, 1], [1, 10], np.int32, "model input dtype is int32, expected float32, int8 or uint8"),
    ([1, 28, 28, 1], [1, 1], np.float32, "model output shape is \\[1, 1\\], expected \\[N, classes\\]"),
])
def test_a_signature_other_than_images_to_classes_is_refused(shape, out, dtype, message):
    with pytest.raises(EdgeMnistError, match=f"m.onnx: {message}"):
        image_signature("m.onnx", shape, out, dtype)


def test_image_signature_is_one_image_and_the_class_count():
    assert image_signature("m.onnx", [-1, 32, 32, 3], [-1, 120], np.uint8) == ((32, 32, 3), 120)


def test_read_model_takes_verified_bytes_over_the_file(device_export, tmp_path):
    assert read_model(tmp_path / "absent.onnx", b"verified") == b"verified"
    assert read_model(device_export / "model_int8.onnx", None) == (device_export / "model_int8.onnx").read_bytes()
    with pytest.raises(EdgeMnistError, match="absent.onnx: cannot read model file"):
        read_model(tmp_path / "absent.onnx", None)


def test_a_dead_integer_constant_does_not_make_a_float_graph_int8():
    """Only constants the outputs depend on count: a large unused int8 tensor leaves the graph float32."""
    nodes = [(["x", "w"], ["h"]), (["h", "b"], ["y"]), (["dead_q"], ["dead"])]
    constants = {"w": ("float32", 1000), "b": ("float32", 10), "dead_q": ("int8", 100_000)}
    counts = live_constants(nodes, ["y"], constants)
    assert counts == Counter({"float32": 1010}) and weight_precision(counts) == "float32"
    assert weight_precision(live_constants(nodes, ["y", "dead"], constants)) == "int8"


def test_io_quantization_read_back_from_metadata_is_the_models_own(device_export):
    """metadata_quantization inverts io_quantization: the .tflite's grid written as strings is read back exactly."""
    runner = open_model(device_export / "model_int8.tflite")
    assert metadata_quantization(io_quantization(runner), "m.onnx") == (
        runner.input_scale, runner.input_zero_point, runner.output_scale, runner.output_zero_point)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("output_zero_point"), "'output_zero_point'"),
    (lambda m: m.update(input_scale="wide"), "could not convert string to float: 'wide'"),
    (lambda m: m.update(input_zero_point="0.5"), "invalid literal for int"),
])
def test_missing_or_malformed_quantization_metadata_is_one_line(device_export, edit, message):
    metadata = io_quantization(open_model(device_export / "model_int8.tflite"))
    edit(metadata)
    with pytest.raises(EdgeMnistError, match=f"m.onnx: integer input but no quantization metadata \\(.*{message}"):
        metadata_quantization(metadata, "m.onnx")
