"""The CPU build of an int8 .tflite (quantize.cpu_build): the stem float, the same integer model otherwise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import load_dataset, to_float
from edge_mnist.quantize.cpu_build import cpu_build, find_stem
from edge_mnist.runtime.base import io_quantization
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.runtime.tflite_graph import TfliteGraph, read_tflite

pytestmark = pytest.mark.device  # the rewrite needs the flatbuffer tools of ai-edge-litert only

FIXTURE_EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "device_export"
FLOAT32 = 0


@pytest.fixture(scope="module")
def images(fixture_data_dir):
    """The committed Fashion-MNIST test subset, as model input."""
    data = load_dataset("fashion-mnist", fixture_data_dir)
    return to_float(data.x_test)


@pytest.mark.parametrize("stem", ["model_int8", "model_qat_int8"])
def test_the_cpu_build_is_the_same_integer_model_with_a_float_stem(stem, images, tmp_path):
    path = FIXTURE_EXPORT / f"{stem}.tflite"
    built, note = cpu_build(path.read_bytes(), path)
    original, cpu = read_tflite(path.read_bytes(), path), read_tflite(built, path)
    kinds = [op[0] for op in cpu.ops]
    assert kinds[0] == "DEQUANTIZE" and "QUANTIZE" in kinds and "stem in float32" in note
    assert cpu.types[cpu.ops[1][1][1]] == FLOAT32  # the stem's weights
    assert kinds[kinds.index("QUANTIZE") + 1:] == [op[0] for op in original.ops][kinds.index("QUANTIZE") - 1:]
    a, b = TFLiteRunner(path), TFLiteRunner(tmp_path / "cpu.tflite", content=built)
    assert io_quantization(a) == io_quantization(b)
    out_a, out_b = a.predict(images), b.predict(images)
    assert out_b.shape == out_a.shape
    agree = (out_a.argmax(1) == out_b.argmax(1)).mean()
    assert agree >= 0.99, agree
    quantized = [np.round(out / float(r.output_scale)) for out, r in ((out_a, a), (out_b, b))]
    assert np.abs(quantized[0] - quantized[1]).max() <= 2  # float rounding at a quantization boundary only


def _graph(channels: int, first: str = "CONV_2D") -> TfliteGraph:
    """A two-operator graph on a `channels`-channel image (shapes and kinds only)."""
    return TfliteGraph(["image", "conv", "pool"], [[1, 8, 8, channels], [1, 6, 6, 4], [1, 3, 3, 4]], [9, 9, 9],
                       [None] * 3, {}, [(first, [0], [1], None), ("MAX_POOL_2D", [1], [2], None)], [0], [2])


def test_the_stem_rule_is_a_first_convolution_on_at_most_three_channels():
    assert find_stem(_graph(1)).pool == 1
    assert find_stem(_graph(3)).last == 1
    assert find_stem(_graph(4)) is None
    assert find_stem(_graph(1, "FULLY_CONNECTED")) is None


def test_corrupt_bytes_are_a_one_line_error(tmp_path):
    path = tmp_path / "broken.tflite"
    data = (FIXTURE_EXPORT / "model_int8.tflite").read_bytes()[:2000]
    with pytest.raises(EdgeMnistError, match="broken.tflite"):
        cpu_build(data, path)
