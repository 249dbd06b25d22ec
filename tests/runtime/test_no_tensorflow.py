"""The device install: bench, check and predict work where TensorFlow, tf_keras, tf2onnx and onnx cannot be imported."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.device

BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    ATTEMPTED = []
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "tf_keras", "keras", "tf2onnx", "tensorflow_model_optimization",
                                      "onnx", "tflite_micro"}:
                ATTEMPTED.append(name)
                raise ImportError(f"No module named {name!r} (blocked by test)")
    sys.meta_path.insert(0, Block())
""")


def run_without_tf(code: str, cwd) -> subprocess.CompletedProcess:
    """Run python code in a child where importing TensorFlow fails, as on a Pi with only the runtime."""
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_bench_check_predict_without_tensorflow(device_export, fixture_data_dir, tmp_path):
    from edge_mnist.data import load_dataset

    np.save(tmp_path / "item.npy", load_dataset("fashion-mnist", fixture_data_dir).x_test[0])
    code = f"""
        import sys
        from edge_mnist.cli import main
        check = ["check", "--out", r"{device_export}", "--data-dir", r"{fixture_data_dir}", "--tolerance", "5",
                 "--max-disagreement", "10", "--max-class-drop", "30", "--parity", "0.9"]
        for argv, expected in ((["bench", "--out", r"{device_export}", "--data-dir", r"{fixture_data_dir}",
                                 "--runs", "20", "--throughput-seconds", "0"], 0),
                               (check, 2),
                               (check + ["--skip-qat-source"], 0),
                               (["predict", "--out", r"{device_export}", "--json", r"{tmp_path / 'item.npy'}"], 0)):
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code or 0
            assert code == expected, (argv, code)
        print("NO_TF_OK", "attempted:", sorted(set(ATTEMPTED)))
    """
    proc = run_without_tf(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # only the probes of the Keras row and of the TFLM runs, which are skipped and said so
    assert "NO_TF_OK attempted: ['tensorflow', 'tflite_micro']" in proc.stdout
    assert '"class": ' in proc.stdout and '"probability": ' in proc.stdout
    assert "reference model_float32.onnx" in proc.stdout  # the float ONNX stands in for Keras
    assert "pass --skip-qat-source" in proc.stderr  # the QAT source model needs TensorFlow: said, not skipped
    assert "skipped: disagreement and per-class drop of model_qat_int8.tflite" in proc.stdout
    assert "skipped: model_int8.tflite@tflm: the tflm runtime is not installed" in proc.stdout
    bench = json.loads((device_export / "bench.json").read_text())
    assert bench["reference"] == "onnx_float32"
    openvino_absent = importlib.util.find_spec("openvino") is None  # optional: skipped where not installed
    expected = ["model_float32.keras"]
    for stem in ("model_int8", "model_qat_int8"):
        expected += [f"{stem}.tflite@tflm"]
        expected += [f"{stem}.{kind}@openvino" for kind in ("tflite", "onnx") if openvino_absent]
    assert [s["file"] for s in bench["skipped"]] == expected
    assert {"model_int8.tflite", "model_int8.onnx", "model_qat_int8.onnx"} <= {r["file"] for r in bench["rows"]}


def test_train_without_tensorflow_says_which_extra(tmp_path):
    code = """
        from edge_mnist.cli import main
        main(["train", "--dataset", "fashion-mnist", "--out", "o"])
    """
    proc = run_without_tf(code, tmp_path)
    assert proc.returncode == 2
    assert "pip install 'edge-mnist[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
