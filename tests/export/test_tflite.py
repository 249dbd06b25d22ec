"""export/tflite.py: every .tflite it writes describes itself in its edge_mnist metadata entry."""
from __future__ import annotations

import pytest

from edge_mnist.runtime import open_model

pytestmark = pytest.mark.device


def test_exported_tflite_describes_itself(device_export):
    runner = open_model(device_export / "model_qat_int8.tflite")
    meta = runner.metadata
    assert meta["edge_mnist.format"] == "tflite_qat_int8" and meta["method"] == "qat"
    assert "Ankle boot" in meta["labels"] and '"input_shape": [28, 28, 1]' in meta["task"]
