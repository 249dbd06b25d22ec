"""check.py: every gate criterion at its boundary, and evaluate() on synthetic records (no TensorFlow)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edge_mnist.check import (Criteria, accuracy_drop, baseline_drop, class_drop, disagreement, evaluate,
                              minimum_accuracy, parity, relative_drop)
from edge_mnist.datasets import DATASETS
from edge_mnist.errors import EdgeMnistError
from edge_mnist.files import sha256_file
from edge_mnist.formats import BY_KEY
from edge_mnist.records import Artifact, BenchResult, BenchRow, InputSpec, Manifest, QatRecord

pytestmark = pytest.mark.device

TASK = DATASETS["fashion-mnist"].task
LABELS = np.repeat(np.arange(10), 100)  # 1000 images, 100 per class


def wrong_on(n: int, start: int = 0, labels: np.ndarray = LABELS) -> np.ndarray:
    """Predictions equal to the labels except on n consecutive images from `start`."""
    preds = labels.copy()
    preds[start:start + n] = (preds[start:start + n] + 1) % 10
    return preds


@pytest.mark.parametrize("accuracy, passed", [(0.895, True), (0.894, False)])
def test_accuracy_drop_boundary(accuracy, passed):
    result = accuracy_drop("m", accuracy, 0.9, tolerance_pp=0.5)
    assert result.passed is passed and result.value == pytest.approx((0.9 - accuracy) * 100)


@pytest.mark.parametrize("accuracy, passed", [(0.796, True), (0.795, False)])
def test_relative_drop_boundary(accuracy, passed):
    assert relative_drop("m", accuracy, 0.8, max_pct=0.5).passed is passed


@pytest.mark.parametrize("accuracy, passed", [(0.9, True), (0.899, False)])
def test_minimum_accuracy_boundary(accuracy, passed):
    assert minimum_accuracy("m", accuracy, 0.9).passed is passed


@pytest.mark.parametrize("differ, passed", [(20, True), (21, False)])
def test_disagreement_boundary(differ, passed):
    result = disagreement("m", wrong_on(differ), LABELS, max_pct=2.0)
    assert result.passed is passed and result.value == pytest.approx(differ / 10)


@pytest.mark.parametrize("wrong, passed", [(3, True), (4, False)])
def test_class_drop_boundary_names_the_class(wrong, passed):
    preds = wrong_on(wrong, start=300)  # class 3 only
    result = class_drop("m", preds, LABELS, LABELS, TASK.class_names, max_pp=3.0)
    assert result.passed is passed and result.value == pytest.approx(wrong)
    assert result.detail == "class Dress"


@pytest.mark.parametrize("accuracy, passed", [(0.895, True), (0.894, False)])
def test_baseline_drop_boundary(accuracy, passed):
    assert baseline_drop("m", accuracy, 0.9, tolerance_pp=0.5).passed is passed


@pytest.mark.parametrize("differ, passed", [(10, True), (11, False)])
def test_parity_boundary_lists_the_images(differ, passed):
    result = parity("a ~ b", LABELS, wrong_on(differ, start=5), minimum=0.99)
    assert result.passed is passed
    assert result.detail.startswith(f"disagree on {differ}: 5, 6, 7")


@pytest.mark.parametrize("field, value", [("tolerance_pp", math.nan), ("tolerance_pp", -0.1), ("parity", -1.0),
                                          ("parity", 1.5), ("min_accuracy", 2.0), ("max_class_drop_pp", math.inf)])
def test_criteria_refuse_nan_negative_and_out_of_range(field, value):
    with pytest.raises(EdgeMnistError, match=field):
        Criteria(**{field: value}).validate()


def build_folder(out, preds: dict[str, np.ndarray], qat_preds: np.ndarray | None = None):
    """A folder with one file per format key (arbitrary bytes), its manifest and bench.json."""
    out.mkdir(exist_ok=True)
    artifacts, rows = {}, []
    for i, (key, p) in enumerate(preds.items()):
        fmt = BY_KEY[key]
        (out / fmt.file).write_bytes(bytes([i]) * (100 + i))
        spec = InputSpec([-1, 28, 28, 1], "int8", 0.0039, -128) if fmt.is_int8 else InputSpec([-1, 28, 28, 1], "float32")
        artifacts[key] = Artifact(key, fmt.file, sha256_file(out / fmt.file), 100 + i, spec)
        rows.append(BenchRow(key, fmt.file, artifacts[key].sha256, 100 + i, float((p == LABELS).mean()), p,
                             {"p50": 10.0, "p90": 11.0, "p99": 12.0}, 1000.0))
    qat = QatRecord(1, "model_qat.h5", "0" * 64, 0.95, qat_preds, {}) \
        if qat_preds is not None else None
    manifest = Manifest(TASK, "f" * 64, "0" * 64, 0.9, artifacts, qat)
    manifest.save(out)
    result = BenchResult("fashion-mnist", "f" * 64, LABELS, 1, {"runs": 1, "warmup": 0}, {}, rows)
    result.add_agreement(manifest)
    result.save(out)
    return out


def full_set(float_wrong=100, int8_wrong=103, qat_wrong=50):
    """Float, PTQ and QAT artifacts; QAT artifacts agree with their QAT source, not with float."""
    float_preds, int8_preds, qat_preds = wrong_on(float_wrong), wrong_on(int8_wrong), wrong_on(qat_wrong, start=500)
    return {"keras_float32": float_preds, "onnx_float32": float_preds, "tflite_float32": float_preds,
            "tflite_int8": int8_preds, "onnx_int8": int8_preds,
            "tflite_qat_int8": qat_preds, "onnx_qat_int8": qat_preds}, qat_preds


def test_evaluate_full_set_passes_with_every_criterion(tmp_path):
    preds, qat = full_set()
    verdict = evaluate(build_folder(tmp_path / "x", preds, qat), Criteria())
    assert verdict.passed and verdict.reference == "model_float32.keras" and verdict.n_samples == 1000
    assert len(verdict.results) == 4 * 3 + 2  # drop, disagreement, class drop per int8 artifact; two parity pairs
    qat_dis = next(r for r in verdict.results if r.artifact == "model_qat_int8.tflite"
                   and r.criterion.startswith("disagreement"))
    assert qat_dis.value == 0.0  # measured against the QAT source model, not against float


def test_evaluate_fails_a_regressed_artifact(tmp_path):
    preds, qat = full_set()
    preds["onnx_int8"] = wrong_on(106)  # 0.6 pp below float
    verdict = evaluate(build_folder(tmp_path / "x", preds, qat), Criteria())
    failed = {(r.artifact, r.criterion) for r in verdict.failed}
    assert ("model_int8.onnx", "accuracy drop vs float (pp)") in failed
    assert not verdict.passed


def test_reference_is_float_onnx_without_keras(tmp_path):
    preds, qat = full_set()
    del preds["keras_float32"]
    preds["onnx_float32"] = wrong_on(95)  # a different float accuracy proves which model is the reference
    verdict = evaluate(build_folder(tmp_path / "x", preds, qat), Criteria())
    assert verdict.reference == "model_float32.onnx" and verdict.reference_accuracy == pytest.approx(0.905)


def test_no_float_model_is_an_error(tmp_path):
    preds, qat = full_set()
    for key in ("keras_float32", "onnx_float32", "tflite_float32"):
        del preds[key]
    with pytest.raises(EdgeMnistError, match="no float model was measured"):
        evaluate(build_folder(tmp_path / "x", preds, qat), Criteria())


def test_edited_accuracy_and_changed_file_and_missing_row_are_refused(tmp_path):
    preds, qat = full_set()
    out = build_folder(tmp_path / "x", preds, qat)
    raw = json.loads((out / "bench.json").read_text())
    raw["rows"][3]["accuracy"] = 0.99
    (out / "bench.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeMnistError, match="does not match its predictions"):
        evaluate(out, Criteria())
    out = build_folder(tmp_path / "y", preds, qat)
    (out / "model_int8.onnx").write_bytes(b"changed")
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: changed since bench"):
        evaluate(out, Criteria())
    out = build_folder(tmp_path / "z", preds, qat)
    raw = json.loads((out / "bench.json").read_text())
    raw["rows"] = [r for r in raw["rows"] if r["key"] != "onnx_qat_int8"]
    (out / "bench.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeMnistError, match="model_qat_int8.onnx: int8 artifact not measured"):
        evaluate(out, Criteria())


def test_qat_artifacts_need_a_matching_qat_record(tmp_path):
    preds, qat = full_set()
    with pytest.raises(EdgeMnistError, match="manifest.json: qat: QAT artifacts are listed but the QAT record"):
        evaluate(build_folder(tmp_path / "x", preds, None), Criteria())
    with pytest.raises(EdgeMnistError, match="qat.predictions: 999 predictions for 1000 test images"):
        evaluate(build_folder(tmp_path / "y", preds, qat[:-1]), Criteria())


def test_baseline_must_be_a_bench_result_of_the_same_dataset(tmp_path):
    preds, qat = full_set()
    out = build_folder(tmp_path / "x", preds, qat)
    raw = json.loads((out / "bench.json").read_text())
    baseline = tmp_path / "release.json"
    baseline.write_text(json.dumps({**raw, "dataset": "mnist"}))
    with pytest.raises(EdgeMnistError, match="release.json: baseline measured on mnist, not fashion-mnist"):
        evaluate(out, Criteria(baseline=baseline))
    baseline.write_text(json.dumps({"rows": raw["rows"]}))
    with pytest.raises(EdgeMnistError, match="release.json: schema None is not 2"):
        evaluate(out, Criteria(baseline=baseline))
    for row in raw["rows"]:
        row["accuracy"] = 0.9535  # PTQ scores 0.897 here (5.65 pp below), QAT 0.95 (0.35 pp below)
    baseline.write_text(json.dumps(raw))
    verdict = evaluate(out, Criteria(baseline=baseline))
    drops = {r.artifact: r.passed for r in verdict.results if r.criterion == "accuracy drop vs baseline (pp)"}
    assert drops == {"model_int8.tflite": False, "model_int8.onnx": False,
                     "model_qat_int8.tflite": True, "model_qat_int8.onnx": True}
