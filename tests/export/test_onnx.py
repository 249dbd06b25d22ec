"""export/onnx.py: what the exported int8 ONNX files hold (needs TensorFlow for the export)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_ptq_onnx_is_int8_after_the_first_stage(tiny_export):
    import onnx
    from onnx import TensorProto

    from edge_mnist.records import Manifest

    model = onnx.load(tiny_export / "model_int8.onnx")
    big = [t for t in model.graph.initializer if np.prod(t.dims) > 1000]
    # conv2 (18,432), dense1 (819,200) and nothing else large: all int8.
    assert len(big) >= 2 and all(t.data_type == TensorProto.INT8 for t in big)
    conv_weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    first = next(t for t in conv_weights if t.dims[1] == 1)
    assert first.data_type == TensorProto.FLOAT  # the 1-input-channel conv stays float32
    details = Manifest.load(tiny_export).artifacts["onnx_int8"].details
    assert "first conv stage float32" in details["quantization"]


def test_every_onnx_file_carries_the_task(tiny_export):
    import json

    import onnx

    for name in ("model_float32.onnx", "model_int8.onnx"):
        props = {p.key: p.value for p in onnx.load(tiny_export / name).metadata_props}
        task = json.loads(props["task"])
        assert task["dataset"] == "fashion-mnist" and task["input_shape"] == [28, 28, 1]
        assert props["edge_mnist.format"] == name.replace("model_", "onnx_").replace(".onnx", "")
