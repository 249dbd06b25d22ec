"""records.py: manifest.json and bench.json round-trip, and bad fields are one-line errors naming file and field."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.config import BenchConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.machine import Machine
from edge_mnist.folder.layout import HISTORY_FILE
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import BenchResult, History, Manifest, Skipped, Timing

pytestmark = pytest.mark.device

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BENCH_RECORD = FIXTURES / "records" / "bench.json"  # device_export benched (make_fixtures.py records)


def test_committed_manifest_round_trips(device_export):
    manifest = Manifest.load(device_export)
    assert manifest.task.dataset == "fashion-mnist" and manifest.task.num_classes == 10
    assert manifest.qat is not None and manifest.qat.predictions.dtype == np.int64
    manifest.save(device_export)
    again = Manifest.load(device_export)
    assert again.to_json() == manifest.to_json()


def edit_manifest(folder, edit) -> None:
    """Apply `edit` to the raw manifest JSON and write it back."""
    path = folder / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("keras_sha256"), "keras_sha256: expected str, got missing"),
    (lambda m: m.update(float_accuracy="high"), "float_accuracy: expected int or float, got str"),
    (lambda m: m.update(float_accuracy=float("nan")), "float_accuracy: nan is out of range"),
    (lambda m: m.update(schema=1), "schema 1 is not 2"),
    (lambda m: m["task"].update(input_shape=[28, 28]), "task.input_shape: expected three positive integers"),
    (lambda m: m["artifacts"][3].update(key="tflite_fp16"), "artifacts\\[3\\].key: unknown artifact format"),
    (lambda m: m["artifacts"][3].update(file="other.tflite"), "artifacts\\[3\\].file: 'other.tflite' is not"),
    (lambda m: m["artifacts"][3]["input"].pop("scale"), "artifacts\\[3\\].input.scale: expected"),
    (lambda m: m["qat"].update(predictions=[0, 1, 12]), "qat.predictions: expected a non-empty list of class ind"),
    (lambda m: m["qat"].update(predictions=[10 ** 20]), "qat.predictions: expected a non-empty list of class ind"),
    (lambda m: m.update(float_accuracy=10 ** 400), "float_accuracy: number too large"),
    (lambda m: m["task"].update(fit_box=100), "task.fit_box: 100 does not fit the 28x28 frame"),
    (lambda m: m["qat"].update(predictions="0123"), "qat.predictions: expected list"),
])
def test_bad_manifest_fields_name_file_and_field(device_export, edit, message):
    edit_manifest(device_export, edit)
    with pytest.raises(EdgeMnistError, match=f"manifest.json: {message}"):
        Manifest.load(device_export)


def test_manifest_with_a_5000_digit_number_is_refused(device_export):
    text = (device_export / "manifest.json").read_text()
    (device_export / "manifest.json").write_text(text.replace('"float_accuracy": ', '"float_accuracy": ' + "9" * 5000 + ", \"x\": ", 1))
    with pytest.raises(EdgeMnistError, match="manifest.json: manifest .* is not valid JSON"):
        Manifest.load(device_export)


def test_manifest_that_is_not_json_or_not_an_object(device_export):
    (device_export / "manifest.json").write_text("[]")
    with pytest.raises(EdgeMnistError, match="manifest.json: expected dict, got list"):
        Manifest.load(device_export)
    (device_export / "manifest.json").write_text("[" * 100000)
    with pytest.raises(EdgeMnistError, match="manifest.json: manifest .* is not valid JSON"):
        Manifest.load(device_export)


def test_bench_result_predictions_must_match_labels(device_export, fixture_data_dir):
    from edge_mnist.bench import bench
    from edge_mnist.data import load_dataset

    measured = bench(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                     BenchConfig(runs=3, warmup=0, throughput_seconds=0), progress=lambda *_: None)
    result = BenchResult.load(device_export / "bench.json", 10)
    assert result.reference().key == measured.reference().key and result.n_samples == 500
    raw = json.loads((device_export / "bench.json").read_text())
    raw["rows"][0]["predictions"] = raw["labels"][:-1]
    (device_export / "bench.json").write_text(json.dumps(raw))
    with pytest.raises(EdgeMnistError, match=f"{raw['rows'][0]['file']} has 499 predictions for 500 labels"):
        BenchResult.load(device_export / "bench.json", 10)

def test_bench_rows_without_image_counts_read_as_the_whole_test_set(device_export, fixture_data_dir):
    """bench.json rows written before subsets (no n_samples, no test_indices) still read; listed indices must
    be test images and match the predictions."""
    from edge_mnist.bench import bench
    from edge_mnist.data import load_dataset

    bench(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
          BenchConfig(runs=3, warmup=0, throughput_seconds=0, skip_runtimes=("tflm",)), progress=lambda *_: None)
    path = device_export / "bench.json"
    raw = json.loads(path.read_text())
    for row in raw["rows"]:
        del row["n_samples"], row["test_indices"]
    path.write_text(json.dumps(raw))
    assert all(row.indices is None and row.n_samples == 500 for row in BenchResult.load(path, 10).rows)
    raw["rows"][0].update(test_indices=[3, 500], predictions=[0, 0])
    path.write_text(json.dumps(raw))
    with pytest.raises(EdgeMnistError, match="lists test image 500, beyond the 500 labels"):
        BenchResult.load(path, 10)
    raw["rows"][0].update(test_indices=[3, 2])
    path.write_text(json.dumps(raw))
    with pytest.raises(EdgeMnistError, match=r"rows\[0\].test_indices: expected null or a non-empty ascending"):
        BenchResult.load(path, 10)


def test_history_is_typed_and_strict(tmp_path):
    trained = {"dataset": "fashion-mnist", "config": {"architecture": "compact"}, "parameters": 1234,
               "test_accuracy": 0.9, "keras_sha256": "ab" * 32, "history": {"loss": [0.5]}}
    History.write(tmp_path / HISTORY_FILE, trained)
    history = History.load(tmp_path)
    assert (history.dataset, history.model_name, history.parameters, history.metrics) == (
        "fashion-mnist", "compact", 1234, {"loss": [0.5]})
    imported = {**trained, "source_model": {"path": "/models/mine.keras"}, "history": {}}
    assert History.from_json(imported, "h").model_name == "imported mine.keras"
    with pytest.raises(EdgeMnistError, match="h: test_accuracy: 1.5 is out of range"):
        History.from_json({**trained, "test_accuracy": 1.5}, "h")
    with pytest.raises(EdgeMnistError, match="history.json: dataset: expected str, got int"):
        History.write(tmp_path / "history.json", {**trained, "dataset": 3})
    assert History.load(tmp_path).dataset == "fashion-mnist"  # the refused record was not written
    assert History.load(tmp_path / "empty") is None


def as_written(record) -> str:
    """A record's JSON text as atomic_write_json writes it."""
    return json.dumps(record.to_json(), indent=2) + "\n"


