"""debug and export --fallback on a model that really breaks post-training int8.

The reference CNN of the session's tiny export with conv1's channel 3 scaled up 300x and conv2's
matching inputs scaled down (benchmarks/fallback.py): the same float function, but conv1's
per-tensor int8 activations are ruined. Plain PTQ must fail the gate, debug must name conv1,
and --fallback must pass with conv1 and conv2 float, for the .tflite and the .onnx alike. These tests pass
--no-equalize: cross-layer equalization would rescue the model with no float layer (tests/quantize/test_equalize.py).
"""
from __future__ import annotations

import json
import shutil
from edge_mnist.config import ExportConfig, GateConfig
from edge_mnist.folder.opener import read_folder

import numpy as np
import pytest

from benchmarks.fallback import outlier_channel
from tests.conftest import run_process
from tests.quantize.conftest import CALIB, imported, quiet

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def broken(trained, tmp_path_factory):
    """The outlier-channel model as a user's .keras file."""
    from edge_mnist.core.keras_io import load_keras, save_keras

    path = tmp_path_factory.mktemp("broken") / "broken.keras"
    save_keras(outlier_channel(load_keras(trained / "model_float32.keras")), path)
    return path


@pytest.fixture(scope="module")
def plain(broken, data, tmp_path_factory):
    """The broken model exported with plain PTQ."""
    return imported(broken, tmp_path_factory.mktemp("plain"), data)


@pytest.fixture(scope="module")
def mixed(broken, data, tmp_path_factory):
    """The broken model exported with --fallback."""
    from edge_mnist.gate import Criteria

    return imported(broken, tmp_path_factory.mktemp("mixed"), data, Criteria(), equalize=False)


@pytest.mark.slow
def test_the_outlier_model_computes_the_same_float_function(trained, broken, data):
    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.data import to_float

    x = to_float(data.x_test[:200])
    before = load_keras(trained / "model_float32.keras").predict(x, verbose=0)
    after = load_keras(broken).predict(x, verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-4)


@pytest.mark.slow
def test_plain_ptq_of_the_outlier_model_fails_the_gate(plain, data):
    from edge_mnist.check import evaluate
    from edge_mnist.gate import Criteria

    verdict = evaluate(read_folder(plain, data), GateConfig(Criteria(), skip_runtimes=("tflm",)))
    failed = {r.artifact for r in verdict.failed}
    assert {"model_int8.tflite", "model_int8.onnx", "model_int8.ort"} <= failed


