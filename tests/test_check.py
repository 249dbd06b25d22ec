"""check.py: every gate criterion at its boundary, and evaluate() re-deriving its verdict from real artifacts.

The folder is the committed tiny export (float, PTQ and QAT artifacts of a real model on real
Fashion-MNIST images); tampering is done the way an attacker would, with the manifest's sha256
and size updated to match, so only running the models can catch it.
"""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from edge_mnist.bench import bench
from edge_mnist.check import evaluate
from edge_mnist.config import BenchConfig, GateConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import sha256_file
from edge_mnist.core.machine import machine_info
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import LATENCY_KEYS, BenchResult, BenchRow, Manifest, Timing
from edge_mnist.gate import (
    MINIMUM,
    Criteria,
    accuracy_drop,
    baseline_drop,
    class_drop,
    disagreement,
    minimum_accuracy,
    parity,
    relative_drop,
)
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.registry.formats import RUNTIMES, chosen_runs
from edge_mnist.render.tables import describe
from edge_mnist.runtime import open_model

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
    result = disagreement("m", wrong_on(differ), LABELS, max_pct=2.0)  # 1000 images resolve 2%: the point rule
    assert result.context["resolved"] and result.context["images"] == 1000
    assert result.passed is passed and result.value == pytest.approx(differ / 10)


@pytest.mark.parametrize("wrong, passed", [(3, True), (4, False)])
def test_class_drop_boundary_names_the_class(wrong, passed):
    preds = wrong_on(wrong, start=300)  # class 3 only
    result = class_drop("m", preds, LABELS, LABELS, TASK.class_names, max_pp=3.0, strict=True)
    assert result.passed is passed and result.value == pytest.approx(wrong)
    assert result.context["class"] == "Dress" and describe(result).startswith("worst class Dress vs its source")


@pytest.mark.parametrize("accuracy, passed", [(0.895, True), (0.894, False)])
def test_baseline_drop_boundary(accuracy, passed):
    assert baseline_drop("m", accuracy, 0.9, tolerance_pp=0.5).passed is passed


@pytest.mark.parametrize("differ, passed", [(10, True), (11, False)])
def test_parity_boundary_lists_the_images(differ, passed):
    result = parity("a ~ b", LABELS, wrong_on(differ, start=5), minimum=0.99)
    assert result.passed is passed
    assert result.detail.startswith(f"they disagree on {differ} images: 5, 6, 7")


@pytest.mark.parametrize("field, value", [("tolerance_pp", math.nan), ("tolerance_pp", -0.1), ("parity", -1.0),
                                          ("parity", 1.5), ("min_accuracy", 2.0), ("max_class_drop_pp", math.inf)])
def test_criteria_refuse_nan_negative_and_out_of_range(field, value):
    with pytest.raises(EdgeMnistError, match=field):
        Criteria(**{field: value}).validate()


def has_tensorflow() -> bool:
    """True in the dev environment (Keras reference and QAT source run), False in the runtime-only one."""
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def rehash(out, *files) -> None:
    """Update the manifest's sha256 and size of `files` to what is on disk now, as an attacker would."""
    manifest = Manifest.load(out)
    for artifact in manifest.artifacts.values():
        if artifact.file in files:
            path = out / artifact.file
            artifact.sha256, artifact.size_bytes = sha256_file(path), path.stat().st_size
    manifest.save(out)


