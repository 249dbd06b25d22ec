"""quantize/onnx_static.py: which nodes of the float graph stay float32 (needs the onnx package)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.tf
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from edge_mnist.quantize.onnx_static import first_stage_nodes  # noqa: E402


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