def test_committed_manifest_bench_and_history_are_written_back_byte_for_byte():
    """Same keys, same order, same values: a record read and written again is the file it was read from."""
    manifest = FIXTURES / "device_export" / "manifest.json"
    assert as_written(Manifest.load(manifest.parent)) == manifest.read_text()
    assert as_written(BenchResult.load(BENCH_RECORD, 10)) == BENCH_RECORD.read_text()
    history = FIXTURES / "device_export" / "history.json"
    assert History.load(history.parent).to_json() == json.loads(history.read_text())


def test_the_key_order_of_manifest_and_bench_records_is_pinned():
    manifest = Manifest.load(FIXTURES / "device_export").to_json()
    assert list(manifest) == ["schema", "created", "task", "dataset_fingerprint", "keras_sha256", "float_accuracy",
                              "versions", "qat", "artifacts"]
    assert list(manifest["artifacts"][3]) == ["key", "file", "runtime", "precision", "method", "notes", "sha256",
                                              "size_bytes", "input", "details"]
    assert list(manifest["artifacts"][3]["input"]) == ["shape", "dtype", "scale", "zero_point"]
    assert list(manifest["qat"]) == ["epochs", "keras_file", "keras_sha256", "accuracy", "predictions", "history"]
    bench = BenchResult.load(BENCH_RECORD, 10).to_json()
    assert list(bench) == ["schema", "created", "dataset", "dataset_fingerprint", "n_samples", "threads", "timing",
                           "machine", "reference", "labels", "rows", "skipped"]
    assert list(bench["rows"][4]) == ["key", "file", "runtime", "precision", "method", "notes", "sha256",
                                      "size_bytes", "accuracy", "n_samples", "agreement", "source_agreement",
                                      "latency_us", "throughput_ips", "predictions", "test_indices"]
    assert (list(bench["timing"]), list(bench["machine"]), list(bench["skipped"][0])) == (
        ["runs", "warmup", "throughput_seconds"], ["cpu", "cores", "machine", "system", "flags"], ["file", "reason"])


