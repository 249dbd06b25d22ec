"""The device install: runtime, bench, check (and predict) must work where TensorFlow cannot be imported."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

import pytest

pytestmark = pytest.mark.tf  # the artifacts are made with TensorFlow in this process; the child has none

BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "tf_keras", "keras", "tf2onnx", "tensorflow_model_optimization"}:
                raise ImportError(f"No module named {name!r} (blocked by test)")
    sys.meta_path.insert(0, Block())
""")


def run_without_tf(code: str, cwd) -> subprocess.CompletedProcess:
    """Run python code in a child where importing TensorFlow fails, as on a Pi with only the runtime."""
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_runtime_bench_check_predict_without_tensorflow(export_copy, small_fashion_dir, tmp_path):
    from edge_mnist.data import load_dataset

    np.save(tmp_path / "item.npy", load_dataset("fashion-mnist", small_fashion_dir).x_test[0])
    code = f"""
        import sys
        from edge_mnist.cli import main
        import edge_mnist.runtime, edge_mnist.bench, edge_mnist.check
        for argv in (["bench", "--out", r"{export_copy}", "--data-dir", r"{small_fashion_dir}", "--runs", "20"],
                     ["check", "--out", r"{export_copy}", "--tolerance", "5", "--max-disagreement", "10",
                      "--max-class-drop", "30", "--parity", "0.9"],
                     ["predict", "--out", r"{export_copy}", "--json", r"{tmp_path / 'item.npy'}"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code in (0, None), (argv, exc.code)
        assert "tensorflow" not in sys.modules
        print("NO_TF_OK")
    """
    proc = run_without_tf(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NO_TF_OK" in proc.stdout
    assert '"class": ' in proc.stdout and '"probability": ' in proc.stdout
    assert "reference float accuracy recorded in manifest.json" in proc.stdout
    bench = json.loads((export_copy / "bench.json").read_text())
    assert "model_float32.keras" not in {r["artifact"] for r in bench["rows"]}
    assert bench["skipped"][0]["artifact"] == "model_float32.keras"
    assert {"model_int8.tflite", "model_int8.onnx"} <= {r["artifact"] for r in bench["rows"]}


def test_train_without_tensorflow_says_which_extra(tmp_path):
    code = """
        from edge_mnist.cli import main
        main(["train", "--dataset", "fashion-mnist", "--out", "o"])
    """
    proc = run_without_tf(code, tmp_path)
    assert proc.returncode == 2
    assert "pip install 'edge-mnist[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