def zero_largest_tflite_buffer(path) -> None:
    """Zero the biggest weight buffer of a .tflite file in place (the flatbuffer stays valid)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(path.read_bytes())
    root = schema.Model.GetRootAs(data, 0)
    biggest = max((root.Buffers(i) for i in range(root.BuffersLength())), key=lambda b: b.DataLength())
    biggest.DataAsNumpy()[:] = 0
    path.write_bytes(bytes(data))


@pytest.fixture
def data(fixture_data_dir):
    """The committed real Fashion-MNIST subset the tiny export was made with (500 test images)."""
    return load_dataset("fashion-mnist", fixture_data_dir)


SKIP = {"skip_qat_source": not has_tensorflow()}


def test_fresh_export_passes_every_criterion_without_bench_json(device_export, data):
    assert not (device_export / "bench.json").exists()
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))
    assert verdict.passed and verdict.n_samples == 500
    per_artifact = 3 if has_tensorflow() else 1  # drop; disagreement and class drop vs the QAT source need TF
    tflm = importlib.util.find_spec("tflite_micro") is not None  # the .tflite runs again under TFLM, with parity
    openvino = importlib.util.find_spec("openvino") is not None  # the .tflite and .onnx run again under OpenVINO
    runs = 4 + tflm + 2 * openvino  # .tflite, its CPU build, .onnx, .ort; then TFLM and OpenVINO
    expected = 3 * runs + runs * per_artifact + 2 * (runs - 1) + 8  # criteria, parity pairs, four C++, four C files
    assert len(verdict.results) == expected
    assert verdict.reference == ("model_float32.keras" if has_tensorflow() else "model_float32.onnx")
    assert len(verdict.skipped) == (0 if has_tensorflow() else runs) + (0 if tflm else 2) + (0 if openvino else 4)


def test_zeroed_weights_with_updated_hash_fail_the_gate(device_export, data):
    zero_largest_tflite_buffer(device_export / "model_int8.tflite")
    rehash(device_export, "model_int8.tflite")
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))
    failed = {(r.artifact, r.criterion) for r in verdict.failed}
    assert ("model_int8.tflite", "accuracy drop vs float (pp)") in failed
    assert not any(r.artifact == "model_int8.onnx" for r in verdict.failed)


def forge_records(out, data, int8: float, float_: float) -> None:
    """Edit DIR's records as a forger would: manifest.json's and history.json's float accuracy set to `float_`, the
    QAT record's and a readable bench.json's rows (every run here, predictions to match) to `int8`."""
    labels = data.y_test.astype(np.int64)
    manifest = Manifest.load(out)
    manifest.float_accuracy, manifest.qat.accuracy = float_, int8
    manifest.save(out)
    history = json.loads((out / "history.json").read_text())
    (out / "history.json").write_text(json.dumps({**history, "test_accuracy": float_}))
    rows = []
    for artifact in manifest.artifacts.values():
        for run in chosen_runs(artifact.fmt) if artifact.fmt.runtime else ():
            accuracy = int8 if run.fmt.is_int8 else float_
            preds = labels.copy()
            preds[round(accuracy * len(labels)):] += 1
            timed = RUNTIMES[run.runtime].timed
            rows.append(BenchRow(run.key, artifact.file, artifact.sha256, artifact.size_bytes, accuracy=accuracy,
                                 predictions=preds % 10, latency_us=dict.fromkeys(LATENCY_KEYS, 20.0) if timed else None,
                                 throughput_ips=1e4 if timed else None))
    BenchResult(dataset="fashion-mnist", dataset_fingerprint=manifest.dataset_fingerprint, labels=labels, threads=1,
                timing=Timing(30, 0, 0.0), machine=machine_info(), rows=rows).save(out)
    assert BenchResult.load(out / "bench.json", 10).row("tflite_int8").accuracy == int8


def real_accuracy(path, data) -> float:
    """Top-1 accuracy of one model file, run here on the test images."""
    preds = open_model(path).predict(to_float(data.x_test)).argmax(1)
    return float((preds == data.y_test).mean())


@pytest.mark.parametrize("margin, int8, float_", [(+0.002, 1.0, 0.5), (-0.002, 0.5, 1.0)],
                         ids=["fails-on-real-figures", "passes-on-real-figures"])
def test_edited_records_do_not_change_the_verdict(device_export, data, margin, int8, float_):
    """A minimum accuracy just above (below) the int8 files' real accuracy fails (passes) when every record is
    forged to claim the opposite: the verdict's figures are the files' own, run here, never the records'."""
    real_int8 = real_accuracy(device_export / "model_int8.tflite", data)
    real_float = real_accuracy(device_export / "model_float32.onnx", data)
    forge_records(device_export, data, int8, float_)
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(min_accuracy=real_int8 + margin), **SKIP))
    minimum = next(r for r in verdict.results if r.artifact == "model_int8.tflite" and r.criterion == MINIMUM)
    assert minimum.value == pytest.approx(real_int8) and minimum.passed is (margin < 0)
    assert verdict.passed is (margin < 0) and verdict.reference_accuracy == pytest.approx(real_float)
    assert verdict.accuracies["model_int8.tflite"] == pytest.approx(real_int8)


