"""debug.py: the stage rebuilds export's calibration and refuses one that differs (the per-layer tables on an
outlier-channel model are the slow tier's, in tests/quantize/test_fallback.py)."""
from __future__ import annotations

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import load_dataset
from edge_mnist.debug import debug
from edge_mnist.folder.layout import DEBUG_FILE
from edge_mnist.config import ExportConfig
from edge_mnist.folder.opener import read_folder

pytestmark = pytest.mark.tf


def test_debug_refuses_a_calibration_other_than_exports(export_copy, small_fashion_dir):
    data = load_dataset("fashion-mnist", small_fashion_dir)
    with pytest.raises(EdgeMnistError, match="model_int8.tflite: its activation ranges differ .* --calib-samples"):
        # export calibrated on 100
        debug(read_folder(export_copy, data), ExportConfig(calib_samples=101), progress=lambda *_: None)
    assert not (export_copy / DEBUG_FILE).exists()

