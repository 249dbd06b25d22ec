"""Exit codes of the CLI on bad input, as real processes: 2 with one line naming the file, never a traceback (the
two that run a whole gate go through main() in this process).

Device tier: the committed tiny export and data; nothing here needs TensorFlow.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.cli.test_commands import NO_TFLM, run_cli
from tests.conftest import FIXTURES, run_process

pytestmark = pytest.mark.device

NO_TF_SOURCE = ["--skip-qat-source"]


def one_line_error(proc, code: int = 2) -> str:
    """Assert the process failed with `code` and a single edge-mnist line (no traceback); return that line."""
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-mnist:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_check_refuses_to_write_a_report_over_the_folders_own_files(device_export, fixture_data_dir):
    before = (device_export / "manifest.json").read_bytes()
    proc = run_process(["check", "--out", device_export, "--data-dir", fixture_data_dir, *NO_TF_SOURCE,
                        "--json", device_export / "manifest.json"])
    assert "manifest.json: is one of the artifact folder's own files" in one_line_error(proc)
    assert (device_export / "manifest.json").read_bytes() == before


def test_check_creates_the_report_folder_and_says_so(device_export, fixture_data_dir, tmp_path):
    """Through main() in this process: a whole gate run needs no process of its own to show this."""
    report = tmp_path / "reports" / "ci" / "check.json"
    code, _, err = run_cli(["check", "--out", str(device_export), "--data-dir", str(fixture_data_dir), *NO_TF_SOURCE,
                            *NO_TFLM, "--json", str(report)])
    assert code == 0, err
    assert f"created folder {report.parent}" in err
    assert json.loads(report.read_text())["verdict"] == "PASS"


@pytest.mark.parametrize("option, value", [("--tolerance", "nan"), ("--tolerance", "-0.5"), ("--parity", "-1"),
                                           ("--max-disagreement", "inf"), ("--min-accuracy", "1.5")])
def test_bad_limits_are_refused_before_any_work(tmp_path, option, value):
    proc = run_process(["check", "--out", tmp_path / "does-not-matter", option, value])
    assert "must be a number in" in one_line_error(proc)


@pytest.fixture
def readonly_copy(tmp_path):
    """A copy of the tiny export this process cannot write: immutable (chattr +i) as root, mode 0555 otherwise."""
    import subprocess

    out = shutil.copytree(FIXTURES / "device_export", tmp_path / "export")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", out], capture_output=True).returncode != 0:
            pytest.skip("root can write anywhere and chattr +i is not available here")
        yield out
        subprocess.run(["chattr", "-i", out], check=True)
    else:
        os.chmod(out, 0o555)
        yield out
        os.chmod(out, 0o755)


def test_a_read_only_folder_is_reported_before_the_run(readonly_copy, fixture_data_dir):
    proc = run_process(["bench", "--out", readonly_copy, "--data-dir", fixture_data_dir, "--runs", "5"])
    assert "export: folder is not writable by this user" in one_line_error(proc)
    assert "measuring" not in proc.stderr


def test_a_tampered_artifact_is_refused_by_bench_check_and_predict(device_export, fixture_data_dir, tmp_path):
    target = device_export / "model_int8.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    image = tmp_path / "x.npy"
    np.save(image, np.eye(28))
    for args in (["bench", "--data-dir", fixture_data_dir], ["check", "--data-dir", fixture_data_dir, *NO_TF_SOURCE],
                 ["predict", image]):
        proc = run_process([args[0], "--out", device_export, *args[1:]])
        assert "model_int8.tflite: sha256 does not match manifest.json" in one_line_error(proc)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("task"), "manifest.json: task: expected dict, got missing"),
    (lambda m: m["artifacts"][0].update(size_bytes="big"), "artifacts[0].size_bytes"),
    (lambda m: m.update(qat={"keras_file": "../../etc/passwd"}), "qat.keras_file: expected 'model_qat.h5'"),
])
def test_a_malformed_manifest_is_exit_2_naming_the_field(device_export, fixture_data_dir, edit, message):
    manifest = json.loads((device_export / "manifest.json").read_text())
    edit(manifest)
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    proc = run_process(["check", "--out", device_export, "--data-dir", fixture_data_dir, *NO_TF_SOURCE])
    assert message in one_line_error(proc)


def test_deeply_nested_manifest_is_exit_2(device_export, fixture_data_dir):
    (device_export / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    proc = run_process(["check", "--out", device_export, "--data-dir", fixture_data_dir])
    assert "manifest.json" in one_line_error(proc)


def mutations(data: bytes, rng: np.random.Generator, n: int):
    """Byte flips, zeroed runs, truncations and appended junk of a file's bytes."""
    for i in range(n):
        buf = bytearray(data)
        kind = i % 4
        if kind == 0:
            for pos in rng.integers(0, len(buf), 8):
                buf[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:
            start = int(rng.integers(0, len(buf) - 64))
            buf[start:start + 64] = bytes(64)
        elif kind == 2:
            buf = buf[:int(rng.integers(1, len(buf)))]
        else:
            buf += rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        yield bytes(buf)


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_int8.onnx", "model_qat_int8.onnx"])
def test_fuzzed_model_files_never_crash_predict(device_export, tmp_path, name):
    image = tmp_path / "x.npy"
    np.save(image, np.eye(28))
    original = (device_export / name).read_bytes()
    for i, mutated in enumerate(mutations(original, np.random.default_rng(len(name)), 12)):
        model = tmp_path / f"m{i}{os.path.splitext(name)[1]}"
        model.write_bytes(mutated)
        proc = run_process(["predict", "--out", device_export, "--model", model, image])
        assert proc.returncode in (0, 2), (i, proc.returncode, proc.stderr[-1500:])
        assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr, (i, proc.stderr[-1500:])


def test_fuzzed_images_never_crash_predict(device_export, tmp_path):
    sources = []
    for suffix, save in ((".png", lambda p: Image.fromarray((np.eye(28) * 255).astype(np.uint8)).save(p)),
                         (".jpg", lambda p: Image.fromarray((np.eye(28) * 255).astype(np.uint8)).save(p)),
                         (".npy", lambda p: np.save(p, np.eye(28)))):
        path = tmp_path / f"src{suffix}"
        save(path)
        sources.append(path)
    files = []
    for path in sources:
        for i, mutated in enumerate(mutations(path.read_bytes(), np.random.default_rng(7), 8)):
            files.append(tmp_path / f"f{i}{path.name}")
            files[-1].write_bytes(mutated)
    proc = run_process(["predict", "--out", device_export, "--json", *files])
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert len(proc.stdout.strip().splitlines()) == len(files)  # every file gets its line


def test_a_failed_gate_stays_exit_1_whatever_the_step_summary_path(device_export, fixture_data_dir, tmp_path,
                                                                      monkeypatch):
    """Through main() in this process (the exit code is main's): a summary path whose folder is missing is made."""
    summary = tmp_path / "missing" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, err = run_cli(["check", "--out", str(device_export), "--data-dir", str(fixture_data_dir), *NO_TF_SOURCE,
                            *NO_TFLM, "--max-disagreement", "0"])
    errors = [line for line in err.splitlines() if line.startswith("edge-mnist:")]
    assert code == 1 and len(errors) == 1 and "check failed" in errors[0] and "Traceback" not in err, err
    assert "edge-mnist check: FAIL" in summary.read_text()
