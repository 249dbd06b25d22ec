"""export/onnx.py: what the exported ONNX files hold and how a default session runs them (needs TensorFlow)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_reference_cnn_runs_integer_kernels_in_a_default_session(tiny_export, tmp_path):
    """The reference CNN's optimized graph in a default session: the float stem (conv1 + pool1),
    then conv2 as QLinearConv and both Dense layers as QGemm; no dequantized float GEMM."""
    import onnxruntime as ort

    from edge_mnist.runtime.onnx_graph import summarize

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tiny_export / "model_int8.onnx"), options)
    ops = summarize((tmp_path / "optimized.onnx").read_bytes(), "optimized").op_types
    assert ops["QLinearConv"] == 1 and ops["QGemm"] == 2 and ops["Conv"] == 1
    assert ops["Gemm"] + ops["MatMul"] + ops["Relu"] + ops["Clip"] == 0


def test_int8_onnx_outputs_equal_the_tflite_ones(tiny_export, small_fashion_dir):
    from edge_mnist.data import load_dataset, to_float
    from edge_mnist.runtime import open_model

    x = to_float(load_dataset("fashion-mnist", small_fashion_dir).x_test)
    tflite, onnx_model = (open_model(tiny_export / n) for n in ("model_int8.tflite", "model_int8.onnx"))
    q_tflite, q_onnx = (r.run(r.prepare(x)).astype(np.int32) for r in (tflite, onnx_model))
    assert np.abs(q_tflite - q_onnx).max() <= 1 and (q_tflite.argmax(1) == q_onnx.argmax(1)).all()


def test_every_onnx_file_carries_the_task(tiny_export):
    import json

    import onnx

    for name in ("model_float32.onnx", "model_int8.onnx"):
        model = onnx.load(tiny_export / name)
        props = {p.key: p.value for p in model.metadata_props}
        task = json.loads(props["task"])
        assert task["dataset"] == "fashion-mnist" and task["input_shape"] == [28, 28, 1]
        assert props["edge_mnist.format"] == name.replace("model_", "onnx_").replace(".onnx", "")
        assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["probs"]
