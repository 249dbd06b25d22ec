"""pipeline.py: the main job runs every stage on one opened folder, and `export --model` imports then exports."""
from __future__ import annotations

import json

import pytest

from edge_mnist.config import DataConfig, ExportConfig, RunConfig, TrainConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.pipeline import export_folder, run

@pytest.mark.tf
def test_run_trains_exports_benches_gates_and_reports_one_set(tiny_run):
    """The session's run (tests/conftest.py): every stage's record describes the files the manifest lists."""
    result, said = tiny_run
    out = result.report.parent
    assert [line for line in said if line.startswith("[")] == [
        "[1/5] train", "[2/5] export (ptq)", "[3/5] bench", "[4/5] check", "[5/5] report"]
    listed = {a.file: a.sha256 for a in result.manifest.artifacts.values()}
    assert all(listed[row.file] == row.sha256 for row in result.bench.rows) and len(result.bench.rows) > 5
    assert json.loads((out / "manifest.json").read_text())["keras_sha256"] == result.manifest.keras_sha256
    recorded = json.loads((out / "check.json").read_text())
    assert recorded["verdict"] == ("PASS" if result.verdict.passed else "FAIL")
    assert len(recorded["results"]) == len(result.verdict.results)
    assert result.report == out / "report.html" and "Gate:" in result.report.read_text()
    assert result.history["config"]["epochs"] == 2 and result.history["keras_sha256"] == result.manifest.keras_sha256


def test_training_options_with_an_imported_model_are_refused_before_anything_runs(tmp_path):
    model = tmp_path / "m.keras"
    with pytest.raises(EdgeMnistError, match="--model imports a trained model"):
        run(tmp_path / "out", None, RunConfig(model=model, train=TrainConfig(architecture="compact")))
    with pytest.raises(EdgeMnistError, match="m.keras: model file not found"):
        run(tmp_path / "out", None, RunConfig(model=model))
    assert not (tmp_path / "out").exists()


def test_export_of_a_folder_takes_no_data_shape(tmp_path):
    with pytest.raises(EdgeMnistError, match="--channels and --image-size go with --model"):
        export_folder(tmp_path, DataConfig(channels=3), ExportConfig())
    with pytest.raises(EdgeMnistError, match="nothing.keras: model file not found"):
        export_folder(tmp_path, DataConfig(), ExportConfig(), model=tmp_path / "nothing.keras")
