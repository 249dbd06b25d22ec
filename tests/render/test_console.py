"""render/console.py: what the commands print beyond the shared tables: the training line, the bench table and its
notes, the debug table and doctor's screen."""
from __future__ import annotations

import json

import pytest

from edge_mnist.doctor import Diagnosis, FileStatus, RuntimeStatus
from edge_mnist.folder.records import BenchResult, Manifest
from edge_mnist.quantize.layer_error import ArtifactDebug, LayerDebug
from edge_mnist.render.console import debug_table, doctor_text, print_bench, report_training
from edge_mnist.render.tables import UNTIMED_NOTE


@pytest.mark.tf
def test_the_training_line_and_the_bench_table_of_a_real_export(tiny_export, capsys):
    """The session's export: training says where and how well it trained, bench prints a row per measured run
    and how it was measured (the untimed note only when a run was not timed)."""
    history = json.loads((tiny_export / "history.json").read_text())
    report_training(history, tiny_export)
    err = capsys.readouterr().err
    assert f"trained on CPU (float32): test accuracy {history['test_accuracy']:.4f}, " in err
    assert err.rstrip().endswith(f"wrote model, history.json and training_curves.png to {tiny_export}")
    result = BenchResult.load(tiny_export / "bench.json", 10)
    print_bench(result, Manifest.load(tiny_export), tiny_export)
    out = capsys.readouterr().out
    assert all(row.file in out for row in result.rows)
    assert (UNTIMED_NOTE in out) == any(row.latency_us is None for row in result.rows)
    assert out.rstrip().endswith(f"{result.n_samples} test images, 1 thread(s), {result.timing.runs} timed runs "
                                 f"after {result.timing.warmup} warm-up; wrote {tiny_export / 'bench.json'}")


@pytest.mark.device
@pytest.mark.parametrize("history, line", [
    ({"source_model": {"path": "mine.keras", "keras_version": "3.11.3"}, "parameters": 34826, "test_accuracy": 0.9},
     "imported mine.keras (Keras 3.11.3): 34,826 parameters, test accuracy 0.9000"),
    ({"device": {"note": ""}, "chief": False, "test_accuracy": 0.875},
     "worker done (test accuracy 0.8750); the chief worker writes the model"),
])
def test_an_imported_model_and_a_worker_say_so_in_one_line(history, line, tmp_path, capsys):
    report_training(history, tmp_path)
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.device
def test_the_debug_table_puts_dashes_where_nothing_was_measured_and_fits_100_columns():
    result = ArtifactDebug("model_int8.tflite", "tflite", 0.8123, [
        LayerDebug("a_rather_long_convolution_name", ["CONV_2D"], True, 35.25, 0.3, 41.04, 28.57, 0.31, 27.4, 0.8151,
                   0.28),
        LayerDebug("max_pooling2d", ["MAX_POOL_2D"], False)])
    lines = debug_table(result).splitlines()
    assert lines[0] == "model_int8.tflite (tflite): accuracy 0.8123; worst layer first"
    assert lines[2].split() == ["a_rather_long_conv", "35.2", "41.0", "28.6", "27.4", "0.8151", "+0.28"]
    assert lines[3].split() == ["max_pooling2d", "-", "-", "-", "-", "-", "-"]
    assert max(map(len, lines)) <= 100


@pytest.mark.device
def test_doctors_screen_names_what_is_missing_and_what_runs_here():
    runtimes = [RuntimeStatus("tflite", "ai-edge-litert", "2.3.0"),
                RuntimeStatus("openvino", "openvino", None, "No module named 'openvino'", "pip install openvino")]
    files = [FileStatus("model_int8.tflite", ["tflite"], True), FileStatus("model_int8.xml", ["openvino"], False,
                                                                          "openvino: pip install openvino"),
             FileStatus("model_int8.cc", [], False), FileStatus("model_int8.h", [], False)]
    text = doctor_text(Diagnosis("Debian 12", "6.1.0", "x86_64", "3.11.7", "0.8.0", runtimes, "Xeon",
                                 {"avx512_vnni": True, "neon": False}, None, None, {"qemu-arm-static": False},
                                 "export", files))
    lines = text.splitlines()
    assert "cpu: Xeon; avx512_vnni yes, neon no" in lines and "memory: unknown" in lines
    assert lines[lines.index("runtimes:") + 2].split(None, 2) == ["openvino", "openvino",
                                                                   "does not import: No module named 'openvino'; "
                                                                   "pip install openvino"]
    assert "export: 1 of 2 model files run here" in lines
    assert "  model_int8.xml                   does not run here; openvino: pip install openvino" in lines
    assert lines[-1] == "  and 2 source files for microcontrollers and app builds (no runtime): .cc, .h"
