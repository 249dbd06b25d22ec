"""cli/commands.py: the commands end to end on a tiny real export: bench, the check gate, exit codes and bad input."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re

import numpy as np
import pytest

from edge_mnist.cli import main
from edge_mnist.config import BenchConfig
from edge_mnist.core.files import sha256_file
from edge_mnist.folder.opener import read_folder

pytestmark = pytest.mark.tf

LOOSE = ["--tolerance", "5", "--max-disagreement", "10", "--max-class-drop", "30", "--parity", "0.9"]
NO_TFLM = ["--skip-runtime", "tflm"]  # TFLM's part of the gate is tests/runtime/test_tflm.py's; here it only costs time


def run_cli(argv) -> tuple[int, str, str]:
    """Run `edge-mnist argv` through main(), the real entry point, and return (exit, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def test_check_passes_on_fresh_export(export_copy, small_fashion_dir, tmp_path):
    code, out, err = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir), *LOOSE,
                              *NO_TFLM, "--json", str(tmp_path / "c.json"),
                              "--junit", str(tmp_path / "c.xml"), "--markdown", str(tmp_path / "c.md")])
    assert code == 0, err
    assert "PASS" in out
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["verdict"] == "PASS" and report["n_samples"] == 1000
    assert {"accuracy drop vs float (pp)", "parity (same class)"} <= {r["criterion"] for r in report["results"]}
    assert 'failures="0"' in (tmp_path / "c.xml").read_text()
    assert "| file | result | check |" in (tmp_path / "c.md").read_text()


def test_check_fails_when_no_disagreement_is_allowed(export_copy, small_fashion_dir):
    code, out, err = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir),
                              "--max-disagreement", "0", *NO_TFLM])
    assert code == 1
    assert "FAIL  differs from its source model on " in out and "maximum 0.00%" in out
    assert re.search(r"check failed: \d+ of \d+ checks failed, in model_", err), err


@pytest.mark.parametrize("option, value", [("--tolerance", "nan"), ("--tolerance", "-1"), ("--parity", "-1"),
                                           ("--min-accuracy", "1.5")])
def test_check_refuses_bad_limits(export_copy, small_fashion_dir, option, value):
    code, _, err = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir), option, value])
    assert code == 2 and "must be a number in" in err and len(err.strip().splitlines()) == 1


def scramble_onnx_weights(path) -> None:
    """A real regression: overwrite the largest int8 weight tensor of an ONNX model with noise."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(biggest)
    noisy = np.random.default_rng(0).integers(-127, 127, arr.shape).astype(arr.dtype)
    biggest.CopyFrom(numpy_helper.from_array(noisy, biggest.name))
    onnx.save(model, path)


def test_damaged_model_with_updated_manifest_hash_fails_the_gate(export_copy, small_fashion_dir, tmp_path):
    target = export_copy / "model_int8.onnx"
    scramble_onnx_weights(target)
    manifest = json.loads((export_copy / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["key"] == "onnx_int8")
    entry.update(sha256=sha256_file(target), size_bytes=target.stat().st_size)
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir), *LOOSE,
                              *NO_TFLM, "--json", str(tmp_path / "c.json")])
    assert code == 1
    failed = {(r["artifact"], r["criterion"]) for r in json.loads((tmp_path / "c.json").read_text())["results"]
              if not r["passed"]}
    assert ("model_int8.onnx", "accuracy drop vs float (pp)") in failed
    assert ("model_int8.tflite ~ model_int8.onnx", "parity (same class)") in failed


def test_tampered_artifact_is_refused_by_bench_and_check(export_copy, small_fashion_dir):
    target = export_copy / "model_int8.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    for command in ("check", "bench"):
        code, _, err = run_cli([command, "--out", str(export_copy), "--data-dir", str(small_fashion_dir)])
        assert code == 2 and "model_int8.tflite: sha256 does not match manifest.json" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_check_derives_its_verdict_without_reading_bench_json(export_copy, small_fashion_dir):
    (export_copy / "bench.json").write_text("{ truncated")
    code, out, err = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir), *LOOSE,
                              *NO_TFLM])
    assert code == 0 and "PASS" in out, err
    assert "1000 images" in out


def test_baseline_regression_fails(export_copy, small_fashion_dir, tmp_path):
    baseline = json.loads((export_copy / "bench.json").read_text())
    for row in baseline["rows"]:
        if row["precision"] == "int8":
            row["accuracy"] = min(1.0, row["accuracy"] + 0.06)  # 6 pp above, LOOSE allows 5
    (tmp_path / "release.json").write_text(json.dumps(baseline))
    code, out, _ = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir), *LOOSE,
                            *NO_TFLM, "--baseline", str(tmp_path / "release.json")])
    assert code == 1 and re.search(r"FAIL  accuracy \d+\.\d\d% vs baseline \d+\.\d\d%: drop \d+\.\d\d pp, "
                                   r"tolerance 5\.00 pp", out), out


def test_missing_folder_and_dataset_errors(tmp_path):
    code, _, err = run_cli(["bench", "--out", str(tmp_path / "nope")])
    assert code == 2 and "artifact folder does not exist (run `edge-mnist train` there first" in err
    code, _, err = run_cli(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "holds neither mnist.npz" in err


def test_corrupt_manifest(export_copy, small_fashion_dir):
    (export_copy / "manifest.json").write_text("[]")
    code, _, err = run_cli(["check", "--out", str(export_copy), "--data-dir", str(small_fashion_dir)])
    assert code == 2 and "manifest.json" in err


def test_export_with_another_dataset_than_the_folder_is_refused(export_copy, small_fashion_dir):
    code, _, err = run_cli(["export", "--int8", "--out", str(export_copy), "--dataset", "mnist",
                            "--data-dir", str(small_fashion_dir)])
    assert code == 2 and "trained on fashion-mnist, not mnist" in err


def test_interrupted_bench_keeps_previous_results(export_copy, small_fashion_dir, monkeypatch):
    import sys

    from edge_mnist.data import load_dataset

    bench_mod = sys.modules["edge_mnist.bench"]

    before = (export_copy / "bench.json").read_bytes()
    calls = {"n": 0}
    real = bench_mod.measure

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_mod, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench_mod.bench(read_folder(export_copy, load_dataset("fashion-mnist", small_fashion_dir)),
                        BenchConfig(runs=5, warmup=0, throughput_seconds=0), progress=lambda *_: None)
    assert (export_copy / "bench.json").read_bytes() == before
    assert not [p for p in os.listdir(export_copy) if p.endswith(".tmp")]


@pytest.mark.parametrize("extra", [["--arch", "mlp"], ["--augment"], ["--strategy", "mirrored"],
                                   ["--learning-rate", "0.01"], ["--lr-schedule", "cosine"]])
def test_run_with_model_refuses_training_options(extra, tmp_path):
    code, _, err = run_cli(["run", "--model", str(tmp_path / "mine.keras"), *extra, "--out", str(tmp_path)])
    assert code == 2
    assert err.strip().splitlines()[-1].endswith("--arch, --augment, --strategy, --learning-rate and --lr-schedule "
                                                 "are for training")
