"""runtime/tflite_graph.py: the .tflite reader (graph, quantization, constants), the small flatbuffer reader the
runners use without ai-edge-litert's schema, and the metadata entry written and read back; on the committed files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.runtime import open_model
from edge_mnist.runtime.base import live_constants
from edge_mnist.runtime.tflite_graph import (
    TFLITE_TYPES,
    graph_tensors,
    live_weights,
    read_metadata,
    read_tflite,
    with_metadata,
)

pytestmark = pytest.mark.device


@pytest.mark.parametrize("name", ["model_float32.tflite", "model_int8.tflite", "model_qat_int8.tflite"])
def test_the_runners_small_flatbuffer_reader_agrees_with_the_full_schema(device_export, name):
    """live_weights and read_metadata use `flatbuffers` alone (tflite-runtime ships no schema module)."""
    model = (device_export / name).read_bytes()
    graph = read_tflite(model, Path(name))
    constants = {i: (TFLITE_TYPES.get(graph.types[i], "other"), int(a.size)) for i, a in graph.data.items()}
    assert live_weights(model, Path(name)) == live_constants(graph.nodes, graph.outputs, constants)
    metadata = read_metadata(model, Path(name))
    assert json.loads(metadata["labels"])[-1] == "Ankle boot"
    assert metadata["precision"] == ("float32" if "float32" in name else "int8")


def test_the_graph_holds_what_litert_runs(device_export):
    """The int8 file's input and output grids are the interpreter's, its weights int8 constants of the layers."""
    path = device_export / "model_int8.tflite"
    graph, runner = read_tflite(path.read_bytes(), path), open_model(path)
    (inp,), (out,) = graph.inputs, graph.outputs
    assert graph.quant[inp].scale[0] == pytest.approx(runner.input_scale)
    assert int(graph.quant[inp].zero_point[0]) == runner.input_zero_point
    assert graph.quant[out].scale[0] == pytest.approx(runner.output_scale)
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {op for op, *_ in graph.ops}
    conv = next(inputs for op, inputs, _, _ in graph.ops if op == "CONV_2D")
    assert graph.data[conv[1]].dtype == np.int8 and graph.quant[conv[1]].scale.size == graph.shapes[conv[1]][0]


def test_activation_sizes_are_the_tensors_without_data(device_export):
    path = device_export / "model_int8.tflite"
    sizes, nodes, inputs, outputs = graph_tensors(path.read_bytes(), path)
    assert sizes[inputs[0]] == 28 * 28 and sizes[outputs[0]] == 10  # one int8 image in, ten int8 scores out
    assert not set(sizes) & set(read_tflite(path.read_bytes(), path).data) and len(nodes) >= 3


def test_replacing_metadata_keeps_predictions_and_one_entry(device_export, test_images, tmp_path):
    source = device_export / "model_int8.tflite"
    copy = tmp_path / "model_int8.tflite"
    copy.write_bytes(with_metadata(source.read_bytes(), {"note": "replaced"}))
    before, after = open_model(source), open_model(copy)
    assert after.metadata == {"note": "replaced"}
    np.testing.assert_array_equal(after.predict(test_images[0]), before.predict(test_images[0]))


def test_corrupt_metadata_is_a_one_line_error(device_export, tmp_path):
    data = bytearray(with_metadata((device_export / "model_int8.tflite").read_bytes(), {"k": "v" * 40}))
    at = bytes(data).index(b'{"k": "vvvv')
    data[at] = ord("[")  # the entry is no longer a JSON object
    (tmp_path / "m.tflite").write_bytes(bytes(data))
    with pytest.raises(EdgeMnistError, match="m.tflite: unreadable edge_mnist metadata"):
        open_model(tmp_path / "m.tflite")


def test_deeply_nested_tflite_metadata_is_a_one_line_error(device_export):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = device_export / "model_int8.tflite"
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    entry = next(m for m in model.metadata if m.name == b"edge_mnist")
    model.buffers[entry.buffer].data = np.frombuffer(b"[" * 200_000 + b"]" * 200_000, np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: unreadable edge_mnist metadata"):
        open_model(path)


@pytest.mark.parametrize("read", [read_metadata, live_weights, read_tflite], ids=lambda f: f.__name__)
def test_bytes_that_are_no_flatbuffer_are_one_line_naming_the_file(read):
    with pytest.raises(EdgeMnistError, match="m.tflite: unreadable"):
        read(b"\x00\x01\x02", Path("m.tflite"))
