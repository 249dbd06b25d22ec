"""Slow end to end: `edge-mnist run` on the full real Fashion-MNIST, PTQ and QAT, as the README runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, fashion_full):
    """One README-style run: 2 epochs float, PTQ and a 1-epoch QAT fine-tune, bench and check."""
    out = tmp_path_factory.mktemp("run")
    proc = subprocess.run([sys.executable, "-m", "edge_mnist.cli", "run", "--dataset", "fashion-mnist",
                           "--epochs", "2", "--method", "both", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800)
    return out, proc


def rows(out):
    return {r["key"]: r for r in json.loads((out / "bench.json").read_text())["rows"]}


def test_run_passes_the_gate(full_run):
    out, proc = full_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PASS" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_accuracy_targets(full_run):
    out, _ = full_run
    r = rows(out)
    float_acc = r["keras_float32"]["accuracy"]
    assert float_acc >= 0.87
    for key in ("tflite_int8", "onnx_int8", "tflite_qat_int8", "onnx_qat_int8"):
        assert r[key]["accuracy"] >= float_acc - 0.005, key
    for fmt in ("tflite", "onnx"):
        assert r[f"{fmt}_qat_int8"]["accuracy"] >= r[f"{fmt}_int8"]["accuracy"] - 0.001
    assert r["tflite_int8"]["size_bytes"] <= 0.27 * r["tflite_float32"]["size_bytes"]


def test_tflm_agrees_with_litert_on_its_stratified_subset(full_run):
    """TensorFlow Lite Micro on its default subset (500 of the 10,000 test images, 50 per class): the top-1
    of both files agrees with LiteRT within the gate's default parity, 99% (measured 99.95% and 99.66% on all
    10,000 in one run; 99.4% for the PTQ file on the subset in another, 2026-12-02: LiteRT's optimized kernels
    round some ties differently from TFLM's reference ones, and two-epoch models differ between runs)."""
    out, _ = full_run
    r = rows(out)
    labels = np.array(json.loads((out / "bench.json").read_text())["labels"])
    for key, minimum in (("tflite_int8", 0.99), ("tflite_qat_int8", 0.99)):
        indices = np.array(r[f"{key}@tflm"]["test_indices"])
        assert len(indices) == 500 and np.bincount(labels[indices]).tolist() == [50] * 10
        tflm, lite = np.array(r[f"{key}@tflm"]["predictions"]), np.array(r[key]["predictions"])[indices]
        assert (tflm == lite).mean() >= minimum, key
        assert r[f"{key}@tflm"]["latency_us"] is None
    header = Path(out / "model_int8.h").read_text()
    assert "kModelLength = %d;" % r["tflite_int8"]["size_bytes"] in header and "kTensorArenaSize" in header


def test_manifest_lists_every_artifact(full_run):
    out, _ = full_run
    from edge_mnist.folder.records import Manifest
    from edge_mnist.registry.formats import FORMATS

    manifest = Manifest.load(out)
    assert manifest.task.dataset == "fashion-mnist" and manifest.float_accuracy >= 0.87
    assert list(manifest.artifacts) == [f.key for f in FORMATS if f.key != "web_qat_int8"]  # one web/, PTQ's
    assert manifest.artifacts["tflite_int8"].input.dtype == "int8"
    assert manifest.artifacts["tflite_int8"].input.scale > 0
    assert manifest.qat is not None and len(manifest.qat.predictions) == 10000
    assert "tensorflow" in manifest.versions and "onnxruntime" in manifest.versions


def test_qat_artifacts_are_full_integer_and_agree_with_qat_keras(full_run):
    out, _ = full_run
    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.data import load_dataset, to_float
    from edge_mnist.runtime import open_model

    x = to_float(load_dataset("fashion-mnist").x_test)
    qat_keras = load_keras(out / "model_qat.h5").predict(x, batch_size=1024, verbose=0).argmax(1)
    tfl = open_model(out / "model_qat_int8.tflite")
    assert tfl.input_dtype == np.int8 and tfl._out["dtype"] == np.int8
    assert "float32" not in tfl.tensor_dtypes()
    onnx_model = open_model(out / "model_qat_int8.onnx")
    for runner in (tfl, onnx_model):
        agree = (runner.predict(x).argmax(1) == qat_keras).mean()
        assert agree >= 0.99, (runner.path, agree)
    import onnx

    weights = [t for t in onnx.load(out / "model_qat_int8.onnx").graph.initializer if np.prod(t.dims) > 1000]
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_qat_int8.tflite"])
def test_fresh_int8_files_have_relu_zero_points_at_the_minimum_and_per_tensor_dense(full_run, name):
    """What this run's exporters made, not the committed fixture: calibrated QAT ranges start at 0
    after every ReLU, and Dense weights carry one scale (the converter flag is a private TF one)."""
    from edge_mnist.runtime.tflite_graph import read_tflite

    path = full_run[0] / name
    graph = read_tflite(path.read_bytes(), path)
    relu = [outs[0] for _, _, outs, opts in graph.ops if getattr(opts, "fusedActivationFunction", 0) == 1]
    assert len(relu) == 3 and all(int(graph.quant[i].zero_point[0]) == -128 for i in relu)
    dense = [inputs[1] for op, inputs, _, _ in graph.ops if op == "FULLY_CONNECTED"]
    assert len(dense) == 2 and all(graph.quant[i].scale.size == 1 for i in dense)


def test_float_model_gated_against_is_the_unmodified_one(full_run):
    out, _ = full_run
    from edge_mnist.core.files import sha256_file
    from edge_mnist.core.keras_io import load_keras

    manifest = json.loads((out / "manifest.json").read_text())
    assert sha256_file(out / "model_float32.keras") == manifest["keras_sha256"]
    names = [type(layer).__name__ for layer in load_keras(out / "model_float32.keras").layers]
    assert "BatchNormalization" in names


def test_the_log_shows_stages_and_progress_and_the_report_is_written(full_run):
    """Not a terminal: plain progress lines (no carriage returns), one per epoch, export and bench artifact."""
    import re

    out, proc = full_run
    log = proc.stderr
    assert "\r" not in log
    assert [f"[{i}/5] {name}" for i, name in enumerate(("train", "export", "bench", "check", "report"), 1)] == \
        re.findall(r"\[\d/5\] \w+", log)
    for epoch in ("train epoch 1/2", "train epoch 2/2", "QAT fine-tune epoch 1/1"):
        assert re.search(rf"^{epoch}: 60,000 img in \d+:\d\d \([\d,]+ img/s\), .*test accuracy 0\.\d{{4}}$", log,
                         re.M), epoch
    from edge_mnist.registry.formats import for_methods

    assert re.search(rf"^export: {len(for_methods(('ptq', 'qat')))} files in ", log, re.M)
    assert re.search(r"^model_int8\.tflite \(tflite\): 11,100 img in ", log, re.M)  # 10,000 + 1,000 runs + 100
    page = (out / "report.html").read_text()
    assert '<span id="verdict-word">PASS</span>' in page and page.count("data:image/png;base64,") == 6
    assert json.loads((out / "check.json").read_text())["verdict"] == "PASS"  # recorded for `info`
