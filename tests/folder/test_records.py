"""records.py: manifest.json and bench.json round-trip, and bad fields are one-line errors naming file and field."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge_mnist.config import BenchConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.folder.layout import HISTORY_FILE
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import BenchResult, History, Manifest

pytestmark = pytest.mark.device


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