def test_a_manifest_written_with_user_data_places_it_after_the_fingerprint(device_export):
    raw = json.loads((device_export / "manifest.json").read_text())
    data = {"path": "/data/mine", "fingerprint": "f" * 64, "channels": 3, "image_size": [32, 32]}
    edit_manifest(device_export, lambda m: m.update(user_data=data))
    written = Manifest.load(device_export).to_json()
    assert list(written)[3:6] == ["dataset_fingerprint", "user_data", "keras_sha256"]
    assert written["user_data"] == data and {**written, "user_data": None} != raw


def test_bench_json_reads_as_typed_records():
    result = BenchResult.load(BENCH_RECORD, 10)
    assert isinstance(result.machine, Machine) and result.machine.cores >= 1 and "avx2" in result.machine.flags
    assert result.timing == Timing(3, 1, 0)
    assert result.skipped[0] == Skipped("model_int8.tflite@openvino", "--skip-runtime openvino")
    tflm = result.row("tflite_int8@tflm")
    assert tflm.latency_us is None and tflm.n_samples == 50 and tflm.indices[:3].tolist() == [0, 1, 2]
    assert result.reference().key == "keras_float32" and result.row("tflite_int8").latency_us["p50"] > 0


def edit_bench(tmp_path, edit) -> Path:
    """A copy of the committed bench.json changed by `edit`."""
    raw = json.loads(BENCH_RECORD.read_text())
    edit(raw)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.update(schema=3), "schema 3 is not 2"),
    (lambda b: b.update(threads=0), "threads: 0 is below 1"),
    (lambda b: b["timing"].pop("runs"), "timing.runs: expected int, got missing"),
    (lambda b: b["timing"].update(throughput_seconds=-1), "timing.throughput_seconds: -1.0 is out of range"),
    (lambda b: b.update(machine="x86"), "machine: expected dict, got str"),
    (lambda b: b["machine"].update(cores="two"), "machine.cores: expected int, got str"),
    (lambda b: b["machine"].update(flags="avx avx2"), "machine.flags: expected list, got str"),
    (lambda b: b["skipped"][1].pop("reason"), r"skipped\[1\].reason: expected str, got missing"),
    (lambda b: b.update(skipped=None), "skipped: expected list, got missing"),
    (lambda b: b.update(labels=[0, 10]), "labels: expected a non-empty list of class indices 0..9"),
    (lambda b: b["rows"][2].update(key="onnx_fp16"), r"rows\[2\].key: unknown artifact format 'onnx_fp16'"),
    (lambda b: b["rows"][2].update(file="model.onnx"), r"rows\[2\].file: 'model.onnx' is not 'model_float32.onnx'"),
    (lambda b: b["rows"][2].update(sha256="G" * 64), r"rows\[2\].sha256: not a sha256 hex digest"),
    (lambda b: b["rows"][2].update(size_bytes=0), r"rows\[2\].size_bytes: 0 is below 1"),
    (lambda b: b["rows"][2].pop("agreement"), r"rows\[2\].agreement: missing \(null when not measured\)"),
    (lambda b: b["rows"][2].update(source_agreement=1.5), r"rows\[2\].source_agreement: 1.5 is out of range"),
    (lambda b: b["rows"][2]["latency_us"].pop("p99"), r"rows\[2\].latency_us.p99: expected int or float, got missing"),
    (lambda b: b["rows"][2]["latency_us"].update(mean="fast"), r"rows\[2\].latency_us.mean: expected int or float"),
    (lambda b: b["rows"][2].update(latency_us=None), r"rows\[2\].latency_us: expected dict, got missing"),
    (lambda b: b["rows"][2].update(throughput_ips=-5), r"rows\[2\].throughput_ips: -5.0 is out of range"),
    (lambda b: b["rows"][2].update(accuracy=None), r"rows\[2\].accuracy: expected int or float, got missing"),
])
def test_bad_bench_fields_name_file_and_field(tmp_path, edit, message):
    with pytest.raises(EdgeMnistError, match=f"bench.json: {message}") as caught:
        BenchResult.load(edit_bench(tmp_path, edit), 10)
    assert "\n" not in str(caught.value)


