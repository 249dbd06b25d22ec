"""edge_mnist.convert.onnx: which nodes stay float, and what the PTQ int8 ONNX file holds."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from edge_mnist.convert.onnx import first_stage_nodes  # noqa: E402


def graph_of(*ops: str):
    """A chain graph with one node per op type (names n0, n1, ...); shapes do not matter here."""
    nodes = [helper.make_node(op, [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i, op in enumerate(ops)]
    value = helper.make_tensor_value_info("t0", TensorProto.FLOAT, None)
    out = helper.make_tensor_value_info(f"t{len(ops)}", TensorProto.FLOAT, None)
    return helper.make_graph(nodes, "g", [value], [out])


def test_first_stage_runs_from_the_input_through_the_first_pool_after_the_first_conv():
    graph = graph_of("Reshape", "MaxPool", "Conv", "Relu", "MaxPool", "Conv", "MaxPool", "Gemm")
    # The MaxPool before any Conv does not end the stage; the one after the first Conv does.
    assert first_stage_nodes(graph) == ["n0", "n1", "n2", "n3", "n4"]


def test_no_first_stage_without_conv_and_pool():
    assert first_stage_nodes(graph_of("Reshape", "Gemm", "Softmax")) == []
    assert first_stage_nodes(graph_of("Conv", "Relu", "Gemm")) == []


@pytest.mark.tf
def test_ptq_onnx_is_int8_after_the_first_stage(tiny_export):
    model = onnx.load(tiny_export / "model_int8.onnx")
    big = [t for t in model.graph.initializer if np.prod(t.dims) > 1000]
    # conv2 (18,432), dense1 (819,200) and nothing else large: all int8.
    assert len(big) >= 2 and all(t.data_type == TensorProto.INT8 for t in big)
    conv_weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    first = next(t for t in conv_weights if t.dims[1] == 1)
    assert first.data_type == TensorProto.FLOAT  # the 1-input-channel conv stays float32
    entry = json.loads((tiny_export / "manifest.json").read_text())["artifacts"]["onnx_int8"]
    assert "first conv stage float32" in entry["quantization"]
