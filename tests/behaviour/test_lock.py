"""Two writers and a reader on one folder at once, as real processes: the second writer is refused in one line
naming the first one's pid (or, with --wait, waits for it), the reader is not held up, and the folder ends
with a complete bench.json. The first writer is stopped (SIGSTOP) while it holds the lock, so the race is
the same on every run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from edge_mnist.core.lock import LOCK_FILE, Holder
from edge_mnist.folder.layout import BENCH_FILE
from edge_mnist.folder.records import BenchResult, Manifest
from tests.conftest import FIXTURES, run_process

pytestmark = pytest.mark.device


def bench_args(out, data_dir, *extra) -> list[str]:
    """A short bench of the folder (TFLM left out: it takes milliseconds per image)."""
    return ["bench", "--out", str(out), "--data-dir", str(data_dir), "--runs", "50", "--warmup", "5",
            "--throughput-seconds", "0", "--skip-runtime", "tflm", *extra]


def start(args, log_dir, name: str) -> subprocess.Popen:
    """`edge-mnist args` as a child process in the background, its output in log_dir/name.out and .err."""
    with open(log_dir / f"{name}.out", "w") as stdout, open(log_dir / f"{name}.err", "w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "edge_mnist.cli", *map(str, args)],
                                cwd=FIXTURES.parent.parent, stdout=stdout, stderr=stderr)


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    """Poll `condition` until it holds; fail if `proc` exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def holding(out, proc: subprocess.Popen):
    """A condition: `proc` has written itself into the folder's lock file (it writes just after locking)."""
    def check() -> bool:
        path = out / LOCK_FILE
        holder = Holder.parse(path.read_text()) if path.exists() else None
        return holder is not None and holder.pid == proc.pid
    return check


def stopped_holder(out, data_dir, log_dir) -> subprocess.Popen:
    """Writer A: a bench that has taken the folder's lock, then stopped (SIGSTOP) so it keeps it."""
    first = start(bench_args(out, data_dir), log_dir, "first")
    wait_until(holding(out, first), first, "the first writer locked the folder")
    os.kill(first.pid, signal.SIGSTOP)
    return first


def finish(proc: subprocess.Popen, log_dir, name: str) -> str:
    """Let a stopped writer go on; its exit must be 0. Returns its stderr."""
    os.kill(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=300) == 0, (log_dir / f"{name}.err").read_text()[-2000:]
    return (log_dir / f"{name}.err").read_text()


def assert_complete_bench(out) -> None:
    """bench.json parses as a whole record that measured the files the manifest lists, int8 ones included."""
    manifest = Manifest.load(out)
    result = BenchResult.load(out / BENCH_FILE, manifest.task.num_classes)
    listed = {a.file: a.sha256 for a in manifest.artifacts.values()}
    assert {row.file: row.sha256 for row in result.rows}.items() <= listed.items()
    assert {"model_int8.tflite", "model_int8.onnx", "model_qat_int8.tflite"} <= {row.file for row in result.rows}


def cleanup(*procs) -> None:
    """Never leave a stopped or running child behind a failed test."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=60)


def test_a_second_writer_exits_2_naming_the_holder_while_a_reader_goes_on(device_export, fixture_data_dir,
                                                                           tmp_path):
    first = None
    try:
        first = stopped_holder(device_export, fixture_data_dir, tmp_path)
        second = run_process(bench_args(device_export, fixture_data_dir), timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"edge-mnist: error: bench: {device_export} is being written by pid {first.pid} "
                               "(edge-mnist bench, since ")
        assert line.endswith("); wait for it or pass --wait")
        report_into = run_process(["check", "--out", device_export, "--data-dir", fixture_data_dir, "--json",
                                   device_export / "check.json"], timeout=120)  # a check writing into DIR
        assert report_into.returncode == 2 and f"being written by pid {first.pid}" in report_into.stderr
        reader = run_process(["info", "--out", device_export], timeout=120)
        assert reader.returncode == 0, reader.stderr[-2000:]
        assert "model_int8.tflite" in reader.stdout
        finish(first, tmp_path, "first")
    finally:
        cleanup(first)
    assert_complete_bench(device_export)


def test_with_wait_the_second_writer_waits_and_both_finish(device_export, fixture_data_dir, tmp_path):
    first = second = None
    try:
        first = stopped_holder(device_export, fixture_data_dir, tmp_path)
        second = start(bench_args(device_export, fixture_data_dir, "--wait"), tmp_path, "second")
        wait_until(lambda: "waiting for it to finish" in (tmp_path / "second.err").read_text(), second,
                   "the second writer said it waits")
        assert f"is being written by pid {first.pid} (edge-mnist bench" in (tmp_path / "second.err").read_text()
        assert second.poll() is None  # still waiting: the first one holds the folder
        finish(first, tmp_path, "first")
        assert second.wait(timeout=300) == 0, (tmp_path / "second.err").read_text()[-2000:]
    finally:
        cleanup(first, second)
    assert Holder.parse((device_export / LOCK_FILE).read_text()).pid == second.pid  # the last writer
    assert_complete_bench(device_export)
