"""emulate.cortex_m: the targets, the refusals as real processes, and (slow) the interpreter-free C of the
committed tiny export on emulated Cortex-M4, M7 and M33 boards, compared with TFLM byte for byte."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from edge_mnist.config import ExportConfig
from edge_mnist.emulate.targets import BOARDS, split_targets
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import Manifest
from tests.behaviour.test_exit_codes import one_line_error
from tests.conftest import run_process


@pytest.mark.device
def test_targets_split_into_pi_targets_and_boards_taking_the_old_cpu_names():
    assert split_targets(("pi4", "cortex-m4", "cortex-a76", "pi5", "cortex-m33")) == (
        ("pi4", "pi5"), ("cortex-m4", "cortex-m33"))
    assert split_targets(("pi5-trixie", "cortex-a7", "pi-32bit", "cortex-a72")) == (
        ("pi5-trixie", "pi-32bit", "pi4"), ())
    assert set(BOARDS) == {"cortex-m4", "cortex-m7", "cortex-m33"}


@pytest.mark.device
def test_a_missing_toolchain_is_exit_2_with_the_apt_line(device_export, fixture_data_dir, tmp_path):
    proc = run_process(["emulate", "--out", device_export, "--data-dir", fixture_data_dir, "--target", "cortex-m4"],
                       env={"PATH": str(tmp_path)})
    line = one_line_error(proc)
    assert "arm-none-eabi-gcc" in line and "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi " \
                                           "qemu-system-arm" in line
    assert not (device_export / "emulate.json").exists()


@pytest.mark.device
def test_a_model_whose_c_was_not_written_is_exit_2_naming_the_operator(device_export, fixture_data_dir):
    """What export records when an operator has no C (here written by hand) is what emulate says, exit 2."""
    manifest = json.loads((device_export / "manifest.json").read_text())
    gone = {"model_int8_micro.c", "model_int8_micro.h"}
    for entry in manifest["artifacts"]:
        if entry["file"] == "model_int8.tflite":
            entry["details"]["not_written:model_int8_micro.c"] = "model_int8.tflite: operator TANH has no C"
            entry["details"]["not_written:model_int8_micro.h"] = "model_int8.tflite: operator TANH has no C"
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["file"] not in gone]
    for name in gone:
        (device_export / name).unlink()
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    Manifest.load(device_export)  # the folder stays valid without them
    proc = run_process(["emulate", "--out", device_export, "--data-dir", fixture_data_dir, "--target", "cortex-m7"])
    assert "model_int8_micro.c: not in the folder: model_int8.tflite: operator TANH has no C" in one_line_error(proc)


@pytest.mark.tf
def test_export_without_c_for_an_operator_says_so_and_keeps_the_tflm_array(device_export, fixture_data_dir,
                                                                          monkeypatch):
    from edge_mnist.data import load_dataset
    from edge_mnist.export import export, micro_c

    monkeypatch.delitem(micro_c.EMITTERS, "SOFTMAX")
    said = []
    manifest = export(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir), exported=False),
                      ExportConfig(("ptq",), calib_samples=64), progress=said.append)
    assert "model_int8_micro.c: not written: model_int8.tflite: operator SOFTMAX has no interpreter-free C" \
           " (supported: " in "\n".join(said)
    assert "micro_int8" not in manifest.artifacts and "c_int8" in manifest.artifacts
    assert not (device_export / "model_int8_micro.c").exists() and (device_export / "model_int8.cc").is_file()
    assert "SOFTMAX" in manifest.artifacts["tflite_int8"].details["not_written:model_int8_micro.c"]


def _rows(folder):
    """(target, file) -> row of DIR/emulate.json."""
    return {(r["cpu"], r["file"]): r for r in json.loads((folder / "emulate.json").read_text())["rows"]}


@pytest.mark.slow
def test_the_c_runs_on_emulated_cortex_m_boards_with_tflm_s_bytes(device_export, fixture_data_dir):
    """100 images on the M4, then M7 and M33 (the M4's rows kept), then the M4 again: the same
    instruction counts (deterministic under -icount)."""
    if os.system("command -v arm-none-eabi-gcc qemu-system-arm > /dev/null") != 0:
        pytest.fail("the Arm toolchain is not installed (.ci/run installs it)")
    args = ["emulate", "--out", device_export, "--data-dir", fixture_data_dir, "--micro-images", "100"]
    first = run_process([*args, "--target", "cortex-m4"], timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "PASS: 2/2" in first.stdout and "Cortex-M4F (mps2-an386)" in first.stdout
    m4 = _rows(device_export)
    second = run_process([*args, "--target", "cortex-m7,cortex-m33"], timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = _rows(device_export)
    files = ("model_int8_micro.c", "model_qat_int8_micro.c")
    assert set(rows) == {(b, f) for b in ("cortex-m4", "cortex-m7", "cortex-m33") for f in files}
    for row in rows.values():
        assert row["passed"] and row["reference"] == "tflm" and row["n_samples"] == 100
        assert row["outputs_differ"] == 0 and row["max_abs_diff"] == 0 and row["litert_agreement"] >= 0.99, row
        measured = row["measured"]
        assert measured["flash_bytes"] > measured["rodata_bytes"] > 6000  # the weights are in flash
        assert 0 < measured["stack_bytes"] < 4096 and measured["ram_bytes"] > measured["bss_bytes"]
        assert 100_000 < measured["instructions"] < 5_000_000
        assert measured["instructions_no_dsp"] > 0 and measured["no_dsp_same_outputs"]
    third = run_process([*args, "--target", "cortex-m4"], timeout=900)
    assert third.returncode == 0, third.stderr[-2000:]
    again = _rows(device_export)
    for key, row in m4.items():
        assert again[key]["measured"]["instructions"] == row["measured"]["instructions"]
    assert set(again) == set(rows)


@pytest.mark.device
@pytest.mark.parametrize("tflm, litert, differ, same_no_dsp, passed", [
    (1.0, 0.99, 0, True, True), (1.0, 0.988, 0, True, False), (0.988, 1.0, 0, True, False),
    (1.0, 1.0, 1, True, False),  # one image's bytes differ from TFLM's, its top-1 the same
    (1.0, 1.0, 0, False, False),  # the build without DSP instructions answered differently
])
def test_a_board_row_needs_tflm_s_bytes_and_both_top1s(tflm, litert, differ, same_no_dsp, passed):
    """A Cortex-M row fails (emulate exits 1) unless every output is TFLM's, byte for byte, the DSP and plain
    builds agree, and the top-1 agreement with TFLM and with LiteRT reaches --parity."""
    from edge_mnist.emulate import Row

    row = Row("Cortex-M4F (mps2-an386)", "cortex-m4", "micro_int8", "model_int8_micro.c", "micro-c", "0" * 64,
              tflm, 500, 0, [], differ, float(differ), float(differ), 1.0, 0.0, 0.99, reference="tflm",
              litert_agreement=litert, measured={"no_dsp_same_outputs": same_no_dsp})
    assert row.passed is passed


@pytest.mark.slow
@pytest.mark.tf
def test_a_colour_32x32x3_export_runs_on_the_emulated_m4_with_tflm_s_bytes(tinted_run, tmp_path):
    """The session's colour export (conftest.tinted_run): 3,072-byte inputs, the test program's buffers and the
    C's arena sized from the task and the model, 30 images on the mps2-an386 board equal to TFLM on the host,
    at the default --parity."""
    if os.system("command -v arm-none-eabi-gcc qemu-system-arm > /dev/null") != 0:
        pytest.fail("the Arm toolchain is not installed (.ci/run installs it)")
    folder = shutil.copytree(tinted_run[3], tmp_path / "out")
    done = run_process(["emulate", "--out", folder, "--target", "cortex-m4", "--micro-images", "30"],
                       timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = _rows(folder)
    assert set(rows) == {("cortex-m4", f) for f in ("model_int8_micro.c", "model_qat_int8_micro.c")}
    for row in rows.values():
        assert row["passed"] and row["reference"] == "tflm" and row["n_samples"] == 30, row
        assert row["outputs_differ"] == 0 and row["max_abs_diff"] == 0, row
        assert row["measured"]["ram_bytes"] > 2 * 3072  # the program's input buffer and the C's activations
