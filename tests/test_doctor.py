"""doctor.py: the device's report as a real process in whichever venv runs the tests (the runtime-only one
in the device tier), ARM cpuinfo parsed as the emulated Pis show it, a runtime that does not import."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import platform
from importlib import metadata

import pytest

from edge_mnist.doctor import cpu_info, diagnose, os_release, runtime_status
from edge_mnist.emulate.targets import CPUS, cpuinfo
from edge_mnist.registry import formats
from tests.cli.test_commands import run_cli
from tests.conftest import run_process

pytestmark = pytest.mark.device


def test_the_report_describes_this_device_and_its_runtimes():
    proc = run_process(["doctor", "--json"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    report = json.loads(proc.stdout)
    assert report["architecture"] == platform.machine() and report["os"] == os_release()
    assert report["python"].startswith(platform.python_version())
    runtimes = {r["name"]: r for r in report["runtimes"]}
    assert set(runtimes) == set(formats.RUNTIMES)
    for name in ("tflite", "onnx"):  # the device install's two runtimes
        assert runtimes[name]["version"] == metadata.version(formats.RUNTIMES[name].distribution)
    has_tf = importlib.util.find_spec("tensorflow") is not None
    assert (runtimes["keras"]["version"] is not None) == has_tf
    if not has_tf:
        assert "No module named 'tensorflow'" in runtimes["keras"]["error"] and "edge-mnist[train]" in \
            runtimes["keras"]["install"]
    assert set(report["cpu_features"]) >= {"neon", "dotprod", "avx512_vnni"}
    assert report["memory_total_mb"] > 0 and 0 < report["memory_available_mb"] <= report["memory_total_mb"]


def test_a_folder_s_files_are_sorted_into_what_runs_here(device_export):
    diagnosis = diagnose(device_export)
    files = {f.file: f for f in diagnosis.files}
    assert files["model_int8.tflite"].runs_here and files["model_int8.onnx"].runs_here
    assert files["model_float32.keras"].runs_here == (importlib.util.find_spec("tensorflow") is not None)
    assert files["model_int8_micro.c"].runtimes == [] and not files["model_int8_micro.c"].runs_here
    code, text, _ = run_cli(["doctor", "--out", str(device_export)])
    assert code == 0 and "model files run here" in text and "source files for microcontrollers and app builds" in text


@pytest.mark.parametrize("folder, message", [("nowhere", "nowhere: artifact folder does not exist"),
                                             ("empty", "empty/manifest.json")])
def test_a_missing_folder_is_exit_2(tmp_path, folder, message):
    """Through main() in this process (a refusal needs no process of its own): exit 2 and one line."""
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["doctor", "--out", str(tmp_path / folder)])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name, dotprod", [("cortex-a72", False), ("cortex-a76", True), ("cortex-a7", False)])
def test_arm_features_are_read_as_a_pi_shows_them(tmp_path, name, dotprod):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo(CPUS[name], 4))
    model, features = cpu_info(path)
    assert features["neon"] and features["dotprod"] is dotprod and not features["avx2"]
    assert model.startswith(CPUS[name].model)


def test_a_runtime_that_does_not_import_says_why_and_how_to_install(monkeypatch):
    broken = dataclasses.replace(formats.RUNTIMES["tflm"], package="edge_mnist_no_such_runtime")
    monkeypatch.setitem(formats.RUNTIMES, "tflm", broken)
    status = runtime_status("tflm")
    assert not status.available and status.error.startswith("ModuleNotFoundError: No module named")
    assert status.install == "pip install tflite-micro (x86-64 Linux)"
