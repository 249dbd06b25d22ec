"""An export killed at any write boundary (SIGKILL, SIGINT) or stopped by a full disk leaves a complete set.

Real child processes, real signals: EDGE_MNIST_FAULT_AT makes the process signal itself at a
named boundary (files.boundary), and RLIMIT_FSIZE makes writes fail as on a full disk.
Afterwards bench and check must pass on the folder as it is.
"""
from __future__ import annotations

import hashlib
import resource
import signal

import pytest

from edge_mnist.bench import bench
from edge_mnist.check import evaluate
from edge_mnist.config import BenchConfig, GateConfig
from edge_mnist.core.lock import LOCK_FILE
from edge_mnist.data import load_dataset
from edge_mnist.folder.opener import read_folder
from edge_mnist.gate import Criteria
from tests.conftest import run_process

pytestmark = [pytest.mark.tf, pytest.mark.slow]

LOOSE = Criteria(tolerance_pp=10, max_disagreement_pct=20, max_class_drop_pp=40, parity=0.9)


def digest(folder) -> dict[str, str]:
    """sha256 of every file in a folder, by name (the writers' lock file aside: it is not part of the set)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != LOCK_FILE}


def export_args(out, data_dir):
    """A quick PTQ+QAT export of the committed tiny model on the committed data."""
    return ["export", "--int8", "--method", "both", "--out", out, "--data-dir", data_dir, "--calib-samples", "32",
            "--batch-size", "32"]


def assert_complete_and_passing(out, data_dir):
    """bench and check both pass on the folder as it is: whatever set it holds is complete."""
    data = load_dataset("fashion-mnist", data_dir)
    bench(read_folder(out, data), BenchConfig(runs=3, warmup=0, throughput_seconds=0), progress=lambda *_: None)
    assert evaluate(read_folder(out, data), GateConfig(LOOSE)).passed


@pytest.mark.parametrize("where", ["wrote model_qat.h5", "wrote model_int8.tflite", "swap"])  # manifest.json is
# written last in the stage, just before the swap: "swap" covers that moment
def test_sigkill_before_the_swap_leaves_the_old_set_untouched(device_export, fixture_data_dir, where):
    before = digest(device_export)
    proc = run_process(export_args(device_export, fixture_data_dir), env={"EDGE_MNIST_FAULT_AT": where})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert digest(device_export) == before
    assert_complete_and_passing(device_export, fixture_data_dir)


def test_sigkill_right_after_the_swap_leaves_the_new_set(device_export, fixture_data_dir):
    before = digest(device_export)
    proc = run_process(export_args(device_export, fixture_data_dir), env={"EDGE_MNIST_FAULT_AT": "swapped"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert digest(device_export)["manifest.json"] != before["manifest.json"]
    assert_complete_and_passing(device_export, fixture_data_dir)
    proc = run_process(export_args(device_export, fixture_data_dir)[:4] + ["--out", device_export, "--data-dir",
                                                                          fixture_data_dir, "--calib-samples", "32"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in device_export.parent.iterdir()) == ["device_export"]  # leftovers cleaned


def test_sigint_exits_130_and_keeps_the_old_set(device_export, fixture_data_dir):
    before = digest(device_export)
    proc = run_process(export_args(device_export, fixture_data_dir),
                       env={"EDGE_MNIST_FAULT_AT": "wrote model_int8.onnx", "EDGE_MNIST_FAULT_SIGNAL": "INT"})
    assert proc.returncode == 130 and "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert digest(device_export) == before
    assert sorted(p.name for p in device_export.parent.iterdir()) == ["device_export"]


def full_disk(limit: int):
    """preexec_fn: writes beyond `limit` bytes fail with EFBIG, as on a full disk, instead of killing the process."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_is_one_line_exit_2_and_keeps_the_old_set(device_export, fixture_data_dir):
    before = digest(device_export)
    proc = run_process(export_args(device_export, fixture_data_dir), preexec_fn=full_disk(20_000))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("edge-mnist: error:") and "File too large" in last and "Traceback" not in proc.stderr
    assert digest(device_export) == before
    assert_complete_and_passing(device_export, fixture_data_dir)