def test_float_model_copied_over_an_int8_one_is_refused(device_export, data):
    (device_export / "model_int8.tflite").write_bytes((device_export / "model_float32.tflite").read_bytes())
    rehash(device_export, "model_int8.tflite")
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: the file holds a float32 model"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))


def test_changed_file_without_updated_hash_is_refused(device_export, data):
    (device_export / "model_int8.onnx").write_bytes(b"changed")
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: 7 bytes, manifest.json says"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))


def test_qat_artifacts_need_their_qat_record(device_export, data):
    manifest = json.loads((device_export / "manifest.json").read_text())
    manifest["qat"] = None
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeMnistError, match="manifest.json: qat: QAT artifacts are listed but the QAT record"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), skip_qat_source=True))


@pytest.mark.skipif(has_tensorflow(), reason="the QAT source model runs when TensorFlow is installed")
def test_qat_source_criteria_without_tensorflow_are_an_error_naming_the_option(device_export, data):
    with pytest.raises(EdgeMnistError, match="needs TensorFlow.*--skip-qat-source"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria()))


def test_an_int8_file_left_out_of_the_manifest_is_refused(device_export, data):
    manifest = json.loads((device_export / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["key"] != "tflite_int8"]
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeMnistError, match="manifest.json: artifacts: model_int8.tflite not listed"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))


def test_a_registered_file_on_disk_but_not_in_the_manifest_is_refused(device_export, data):
    manifest = json.loads((device_export / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["method"] != "qat"]
    manifest["qat"] = None
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeMnistError, match=r"model_qat_int8(_cpu)?\.tflite: present but not listed in manifest.json"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))
    for name in ("model_qat_int8.tflite", "model_qat_int8_cpu.tflite", "model_qat_int8.onnx", "model_qat_int8.ort",
                 "model_qat_int8.required_operators.config", "model_qat_int8.cc", "model_qat_int8.h",
                 "model_qat_int8_micro.c", "model_qat_int8_micro.h"):
        (device_export / name).unlink()
    assert evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP)).passed


