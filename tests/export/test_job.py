"""export/job.py: the description every artifact carries, the manifest entry read back from a written file, and the
registry's exporter run by name; on the committed export."""
from __future__ import annotations

import hashlib
import json

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.version import __version__
from edge_mnist.export.c_array import read_array
from edge_mnist.export.job import Exported, ExportJob, NotExported, artifact_metadata, describe, run_exporter
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.datasets import task_from_json
from edge_mnist.registry.formats import BY_KEY, WEB_PAGE

pytestmark = pytest.mark.device


def test_every_artifact_carries_its_format_labels_and_task(device_export):
    task = Manifest.load(device_export).task
    metadata = artifact_metadata(BY_KEY["onnx_qat_int8"], task, 0.80812345)
    assert (metadata["edge_mnist.format"], metadata["precision"], metadata["method"]) == ("onnx_qat_int8", "int8",
                                                                                         "qat")
    assert metadata["edge_mnist.version"] == __version__ and metadata["float_accuracy"] == "0.808123"
    assert tuple(json.loads(metadata["labels"])) == task.class_names
    assert task_from_json(json.loads(metadata["task"]), "task") == task
    assert all(isinstance(v, str) for v in metadata.values())  # what ONNX metadata_props and a C header hold


def test_the_entry_of_each_committed_file_is_what_its_manifest_records(device_export):
    """describe reads the hash, size and input back from the file itself (its runtime, where it has one)."""
    manifest = Manifest.load(device_export)
    for key, recorded in manifest.artifacts.items():
        entry = describe(device_export / recorded.file, BY_KEY[key], manifest.task, None)
        assert (entry.key, entry.file, entry.sha256, entry.size_bytes, entry.input) == (
            key, recorded.file, recorded.sha256, recorded.size_bytes, recorded.input), key
        assert entry.details == {} and entry.parts == {}


def test_what_an_exporter_reports_goes_into_the_entry_and_its_parts_are_hashed(device_export, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<html></html>")
    (web / "edge-mnist.js").write_text("run()")
    task = Manifest.load(device_export).task
    exported = Exported("edge-mnist page", "", {"images": "500"}, ("edge-mnist.js",))
    entry = describe(web / "index.html", BY_KEY["web_int8"], task, exported)
    assert entry.file == WEB_PAGE and entry.details == {"converter": "edge-mnist page", "images": "500"}
    assert entry.parts == {"web/edge-mnist.js": hashlib.sha256(b"run()").hexdigest()}


def test_the_registry_names_the_exporter_that_runs(device_export, tmp_path):
    """The C++ source format's exporter, found by its registry name, writes the .tflite's bytes as the array."""
    manifest, fmt = Manifest.load(device_export), BY_KEY["c_int8"]
    job = ExportJob(None, None, tmp_path / fmt.file, fmt, manifest.task, {}, device_export / "model_int8.tflite")
    exported = run_exporter(fmt, job)
    assert exported.converter == f"edge-mnist {__version__} C array"
    assert read_array((tmp_path / fmt.file).read_text(), tmp_path / fmt.file) == (
        device_export / "model_int8.tflite").read_bytes()


def test_a_format_an_exporter_cannot_make_is_a_one_line_error_of_its_own_kind():
    assert issubclass(NotExported, EdgeMnistError) and NotExported("no C kernel for MEAN").exit_code == 2