@pytest.mark.slow
def test_debug_names_the_scaled_layer_first_for_tflite_and_onnx(plain, medium_fashion_dir):
    """`edge-mnist debug`: the table, debug.json and debug.png of both post-training files."""
    from click.testing import CliRunner

    from edge_mnist.cli import cli
    from edge_mnist.folder.layout import DEBUG_FILE, DEBUG_PLOT

    result = CliRunner().invoke(cli, ["debug", "--out", str(plain), "--data-dir", str(medium_fashion_dir),
                                      "--calib-samples", str(CALIB)])
    assert result.exit_code == 0, result.output
    tables = result.stdout.split("model_int8.onnx (onnx)")
    assert len(tables) == 2
    for table in tables:
        rows = [line.split()[0] for line in table.splitlines() if line.startswith("  ") and "dB" not in line]
        assert rows[:2] == ["conv1", "conv2"]
    assert max(len(line) for line in result.stdout.splitlines() if not line.startswith("wrote ")) <= 100
    record = json.loads((plain / DEBUG_FILE).read_text())
    assert [a["file"] for a in record["artifacts"]] == ["model_int8.tflite", "model_int8.onnx"]
    for artifact in record["artifacts"]:
        assert artifact["ranking"][:2] == ["conv1", "conv2"]
        by_name = {row["layer"]: row for row in artifact["layers"]}
        assert by_name["conv1"]["output_sqnr_db"] < 10 < by_name["dense1"]["output_sqnr_db"]
        assert by_name["conv1"]["weight_sqnr_db"] > 30  # the weights are fine: the activation grid is not
        assert by_name["bn+probs"]["operators"] == ["FULLY_CONNECTED", "SOFTMAX"]  # a folded BatchNorm is named
        assert by_name["conv1"]["accuracy_if_float"] is not None and by_name["pool1"]["accuracy_if_float"] is None
    assert (plain / DEBUG_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_debug_refuses_another_calibration(plain, data):
    from edge_mnist.core.errors import EdgeMnistError
    from edge_mnist.debug import debug

    with pytest.raises(EdgeMnistError, match="--calib-samples and --seed"):
        debug(read_folder(plain, data), ExportConfig(calib_samples=CALIB + 1), progress=quiet)


@pytest.mark.slow
def test_fallback_keeps_two_layers_float_and_passes_for_tflite_and_onnx(mixed, data):
    from edge_mnist.check import evaluate
    from edge_mnist.folder.records import Manifest
    from edge_mnist.gate import Criteria
    from edge_mnist.runtime.tflite import TFLiteRunner

    manifest = Manifest.load(mixed)
    float_layers = manifest.float_layers()
    assert float_layers["tflite_int8"] == float_layers["onnx_int8"] == float_layers["ort_int8"] == "conv1, conv2"
    for key in ("tflite_int8", "onnx_int8"):
        details = manifest.artifacts[key].details
        assert details["fallback"].startswith("passes the gate")
        assert "p50" in details["fallback_cost"] and "size +" in details["fallback_cost"]
    tflite = TFLiteRunner(mixed / "model_int8.tflite")
    assert tflite.precision == "int8" and "float32" in tflite.tensor_dtypes()
    assert tflite.metadata["float_layers"] == "conv1, conv2"  # the file says so itself
    verdict = evaluate(read_folder(mixed, data), GateConfig(Criteria(), skip_runtimes=("tflm",)))
    assert verdict.passed, [r for r in verdict.failed]
    assert verdict.float_layers["tflite_int8"] == "conv1, conv2"
    parity = [r for r in verdict.results if r.criterion == "parity (same class)"]
    assert parity and all(r.value == 1.0 for r in parity)  # onnxruntime keeps the float layers float


@pytest.mark.slow
def test_when_no_mix_passes_export_exits_1_with_the_best_mix(broken, medium_fashion_dir, tmp_path, capsys):
    from edge_mnist.cli import main

    out = tmp_path / "capped"
    with pytest.raises(SystemExit) as exited:
        main(["export", "--int8", "--model", str(broken), "--fallback", "--no-equalize", "--max-float-layers", "1",
              "--calib-samples", str(CALIB), "--dataset", "fashion-mnist", "--data-dir", str(medium_fashion_dir),
              "--out", str(out)])
    assert exited.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("edge-mnist: fallback failed: no mix of float layers passes the gate; best: ")
    assert "accuracy tflite 0." in last and "onnx 0." in last and "failed: model_int8" in last
    manifest = json.loads((out / "manifest.json").read_text())
    details = {a["key"]: a["details"] for a in manifest["artifacts"]}
    assert details["tflite_int8"]["fallback"].startswith("NO MIX PASSES THE GATE")
    check = run_process(["check", "--out", out, "--data-dir", medium_fashion_dir, "--skip-runtime", "tflm"])
    assert check.returncode == 1


@pytest.mark.slow
def test_a_healthy_model_needs_no_fallback(trained, data, tmp_path):
    from edge_mnist.export import export
    from edge_mnist.gate import Criteria

    out = tmp_path / "healthy"
    shutil.copytree(trained, out)
    manifest = export(read_folder(out, data, exported=False),
                      ExportConfig(("ptq",), calib_samples=CALIB, fallback=True, criteria=Criteria()), progress=quiet)
    assert manifest.float_layers() == {}
    assert manifest.artifacts["tflite_int8"].details["fallback"].startswith("not needed")


def test_a_failing_search_never_reads_as_passing_even_when_all_int8_is_the_best_mix():
    from edge_mnist.quantize.fallback import Fallback, Step

    int8 = Step((), {"tflite": 0.80, "onnx": 0.80}, ["model_int8.tflite disagreement 13 (limit 2)"])
    worse = Step(("conv1",), {"tflite": 0.79, "onnx": 0.79}, ["model_int8.tflite disagreement 14 (limit 2)"])
    search = Fallback([int8, worse], ["conv1", "conv2"])
    assert search.chosen is int8 and not search.passed
    assert search.describe()["fallback"].startswith("NO MIX PASSES THE GATE; best mix kept (all int8)")
    assert "float_layers" not in search.describe()
    passing = Step(("conv1", "conv2"), {"tflite": 0.89, "onnx": 0.89}, [])
    assert Fallback([int8, worse, passing], ["conv1", "conv2"]).describe()["float_layers"] == "conv1, conv2"
