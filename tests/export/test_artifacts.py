"""What every exported file carries for an application: names, metadata, the same integers, the fast path.

Runs on the committed device_export (a tiny CNN exported by the real exporters, PTQ and QAT)
with the runtimes only, as an app on a Pi or phone would open the files.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.formats import FORMATS
from edge_mnist.runtime import open_model
from edge_mnist.runtime.onnx_graph import summarize

pytestmark = pytest.mark.device

RUNNABLE = [f for f in FORMATS if f.runtime in ("tflite", "onnx")]
ONNX_FILES = [f.file for f in RUNNABLE if f.runtime == "onnx"]
TFLITE_FILES = [f.file for f in RUNNABLE if f.runtime == "tflite"]
PAIRS = [("model_int8.tflite", "model_int8.onnx"), ("model_int8.onnx", "model_int8.ort"),
         ("model_qat_int8.tflite", "model_qat_int8.onnx"), ("model_qat_int8.onnx", "model_qat_int8.ort")]


@pytest.fixture(scope="module")
def images(fixture_data_dir):
    return to_float(load_dataset("fashion-mnist", fixture_data_dir).x_test)


@pytest.mark.parametrize("name", ONNX_FILES)
def test_onnx_and_ort_files_take_image_and_return_probs(device_export, name):
    import onnxruntime as ort

    session = ort.InferenceSession(str(device_export / name))  # a default session, as an app opens it
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["probs"]


@pytest.mark.parametrize("name", TFLITE_FILES)
def test_tflite_signatures_take_image_and_return_probs(device_export, name):
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(device_export / name)).get_signature_list()
    assert signatures == {"serving_default": {"inputs": ["image"], "outputs": ["probs"]}}


@pytest.mark.parametrize("fmt", RUNNABLE, ids=lambda f: f.file)
def test_every_file_describes_itself(device_export, fmt):
    manifest = Manifest.load(device_export)
    runner = open_model(device_export / fmt.file)
    meta = runner.metadata
    assert meta["edge_mnist.format"] == fmt.key and meta["precision"] == fmt.precision
    assert meta["dataset"] == "fashion-mnist" and json.loads(meta["labels"])[9] == "Ankle boot"
    assert json.loads(meta["input_shape"]) == [28, 28, 1] and "/ 255" in meta["preprocessing"]
    assert float(meta["float_accuracy"]) == pytest.approx(manifest.float_accuracy, abs=1e-6)
    assert meta["edge_mnist.version"] == manifest.versions["edge-mnist"]
    if fmt.is_int8:
        assert float(meta["input_scale"]) == pytest.approx(float(runner.input_scale))
        assert int(meta["input_zero_point"]) == runner.input_zero_point
        assert (float(meta["output_scale"]), int(meta["output_zero_point"])) == (
            pytest.approx(float(runner.output_scale)), runner.output_zero_point)


@pytest.mark.parametrize("first, second", PAIRS)
def test_converted_files_give_the_same_classes_and_nearly_the_same_integers(device_export, images, first, second):
    a, b = open_model(device_export / first), open_model(device_export / second)
    qa, qb = (r.run(r.prepare(images)).astype(np.int32) for r in (a, b))
    assert (qa.argmax(1) == qb.argmax(1)).all()
    # The fixture's 500 images differ by at most one int8 step; the full test set by up to 7 (float
    # rounding in the stem's conv1 crossing a quantization boundary): docs/2026-11-21-deployment-artifacts.md.
    assert np.abs(qa - qb).max() <= 1


def _default_session_ops(path, tmp_path) -> set[str]:
    """Operator types of the graph a default InferenceSession runs (its optimized model, read back)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options)
    return set(summarize((tmp_path / "optimized.onnx").read_bytes(), "optimized").op_types)


@pytest.mark.parametrize("name", ["model_int8.onnx", "model_qat_int8.onnx"])
def test_default_session_runs_integer_kernels(device_export, tmp_path, name):
    ops = _default_session_ops(device_export / name, tmp_path)
    assert "QGemm" in ops  # the Dense layer runs as an integer GEMM, not a dequantized float one
    assert not ops & {"Gemm", "MatMul", "Relu", "Clip"}
