"""progress.py: plain periodic lines in a log, a tqdm bar on a terminal, silence under --quiet."""
from __future__ import annotations

import io
import re
import time

import pytest

from edge_mnist.core import progress

pytestmark = pytest.mark.device


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _loud():
    """Every test starts and ends without --quiet."""
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_a_log_gets_plain_lines_with_rate_and_eta_and_a_closing_line(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    with progress.step("bench x", 100) as shown:
        shown.update(40, loss="0.5")
        shown.update(60)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert re.fullmatch(r"bench x: 40% \(40/100 img\), [\d,]+ img/s, ETA \d+:\d\d, loss 0\.5", lines[0]), lines
    assert re.fullmatch(r"bench x: 100 img in \d+:\d\d \([\d,]+ img/s\), loss 0\.5", lines[-1]), lines
    assert len(lines) == 2  # no periodic line once the work is complete, only the closing one


def test_a_log_is_not_flooded_between_intervals(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 3600.0)
    with progress.step("train epoch 1/1", 60_000) as shown:
        for _ in range(400):
            shown.update(150)
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_long_silent_step_still_gets_periodic_lines(monkeypatch, capsys):
    """A step that is one long call (emulate's root filesystem build) gets heartbeat lines, then its closing line."""
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.05)
    with progress.step("emulate", 5, unit="steps") as shown:
        time.sleep(0.3)
        shown.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines.count("emulate: 0% (0/5 steps), ETA ?") >= 2, lines
    assert lines[-1].startswith("emulate: 1 steps in ") and "steps/s" not in lines[-1]


def test_a_terminal_gets_a_tqdm_bar_with_count_rate_and_figures(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress.step("export", 4, unit="files") as shown:
        for name in ("a.tflite", "a.onnx", "b.tflite", "b.onnx"):
            shown.update(1, last=name)
    text = terminal.getvalue()
    assert "\r" in text and "export: 100%" in text and "4/4 files" in text and "last=b.onnx" in text
    assert "files/s" not in text  # a rate is shown for images only
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress.step("bench", 20_000) as shown:
        shown.update(20_000)
    assert "img/s" in terminal.getvalue() and "20.0k/20.0k" in terminal.getvalue()


def test_a_failing_step_says_where_it_stopped_not_that_it_finished(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 3600.0)
    with pytest.raises(RuntimeError):
        with progress.step("model_int8.onnx (onnx)", 11_100) as shown:
            shown.update(500)
            raise RuntimeError("runtime crashed")
    assert capsys.readouterr().err == "model_int8.onnx (onnx): stopped at 500/11,100 img\n"


def test_quiet_silences_bars_and_messages(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    progress.set_quiet(True)
    with progress.step("bench", 10) as shown:
        shown.update(5)
        shown.update(5)
    progress.say("a stage message")
    assert capsys.readouterr().err == "" and shown.n == 10


def test_cli_quiet_keeps_results_on_stdout_and_drops_progress(device_export, fixture_data_dir):
    from tests.cli.test_commands import run_cli

    code, out, err = run_cli(["--quiet", "bench", "--out", str(device_export), "--data-dir", str(fixture_data_dir),
                              "--runs", "3", "--warmup", "0", "--throughput-seconds", "0", "--skip-runtime", "tflm"])
    assert code == 0 and err == ""
    assert "model_int8.tflite" in out and "wrote" in out


def test_steps_of_unlike_length_show_elapsed_time_and_activity_not_an_eta(monkeypatch, capsys):
    """emulate's steps (a root filesystem build, a cached one) predict nothing about each other: no ETA."""
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    with progress.step("emulate", 4, unit="steps", eta=False) as shown:
        shown.update(1)
        shown.update(0, now="debootstrap trixie-arm64: unpacking libc6 (12 so far)")
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"emulate: 1/4 steps, \d+:\d\d elapsed", lines[0]), lines
    assert re.fullmatch(r"emulate: 1/4 steps, \d+:\d\d elapsed, now debootstrap trixie-arm64: unpacking libc6 "
                        r"\(12 so far\)", lines[1]), lines
    assert "ETA" not in "".join(lines) and "now" not in lines[-1]  # the closing line drops the activity
