"""quantize/plan.py: what each method's files are converted from, planned before anything is written."""
from __future__ import annotations

import pytest

from edge_mnist.config import ExportConfig
from edge_mnist.data import load_dataset
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.quantize.equalize import DETAILS_KEY
from edge_mnist.quantize.plan import plan
from edge_mnist.registry.formats import BY_KEY
from edge_mnist.registry.methods import PTQ, QAT

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def model_and_data(fixture_data_dir):
    """The committed float model and the data it was exported with."""
    from edge_mnist.core.keras_io import load_keras
    from tests.conftest import FIXTURES

    return load_keras(FIXTURES / "device_export" / "model_float32.keras"), load_dataset("fashion-mnist",
                                                                                          fixture_data_dir)


def test_each_quantized_method_is_planned_in_registry_order(model_and_data):
    model, data = model_and_data
    calib = calibration_images(data, 32, 0)
    plans = plan(model, data, calib, ExportConfig(methods=("qat", "ptq", "float"), calib_samples=32, batch_size=32),
                 progress=lambda *_: None)
    assert list(plans) == ["ptq", "qat"]
    assert plans["ptq"].method is PTQ and plans["ptq"].model is model  # not equalized by default
    assert plans["ptq"].tflite is None and plans["ptq"].notes(BY_KEY["tflite_int8"]) == {}
    qat = plans["qat"]
    assert qat.method is QAT and qat.qat.model is qat.model and qat.model is not model
    assert qat.qat.epochs == 1 and set(qat.qat.metrics) >= {"loss"}


def test_equalization_changes_the_source_model_and_says_so(model_and_data):
    model, data = model_and_data
    config = ExportConfig(calib_samples=32, equalize=True)
    ptq = plan(model, data, calibration_images(data, 32, 0), config, progress=lambda *_: None)["ptq"]
    assert ptq.model is not model and ptq.equalization is not None
    assert DETAILS_KEY in ptq.notes(BY_KEY["onnx_int8"]) and not ptq.failed
