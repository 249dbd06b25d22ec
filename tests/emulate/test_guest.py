"""emulate/guest.py on the host, without root or qemu: the worker the chroot runs (predictions per artifact, its
report and progress, its one-line failure), the progress the host reads back, and the guest's command line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.emulate.guest import CHUNK, GUEST_DIR, PROGRESS_FILE, Guest, predict_all, worker, worker_progress
from edge_mnist.emulate.targets import BOOKWORM_ARM64, PI_TARGETS
from edge_mnist.folder.records import Manifest
from edge_mnist.runtime import open_model

pytestmark = pytest.mark.device

KEYS = ["tflite_int8", "onnx_qat_int8"]


def test_predict_all_gives_each_artifacts_probabilities_and_reports_every_chunk(device_export, test_images):
    images = test_images[0][:2 * CHUNK + 50]
    states = []
    outputs, seconds, scales = predict_all(device_export, Manifest.load(device_export), KEYS, images, 1, states.append)
    for key, file in zip(KEYS, ["model_int8.tflite", "model_qat_int8.onnx"]):
        runner = open_model(device_export / file)
        np.testing.assert_array_equal(outputs[key], runner.predict(images))
        assert scales[key] == pytest.approx(runner.output_scale) and seconds[key] > 0
    assert [(s["file"], s["done"], s["index"]) for s in states] == [
        ("model_int8.tflite", 100, 0), ("model_int8.tflite", 200, 0), ("model_int8.tflite", 250, 0),
        ("model_qat_int8.onnx", 100, 1), ("model_qat_int8.onnx", 200, 1), ("model_qat_int8.onnx", 250, 1)]
    assert {(s["total"], s["files"]) for s in states} == {(250, 2)}


def work_folder(root: Path, export: Path, images: np.ndarray) -> Path:
    """The chroot's /opt/edge-mnist as the host lays it out: out/ (the folder) beside work/ (keys and images)."""
    shutil.copytree(export, root / "out")
    work = root / "work"
    work.mkdir()
    (work / "keys.json").write_text(json.dumps(KEYS))
    np.save(work / "images.npy", images)
    return work


def test_the_worker_writes_outputs_report_and_progress_for_the_host(device_export, test_images, tmp_path):
    images = test_images[0][:120]
    work = work_folder(tmp_path, device_export, images)
    worker(str(work), 1)
    with np.load(work / "outputs.npz") as outputs:
        assert sorted(outputs) == sorted(KEYS)
        np.testing.assert_array_equal(outputs["tflite_int8"], open_model(device_export / "model_int8.tflite")
                                      .predict(images))
    report = json.loads((work / "report.json").read_text())
    assert set(report["seconds"]) == set(KEYS) and report["machine"]["machine"]
    assert {f["file"] for f in report["doctor"]["files"]} >= {"model_int8.tflite", "model_qat_int8.onnx"}
    assert json.loads((work / PROGRESS_FILE).read_text())["done"] == 120


def test_a_tampered_artifact_stops_the_worker_in_one_line_exit_2(device_export, test_images, tmp_path, capsys):
    work = work_folder(tmp_path, device_export, test_images[0][:10])
    (tmp_path / "out" / "model_qat_int8.onnx").write_bytes(b"changed")
    with pytest.raises(SystemExit) as info:
        worker(str(work), 1)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("edge-mnist: error: ") and "model_qat_int8.onnx: 7 bytes, manifest.json says" in err
    assert not (work / "outputs.npz").exists()


def test_the_host_reads_the_workers_progress_only_when_it_is_whole(tmp_path):
    g = Guest(tmp_path, tmp_path / "run", tmp_path / "run" / "root", tmp_path / "site", BOOKWORM_ARM64)
    (g.run / "work").mkdir(parents=True)
    assert worker_progress(g) is None
    progress = g.run / "work" / PROGRESS_FILE
    progress.write_text('{"file": "model_int8.tflite", "done": 100')
    assert worker_progress(g) is None
    state = {"file": "model_int8.tflite", "done": 100, "total": 500, "index": 0, "files": 2, "seconds": 0.5}
    progress.write_text(json.dumps({k: v for k, v in state.items() if k != "seconds"}))
    assert worker_progress(g) is None
    progress.write_text(json.dumps(state))
    assert worker_progress(g) == state


def test_the_guest_command_pins_the_core_and_mounts_the_folder_read_only(tmp_path, device_export):
    g = Guest(tmp_path, tmp_path / "run", tmp_path / "run" / "root", tmp_path / "site", BOOKWORM_ARM64)
    g.run.mkdir()
    target = PI_TARGETS["pi5"]
    command = g.command(target, device_export, "print('hello')")
    assert command[:4] == ["unshare", "--mount", "--propagation", "private"]
    script = command[-1]
    assert f"mount --bind {g.run / 'cpuinfo-pi5'} {g.root}/proc/cpuinfo" in script
    assert f"mount -o remount,bind,ro {g.root}{GUEST_DIR}/out" in script and "QEMU_CPU=cortex-a76" in script
    assert "Raspberry Pi 5 Model B (emulated)" in (g.run / "cpuinfo-pi5").read_text()