def test_an_untimed_row_may_leave_latency_and_throughput_null(tmp_path):
    def untimed(raw):
        row = next(r for r in raw["rows"] if r["runtime"] == "tflm")
        row.pop("latency_us"), row.pop("throughput_ips")

    assert BenchResult.load(edit_bench(tmp_path, untimed), 10).row("tflite_int8@tflm").throughput_ips is None


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["artifacts"][3].update(sha256="ab" * 31), r"artifacts\[3\].sha256: not a sha256 hex digest"),
    (lambda m: m["artifacts"][3].update(details=[]), r"artifacts\[3\].details: expected dict, got list"),
    (lambda m: m["artifacts"][3].update(parts={"web/x.js": "ab" * 32}), r"artifacts\[3\].parts: 'web/x.js' is not "
                                                                        r"a file of \./"),
    (lambda m: m["artifacts"][3].update(parts={"x.js": "nope"}), r"artifacts\[3\].parts.x.js: not a sha256"),
    (lambda m: m["artifacts"][3]["input"].update(dtype="int4"),
     r"artifacts\[3\].input.dtype: 'int4' is not float32, int8 or uint8"),
    (lambda m: m["artifacts"][3]["input"].update(shape=[-1, "28"]), r"artifacts\[3\].input.shape: expected int"),
    (lambda m: m["qat"].update(keras_file="../x.h5", epochs=None), "qat.keras_file: expected 'model_qat.h5'"),
    (lambda m: m["qat"].update(epochs=0), "qat.epochs: 0 is below 1"),
    (lambda m: m.update(versions=None), "versions: expected dict, got missing"),
    (lambda m: m.pop("created"), "created: expected str, got missing"),
    (lambda m: m.update(user_data={"channels": 2}), "user_data.channels: expected 1 or 3, got 2"),
])
def test_more_bad_manifest_fields_name_file_and_field(device_export, edit, message):
    edit_manifest(device_export, edit)
    with pytest.raises(EdgeMnistError, match=f"manifest.json: {message}"):
        Manifest.load(device_export)


def test_history_keeps_the_fields_it_does_not_type_as_written(tmp_path):
    trained = {"config": {"architecture": "compact", "epochs": 3}, "dataset": "fashion-mnist", "device": "CPU",
               "parameters": 10, "test_accuracy": 0.5, "history": {"loss": [0.4]}, "keras_sha256": "cd" * 32}
    history = History.from_json(trained, "h")
    assert history.architecture == "compact" and history.extra == {"config": trained["config"], "device": "CPU"}
    assert history.to_json() == trained
    History.write(tmp_path / HISTORY_FILE, trained)
    assert list(json.loads((tmp_path / HISTORY_FILE).read_text())) == list(trained)  # the producer's order
    with pytest.raises(EdgeMnistError, match="h: config.architecture: expected str, got int"):
        History.from_json({**trained, "config": {"architecture": 3}}, "h")
    with pytest.raises(EdgeMnistError, match="h: config: expected dict, got list"):
        History.from_json({**trained, "config": []}, "h")
    assert History.from_json({"dataset": "mnist"}, "h").architecture == "unknown"
