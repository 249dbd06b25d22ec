"""export/__init__.py: the export stage writes every format of the chosen methods in one swap, described as planned."""
from __future__ import annotations

import json

import pytest

from edge_mnist.config import ExportConfig
from edge_mnist.data import load_dataset
from edge_mnist.export import export
from edge_mnist.folder.opener import read_folder
from edge_mnist.quantize.equalize import DETAILS_KEY
from edge_mnist.registry.formats import FORMATS, for_methods

pytestmark = pytest.mark.tf


def test_a_ptq_export_lists_its_formats_replaces_stale_records_and_carries_the_plan_s_notes(device_export,
                                                                                          fixture_data_dir):
    data = load_dataset("fashion-mnist", fixture_data_dir)
    for stale in ("bench.json", "check.json", "report.html", "confusion_float.png"):
        (device_export / stale).write_text("describes the old files")
    folder = read_folder(device_export, data, exported=False)
    manifest = export(folder, ExportConfig(calib_samples=32, equalize=True), progress=lambda *_: None)
    assert folder.manifest is manifest
    written = {a.key for a in manifest.artifacts.values()}
    assert {f.key for f in for_methods(("ptq",))} - {"web_int8"} <= written
    assert {"tflite_qat_int8", "onnx_qat_int8"} <= written  # the same model and data: the QAT set stays listed
    for stale in ("bench.json", "check.json", "report.html", "confusion_float.png"):
        assert not (device_export / stale).exists()
    for artifact in manifest.artifacts.values():
        equalized = artifact.fmt.method == "ptq" and artifact.fmt.is_int8
        assert (DETAILS_KEY in artifact.details) == equalized, artifact.file
    on_disk = json.loads((device_export / "manifest.json").read_text())
    assert [a["key"] for a in on_disk["artifacts"]] == [f.key for f in FORMATS if f.key in manifest.artifacts]


def test_a_float_export_writes_no_int8_file(device_export, fixture_data_dir, tmp_path):
    out = tmp_path / "float"
    out.mkdir()
    for name in ("model_float32.keras", "history.json"):
        (out / name).write_bytes((device_export / name).read_bytes())
    data = load_dataset("fashion-mnist", fixture_data_dir)
    manifest = export(read_folder(out, data, exported=False), ExportConfig(methods=("float",), calib_samples=32),
                      progress=lambda *_: None)
    assert sorted(a.file for a in manifest.artifacts.values()) == ["model_float32.keras", "model_float32.onnx",
                                                                    "model_float32.tflite"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "history.json", "manifest.json", "model_float32.keras", "model_float32.onnx", "model_float32.tflite"]
