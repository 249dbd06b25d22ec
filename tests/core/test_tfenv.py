"""core/tfenv.py: TensorFlow's environment set before it is imported (the user's values win), its C++ start-up noise
filtered out of stderr while every other line is kept, and TensorFlow imported with Keras 2."""
from __future__ import annotations

import os
import sys

import pytest

from edge_mnist.core.tfenv import filtered_stderr, import_tf, setup_env

NOISE = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
         "I0000 00:00:1733567890.123456   12345 cpu_feature_guard.cc:210] This TensorFlow binary is optimized",
         "E0000 00:00:1733567890.1 12345 cuda_dnn.cc:8310] Unable to register cuDNN factory",
         "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow",
         "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]
KEPT = ["Traceback (most recent call last):", "E0000 00:00:1733567890.1 12345 op_kernel.cc:1] Invalid argument",
        "ValueError: a real error"]


def write_fd2(lines: list[str]) -> None:
    """Write to file descriptor 2 directly, as TensorFlow's C++ code does."""
    sys.stderr.flush()
    os.write(2, "".join(line + "\n" for line in lines).encode())


@pytest.mark.device
def test_startup_noise_is_dropped_and_every_other_line_kept(capfd, monkeypatch):
    monkeypatch.delenv("EDGE_MNIST_DEBUG", raising=False)
    with filtered_stderr():
        write_fd2([NOISE[0], KEPT[0], *NOISE[1:], *KEPT[1:]])
    assert capfd.readouterr().err.splitlines() == KEPT


@pytest.mark.device
@pytest.mark.parametrize("debug, env", [(True, None), (False, "1")], ids=["debug", "EDGE_MNIST_DEBUG"])
def test_with_debug_everything_reaches_stderr(capfd, monkeypatch, debug, env):
    if env is None:
        monkeypatch.delenv("EDGE_MNIST_DEBUG", raising=False)
    else:
        monkeypatch.setenv("EDGE_MNIST_DEBUG", env)
    with filtered_stderr(debug):
        write_fd2(NOISE)
    assert capfd.readouterr().err.splitlines() == NOISE


@pytest.mark.device
def test_the_legacy_keras_switch_is_set_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    setup_env()
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


@pytest.mark.tf
def test_tensorflow_comes_with_keras_2():
    """tfmot only quantizes Keras 2 models: the Keras import_tf hands out is tf_keras, and tf.keras is it too."""
    tf, keras = import_tf()
    assert keras.__name__ == "tf_keras" and keras.__version__.startswith("2.")
    assert tf.keras.layers.Dense is keras.layers.Dense
