"""edge_mnist.runtime (open_model): the runner for each file on committed real models, and files it cannot open."""
from __future__ import annotations

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.runtime import open_model

pytestmark = pytest.mark.device

INT8 = ["model_int8.tflite", "model_int8.onnx", "model_qat_int8.tflite", "model_qat_int8.onnx"]


@pytest.mark.parametrize("name", ["model_float32.tflite", "model_float32.onnx", *INT8])
def test_every_artifact_classifies_real_images(device_export, test_images, name):
    x, y = test_images
    runner = open_model(device_export / name, task=DATASETS["fashion-mnist"].task)
    probs = runner.predict(x)
    assert probs.shape == (len(x), 10)
    assert (probs.argmax(1) == y).mean() > 0.7  # the fixture model scores about 0.8; chance is 0.1
    assert runner.precision == ("int8" if "int8" in name else "float32")


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_junk_model_files(tmp_path, suffix, content):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    with pytest.raises(EdgeMnistError, match=f"junk{suffix}: not a valid"):
        open_model(path)


def test_missing_and_unknown_model(tmp_path):
    with pytest.raises(EdgeMnistError, match="model file not found"):
        open_model(tmp_path / "none.tflite")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(EdgeMnistError, match="unknown model format '.pt'"):
        open_model(tmp_path / "m.pt")


def test_verified_bytes_open_without_the_file_and_threads_are_checked(device_export, tmp_path):
    """`content` is what runs (the path only names it), and a thread count below one is refused."""
    content = (device_export / "model_int8.tflite").read_bytes()
    runner = open_model(tmp_path / "not_written.tflite", threads=2, content=content)
    assert runner.runtime == "tflite" and runner.threads == 2 and runner.precision == "int8"
    with pytest.raises(EdgeMnistError, match="--threads must be >= 1, not 0"):
        open_model(device_export / "model_int8.tflite", threads=0)
