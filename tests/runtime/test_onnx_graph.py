"""runtime/onnx_graph.py: the protobuf walk that reads precision and external data without the onnx package."""
from __future__ import annotations

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime.onnx_graph import summarize

pytestmark = pytest.mark.device


@pytest.mark.parametrize("name, precision", [("model_float32.onnx", "float32"), ("model_int8.onnx", "int8"),
                                             ("model_qat_int8.onnx", "int8")])
def test_precision_of_the_committed_models(device_export, name, precision):
    summary = summarize((device_export / name).read_bytes(), name)
    assert summary.precision == precision and not summary.external_data
    assert summary.op_types["Conv"] >= 1


@pytest.mark.parametrize("raw", [b"\x3a\x02\x08\x01", b"\x3a\x04\x0a\x02\x20\x05", b"\x3a\x05\x0a", b"\xff" * 12,
                                 b"", b"\x3a\x00\x3a\x00"])
def test_malformed_bytes_are_one_error_naming_the_file(raw):
    with pytest.raises(EdgeMnistError, match="m.onnx: not a valid ONNX model"):
        summarize(raw, "m.onnx")


def test_external_data_in_a_sparse_constant_attribute_is_found():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    values = helper.make_tensor("v", TensorProto.FLOAT, [4], [0.0] * 4)
    values.data_location = TensorProto.EXTERNAL
    values.ClearField("float_data")
    values.external_data.add(key="location", value="w.bin")
    sparse = helper.make_sparse_tensor(values, helper.make_tensor("i", TensorProto.INT64, [4], [0, 1, 2, 3]), [4])
    node = helper.make_node("Constant", [], ["y"], sparse_value=sparse)
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    summary = summarize(helper.make_model(graph).SerializeToString(), "sparse.onnx")
    assert summary.external_data
