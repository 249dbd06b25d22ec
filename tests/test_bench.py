"""bench.py: every runnable artifact measured under each of its runtimes, recorded in bench.json."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from edge_mnist.bench import bench, measure
from edge_mnist.config import BenchConfig
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.opener import read_folder
from edge_mnist.registry.formats import FORMATS, chosen_runs
from edge_mnist.runtime import open_model

pytestmark = pytest.mark.device

QUICK = BenchConfig(runs=3, warmup=0, throughput_seconds=0, skip_runtimes=("tflm", "openvino"))


@pytest.fixture
def folder(device_export, fixture_data_dir):
    """The committed export, opened with its data."""
    return read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir))


def test_every_runnable_file_gets_a_row_and_what_was_left_out_is_said(folder):
    (folder.path / "report.html").write_text("old timings")
    (folder.path / "latency_vs_size.png").write_bytes(b"old")
    result = bench(folder, QUICK, progress=lambda *_: None)
    listed = [f for f in FORMATS if f.key in folder.exported.artifacts]
    expected = {run.key for f in listed for run in chosen_runs(f, QUICK.skip_runtimes)}
    without_tf = set() if importlib.util.find_spec("tensorflow") else {"keras_float32"}  # skipped, said so
    assert {row.key for row in result.rows} == expected - without_tf
    reference = result.reference()
    for row in result.rows:
        assert row.sha256 == folder.exported.artifacts[row.fmt.key].sha256
        assert len(row.predictions) == 500 and row.latency_us["p50"] > 0
        assert row.agreement == pytest.approx(float((row.predictions == reference.predictions).mean()))
    written = json.loads((folder.path / "bench.json").read_text())
    assert {s["reason"] for s in written["skipped"]} >= {"--skip-runtime tflm", "--skip-runtime openvino"}
    assert written["timing"] == {"runs": 3, "warmup": 0, "throughput_seconds": 0}
    assert not (folder.path / "report.html").exists() and not (folder.path / "latency_vs_size.png").exists()


def test_measure_untimed_gives_accuracy_only(device_export, fixture_data_dir):
    data = load_dataset("fashion-mnist", fixture_data_dir)
    runner = open_model(device_export / "model_int8.tflite")
    images, labels = to_float(data.x_test[:40]), data.y_test[:40].astype(np.int64)
    figures = measure(runner, images, labels, runs=2, warmup=0, timed=False)
    assert figures["latency_us"] is None and figures["throughput_ips"] is None
    assert figures["accuracy"] == float((figures["predictions"] == labels).mean())
    timed = measure(runner, images, labels, runs=2, warmup=0, throughput_seconds=0)
    assert set(timed["latency_us"]) >= {"p50", "p90", "p99"} and timed["throughput_ips"] > 0