def spoof_int8(path) -> None:
    """Give a float .tflite an unused int8 tensor, so that only a liveness-aware reader still calls it float."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    buffer = schema.BufferT()
    buffer.data = np.ones(100_000, np.int8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = ([100_000], schema.TensorType.INT8, len(model.buffers) - 1,
                                                             b"dead")
    model.subgraphs[0].tensors.append(tensor)
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def test_a_float_file_with_a_dead_int8_tensor_is_still_float(device_export, data):
    target = device_export / "model_int8.tflite"
    target.write_bytes((device_export / "model_float32.tflite").read_bytes())
    spoof_int8(target)
    rehash(device_export, "model_int8.tflite")
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: the file holds a float32 model"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))


def test_other_test_data_is_refused(device_export, fixture_data_dir, tmp_path):
    from tests.conftest import write_idx_dir

    arrays = load_dataset("fashion-mnist", fixture_data_dir)
    other = {"x_train": arrays.x_train, "y_train": arrays.y_train, "x_test": arrays.x_test[:-1],
             "y_test": arrays.y_test[:-1]}
    with pytest.raises(EdgeMnistError, match="exported with other fashion-mnist test data"):
        evaluate(read_folder(device_export, load_dataset("fashion-mnist", write_idx_dir(tmp_path / "d", other))),
                 GateConfig(Criteria(), **SKIP))


def baseline_file(measured: dict, tmp_path, files: list[str], accuracy: float, dataset="fashion-mnist"):
    """An earlier bench.json (`measured`: a real bench of the folder, as JSON), keeping the rows of `files` with
    their accuracy set to `accuracy`."""
    raw = {**measured, "rows": [r for r in measured["rows"] if r["file"] in files]}
    labels = np.array(raw["labels"])
    for row in raw["rows"]:
        preds = labels.copy()
        preds[round(accuracy * len(labels)):] += 1
        row["predictions"], row["accuracy"] = (preds % 10).tolist(), float((preds % 10 == labels).mean())
    path = tmp_path / "release.json"
    path.write_text(json.dumps({**raw, "dataset": dataset}))
    return path


def test_baseline_needs_a_row_for_every_int8_artifact_of_the_same_dataset(device_export, data, tmp_path):
    ints = ["model_int8.tflite", "model_int8_cpu.tflite", "model_int8.onnx", "model_int8.ort", "model_qat_int8.tflite",
            "model_qat_int8_cpu.tflite", "model_qat_int8.onnx", "model_qat_int8.ort"]
    measured = bench(read_folder(device_export, data), BenchConfig(runs=3, warmup=0, throughput_seconds=0),
                     progress=lambda *_: None).to_json()
    only_float = baseline_file(measured, tmp_path, ["model_float32.onnx"], 0.5)
    with pytest.raises(EdgeMnistError, match="release.json: the baseline has no row for model_int8.tflite"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(baseline=only_float), **SKIP))
    with pytest.raises(EdgeMnistError, match="baseline measured on mnist"):
        evaluate(read_folder(device_export, data),
                 GateConfig(Criteria(baseline=baseline_file(measured, tmp_path, ints, 0.5,
                                                                      "mnist")), **SKIP))
    perfect = baseline_file(measured, tmp_path, ints, 1.0)
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(baseline=perfect), **SKIP))
    drops = [r for r in verdict.results if r.criterion == "accuracy drop vs baseline (pp)"]
    tflm_runs = 2 if importlib.util.find_spec("tflite_micro") else 0  # the .tflite rows under TFLM too
    openvino_runs = 4 if importlib.util.find_spec("openvino") else 0  # the .tflite and .onnx rows under OpenVINO
    assert len(drops) == 8 + tflm_runs + openvino_runs and not any(r.passed for r in drops)
    assert all(r.context["images"] == 500 and r.context["interval"][0] > 5 for r in drops)  # paired: a real drop
    edited = json.loads(perfect.read_text())
    for row in edited["rows"]:
        row["accuracy"] = 0.9  # no longer the accuracy of its predictions: the point rule on the recorded figure
    perfect.write_text(json.dumps(edited))
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(baseline=perfect), **SKIP))
    drops = [r for r in verdict.results if r.criterion == "accuracy drop vs baseline (pp)"]
    assert drops and not any(r.passed or "interval" in r.context for r in drops)


def test_a_float_onnx_with_a_dead_dequantize_node_is_still_float(device_export, data):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(device_export / "model_float32.onnx")
    model.graph.initializer.extend([numpy_helper.from_array(np.ones(100_000, np.int8), "dead_q"),
                                    numpy_helper.from_array(np.array(0.1, np.float32), "dead_scale")])
    model.graph.node.append(helper.make_node("DequantizeLinear", ["dead_q", "dead_scale"], ["dead_out"]))
    onnx.save(model, device_export / "model_int8.onnx")
    rehash(device_export, "model_int8.onnx")
    with pytest.raises(EdgeMnistError, match="model_int8.onnx: the file holds a float32 model"):
        evaluate(read_folder(device_export, data), GateConfig(Criteria(), **SKIP))
