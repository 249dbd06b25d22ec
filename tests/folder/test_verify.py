"""folder/verify.py: an artifact opens only from the bytes the manifest hashed and only as what the manifest says
it is; files outside the manifest are refused; the recorded Keras sha256 is found. On the committed export."""
from __future__ import annotations


import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.folder.records import Manifest
from edge_mnist.folder.verify import (
    check_claims,
    open_artifact,
    read_verified,
    refuse_unlisted,
)
from edge_mnist.runtime import open_model

pytestmark = pytest.mark.device


def test_the_listed_bytes_are_read_and_any_change_is_refused(device_export):
    manifest = Manifest.load(device_export)
    entry = manifest.artifacts["onnx_int8"]
    path = device_export / entry.file
    assert read_verified(path, entry.sha256, entry.size_bytes) == path.read_bytes()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: sha256 does not match manifest.json"):
        read_verified(path, entry.sha256, entry.size_bytes)
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(EdgeMnistError, match=f"model_int8.onnx: {entry.size_bytes - 1} bytes, manifest.json says "
                                             f"{entry.size_bytes}"):
        read_verified(path, entry.sha256, entry.size_bytes)
    path.unlink()
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: listed in manifest.json but missing"):
        read_verified(path, entry.sha256)


@pytest.mark.parametrize("key, runtime", [("tflite_int8", "tflite"), ("onnx_qat_int8", "onnx"),
                                          ("ort_int8", "onnx")])
def test_an_artifact_opens_under_its_runtime_as_the_manifest_describes_it(device_export, key, runtime):
    manifest = Manifest.load(device_export)
    runner = open_artifact(device_export, manifest, key)
    assert runner.runtime == runtime and runner.precision == "int8"
    assert runner.input_scale == pytest.approx(manifest.artifacts[key].input.scale)


def test_a_float_file_in_an_int8_files_place_is_refused_by_what_it_holds(device_export):
    manifest = Manifest.load(device_export)
    runner = open_model(device_export / "model_float32.tflite")
    with pytest.raises(EdgeMnistError, match="model_float32.tflite: the file holds a float32 model but manifest.json "
                                             "lists it as tflite_int8 \\(int8\\)"):
        check_claims(runner, manifest.artifacts["tflite_int8"])


def test_an_input_grid_other_than_the_manifests_is_refused(device_export):
    manifest = Manifest.load(device_export)
    manifest.artifacts["tflite_int8"].input.scale *= 2
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: input quantization \\(scale .*\\) differs from "
                                             "manifest.json"):
        check_claims(open_model(device_export / "model_int8.tflite"), manifest.artifacts["tflite_int8"])


def test_a_registered_file_the_manifest_does_not_list_is_refused(device_export):
    manifest = Manifest.load(device_export)
    refuse_unlisted(device_export, manifest)
    del manifest.artifacts["onnx_qat_int8"]
    with pytest.raises(EdgeMnistError, match="model_qat_int8.onnx: present but not listed in manifest.json"):
        refuse_unlisted(device_export, manifest)
