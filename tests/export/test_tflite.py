"""export/tflite.py: the metadata entry is readable back and leaves the model's computation unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.data import load_dataset, to_float
from edge_mnist.runtime import open_model
from edge_mnist.runtime.tflite_graph import with_metadata

pytestmark = pytest.mark.device


def test_exported_tflite_describes_itself(device_export):
    runner = open_model(device_export / "model_qat_int8.tflite")
    meta = runner.metadata
    assert meta["edge_mnist.format"] == "tflite_qat_int8" and meta["method"] == "qat"
    assert "Ankle boot" in meta["labels"] and '"input_shape": [28, 28, 1]' in meta["task"]


def test_replacing_metadata_keeps_predictions_and_one_entry(device_export, fixture_data_dir, tmp_path):
    x = to_float(load_dataset("fashion-mnist", fixture_data_dir).x_test)
    source = device_export / "model_int8.tflite"
    copy = tmp_path / "model_int8.tflite"
    copy.write_bytes(with_metadata(source.read_bytes(), {"note": "replaced"}))
    before, after = open_model(source), open_model(copy)
    assert after.metadata == {"note": "replaced"}
    np.testing.assert_array_equal(after.predict(x), before.predict(x))


def test_corrupt_metadata_is_a_one_line_error(device_export, tmp_path):
    from edge_mnist.core.errors import EdgeMnistError

    data = bytearray(with_metadata((device_export / "model_int8.tflite").read_bytes(), {"k": "v" * 40}))
    at = bytes(data).index(b'{"k": "vvvv')
    data[at] = ord("[")  # the entry is no longer a JSON object
    (tmp_path / "m.tflite").write_bytes(bytes(data))
    with pytest.raises(EdgeMnistError, match="m.tflite: unreadable edge_mnist metadata"):
        open_model(tmp_path / "m.tflite")


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_qat_int8.tflite"])
def test_dense_weights_have_one_scale_and_conv_weights_one_per_channel(device_export, name):
    """Per-tensor Dense weights keep onnxruntime's integer GEMM on its fast path in the ONNX files
    made from these integers; per-channel convolution weights keep the accuracy."""
    from edge_mnist.runtime.tflite_graph import read_tflite

    path = device_export / name
    graph = read_tflite(path.read_bytes(), path)
    scales = {op: [graph.quant[inputs[1]].scale.size for o, inputs, _, _ in graph.ops if o == op]
              for op in ("FULLY_CONNECTED", "CONV_2D")}
    assert scales["FULLY_CONNECTED"] and set(scales["FULLY_CONNECTED"]) == {1}
    assert all(n == graph.shapes[i][0] for n, i in zip(scales["CONV_2D"], [inputs[1] for o, inputs, _, _ in
                                                                               graph.ops if o == "CONV_2D"]))
