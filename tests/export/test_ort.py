"""export/ort.py: the .ort (onnxruntime's converter run once on the int8 .onnx: the fused integer graph, no x86-only
layout) and the operators a reduced onnxruntime build keeps; on the committed files and re-exported here."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.export.job import ExportJob, artifact_metadata, run_exporter
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.formats import BY_KEY
from edge_mnist.runtime import open_model
from edge_mnist.runtime.onnx_graph import summarize_ort

pytestmark = pytest.mark.device


def config_ops(text: str) -> set[str]:
    """The operators a required-operators config lists (domain;opset;op,op lines)."""
    return {op for line in text.splitlines() if not line.startswith("#") for op in line.split(";")[2].split(",")}


@pytest.mark.parametrize("name", ["model_int8.ort", "model_qat_int8.ort"])
def test_ort_files_hold_the_fused_integer_graph(device_export, name):
    ops = set(summarize_ort((device_export / name).read_bytes(), name).op_types)
    assert "QGemm" in ops and not ops & {"Gemm", "MatMul", "Clip"}
    assert not any(op.startswith("Reorder") for op in ops)  # no x86-only NCHWc layout baked in


def test_required_operators_config_lists_the_ort_operators(device_export):
    config = (device_export / "model_int8.required_operators.config").read_text()
    ops = set(summarize_ort((device_export / "model_int8.ort").read_bytes(), "ort").op_types)
    assert ops == config_ops(config)


def test_the_committed_onnx_converts_to_the_committed_graph_carrying_its_own_description(device_export, test_images,
                                                                                        tmp_path):
    """export_ort and export_ops_config, run as export runs them, on the committed int8 .onnx: the same operators
    as the committed .ort, the ort_int8 description in the file, the .onnx's outputs; the config lists them all."""
    pytest.importorskip("onnx")
    manifest = Manifest.load(device_export)
    ort, config = BY_KEY["ort_int8"], BY_KEY["ort_int8_ops"]
    metadata = artifact_metadata(ort, manifest.task, manifest.float_accuracy)
    run_exporter(ort, ExportJob(None, None, tmp_path / ort.file, ort, manifest.task, metadata,
                                device_export / "model_int8.onnx"))
    written = (tmp_path / ort.file).read_bytes()
    assert summarize_ort(written, ort.file).op_types == summarize_ort((device_export / ort.file).read_bytes(),
                                                                     ort.file).op_types
    runner = open_model(tmp_path / ort.file)
    assert runner.metadata["edge_mnist.format"] == "ort_int8" and runner.metadata["labels"] == metadata["labels"]
    x = test_images[0][:50]
    np.testing.assert_array_equal(runner.predict(x), open_model(device_export / "model_int8.onnx").predict(x))
    run_exporter(config, ExportJob(None, None, tmp_path / config.file, config, manifest.task, {}, tmp_path / ort.file))
    text = (tmp_path / config.file).read_text()
    assert config_ops(text) == set(summarize_ort(written, ort.file).op_types) and str(tmp_path) not in text
