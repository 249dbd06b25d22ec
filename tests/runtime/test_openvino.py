"""The openvino runtime: OpenVINO's CPU plugin on the int8 .onnx and .tflite files, in bench and the gate.

Skipped where `openvino` is not installed (the device tier's venv), except the test that the gate then
skips the runtime with a note.
"""
from __future__ import annotations

from importlib.util import find_spec
import numpy as np
import pytest

from edge_mnist.config import BenchConfig, GateConfig
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.opener import read_folder
from edge_mnist.runtime import open_model
from tests.conftest import FIXTURES

pytestmark = pytest.mark.device
needs_openvino = pytest.mark.skipif(find_spec("openvino") is None, reason="pip install 'edge-mnist[openvino]'")
FIXTURE_INT8 = [("device_export", "model_int8.onnx"), ("device_export", "model_qat_int8.onnx"),
                ("device_export", "model_int8.tflite"), ("device_export", "model_qat_int8.tflite"),
                ("mnist_export", "model_int8.tflite")]
TEST_IMAGES = {"device_export": ("fashion-mnist", "fashion-small"), "mnist_export": ("mnist", "mnist-digits")}


def fixture_images(folder: str) -> np.ndarray:
    """The committed test images of the dataset a fixture folder was trained on."""
    dataset, data_dir = TEST_IMAGES[folder]
    return to_float(load_dataset(dataset, FIXTURES / data_dir).x_test)


@needs_openvino
@pytest.mark.parametrize("folder, name", FIXTURE_INT8)
def test_openvino_gives_litert_top1_on_every_fixture_image(folder, name):
    """Every int8 file of the committed fixture folders compiles on the CPU plugin and has LiteRT's top-1 on
    every fixture test image (500 and 1,000), with the same input quantization and labels as the file's own
    runtime reads."""
    path = FIXTURES / folder / name
    images = fixture_images(folder)
    vino = open_model(path, runtime="openvino")
    own = open_model(path)
    lite = open_model(path.with_suffix(".tflite"))
    assert vino.runtime == "openvino" and vino.precision == "int8" and vino.metadata == own.metadata
    assert (vino.input_scale, vino.input_zero_point, vino.output_scale, vino.output_zero_point) == (
        own.input_scale, own.input_zero_point, own.output_scale, own.output_zero_point)
    assert np.array_equal(vino.predict(images).argmax(1), lite.predict(images).argmax(1))


@needs_openvino
def test_a_file_openvino_cannot_read_is_one_line(tmp_path):
    from edge_mnist.core.errors import EdgeMnistError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x08" + b"garbage" * 50)
    with pytest.raises(EdgeMnistError, match="bad.onnx") as info:
        open_model(bad, runtime="openvino")
    assert "\n" not in str(info.value)


@needs_openvino
def test_bench_and_check_have_openvino_rows(device_export, fixture_data_dir):
    from edge_mnist.bench import bench
    from edge_mnist.check import evaluate
    from edge_mnist.folder.records import BenchResult
    from edge_mnist.gate import Criteria

    data = load_dataset("fashion-mnist", fixture_data_dir)
    bench(read_folder(device_export, data), BenchConfig(runs=10, warmup=1, throughput_seconds=0),
          progress=lambda _: None)
    result = BenchResult.load(device_export / "bench.json", 10)
    for key, own in (("onnx_int8@openvino", "onnx_int8"), ("tflite_qat_int8@openvino", "tflite_qat_int8")):
        row, base = result.row(key), result.row(own)
        assert row.runtime == "openvino" and row.file == base.file and row.sha256 == base.sha256
        assert row.latency_us["p50"] > 0
        assert np.array_equal(row.predictions, result.row("tflite_int8" if "qat" not in key else own).predictions)
    verdict = evaluate(read_folder(device_export, data),
                       GateConfig(Criteria(), skip_qat_source=True, skip_runtimes=("tflm",)))
    parity = {r.artifact: r for r in verdict.results if r.criterion.startswith("parity")}
    for label in ("model_int8.onnx@openvino", "model_int8.tflite@openvino", "model_qat_int8.onnx@openvino"):
        (pair,) = [r for name, r in parity.items() if name.endswith(label)]
        assert pair.passed and pair.value == 1.0


def test_check_skips_openvino_with_a_note_where_it_is_not_installed(device_export, fixture_data_dir, monkeypatch):
    """As on the device tier's install: the gate runs every other runtime and says what it left out."""
    import sys

    from edge_mnist.check import evaluate
    from edge_mnist.gate import Criteria

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    verdict = evaluate(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                       GateConfig(Criteria(), skip_qat_source=True, skip_runtimes=("tflm",)))
    notes = [s for s in verdict.skipped if "@openvino" in s]
    assert len(notes) == 4 and all("openvino runtime is not installed" in s for s in notes)
    assert verdict.passed and not any("@openvino" in r.artifact for r in verdict.results)
