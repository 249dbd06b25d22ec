"""train.py: device/precision selection, the tf.data pipeline, and a short real training run."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_mixed_precision_falls_back_to_float32_without_gpu():
    from edge_mnist.tfenv import import_tf
    from edge_mnist.train import select_device

    tf, keras = import_tf()
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this test covers the CPU fallback")
    info = select_device(mixed_precision=True)
    assert info["device"] == "CPU" and info["policy"] == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "needs a GPU" in info["note"]


def test_pipeline_normalizes_and_is_seeded():
    from edge_mnist.train import make_pipeline

    images = np.arange(10 * 28 * 28, dtype=np.int64).reshape(10, 28, 28).astype(np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    first = [y.numpy().tolist() for _, y in make_pipeline(images, labels, 4, seed=1, shuffle=True)]
    again = [y.numpy().tolist() for _, y in make_pipeline(images, labels, 4, seed=1, shuffle=True)]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    for x, y in make_pipeline(images, labels, 4, seed=2, shuffle=True):  # images stay with their labels
        np.testing.assert_allclose(x.numpy()[..., 0] * 255.0, images[y.numpy()], atol=1e-4)
    x, _ = next(iter(make_pipeline(images, labels, 10, seed=1, shuffle=False)))
    assert x.shape == (10, 28, 28, 1) and x.dtype.name == "float32"
    np.testing.assert_allclose(x.numpy()[..., 0], images / 255.0, atol=1e-7)


def test_training_writes_model_history_and_curves(tiny_export):
    history = json.loads((tiny_export / "history.json").read_text())
    assert history["parameters"] == 845_706
    assert history["device"]["device"] in ("CPU", "GPU")
    # 2 epochs on 3000 real Fashion-MNIST images: far above chance (10%).
    assert history["test_accuracy"] > 0.6
    assert len(history["history"]["images_per_second"]) == 2
    # images/s comes from the training pass alone; the epoch wall time also holds validation.
    metrics = history["history"]
    assert all(0 < t < e for t, e in zip(metrics["train_seconds"], metrics["epoch_seconds"]))
    assert (tiny_export / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_export / "model_float32.keras").stat().st_size > 3_000_000
