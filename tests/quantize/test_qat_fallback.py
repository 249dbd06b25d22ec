"""debug and export --method qat --fallback on a model that really breaks QAT int8.

The outlier-channel model of tests/quantize/test_fallback.py (benchmarks/fallback.py) with a factor of 3000:
one output channel of conv1 scaled up, conv2's matching inputs scaled down, the same float function. One epoch
of QAT fine-tuning does not recover from conv1's stretched per-tensor activation grid (at 300x it does, and
gains accuracy: docs/quantization.md has the measurements), so the QAT files fail the gate; debug ranks conv1
and conv2 first, and --fallback leaves conv1 and conv2 unannotated, fine-tunes again and passes,
.tflite and .onnx alike.
Those three are the slow tier: a training epoch and four QAT fine-tunes take minutes on two cores. The fast tier
holds the pieces: which layers stay unannotated, and the QAT model with its fake quantization off.
"""
from __future__ import annotations

from edge_mnist.config import ExportConfig, GateConfig
from edge_mnist.folder.opener import read_folder
import json

import pytest

from benchmarks.fallback import outlier_channel
from tests.quantize.conftest import CALIB, imported, quiet

pytestmark = pytest.mark.tf

FACTOR = 3000.0


@pytest.fixture(scope="module")
def broken(trained, tmp_path_factory):
    """The reference CNN trained one epoch on 12,000 images (conftest's), with the outlier channel, as a user's
    .keras file."""
    from edge_mnist.core.keras_io import load_keras, save_keras

    path = tmp_path_factory.mktemp("broken") / "broken.keras"
    save_keras(outlier_channel(load_keras(trained / "model_float32.keras"), factor=FACTOR), path)
    return path


@pytest.fixture(scope="module")
def plain(broken, data, tmp_path_factory):
    return imported(broken, tmp_path_factory.mktemp("plain"), data, methods=("qat",))


def _mixed_criteria():
    """The gate the fallback must pass: a 1.0 pp tolerance. Since training recomputes BatchNorm statistics the
    fixture's float model scores 84.8%, and the one-epoch QAT re-fine-tunes with layers left float land 0.8 pp or
    more below it (plain QAT of the outlier model still fails the gate: test_plain_qat_...)."""
    from edge_mnist.gate import Criteria

    return Criteria(tolerance_pp=1.0)



@pytest.fixture(scope="module")
def mixed(broken, data, tmp_path_factory):

    return imported(broken, tmp_path_factory.mktemp("mixed"), data, _mixed_criteria(), methods=("qat",))


@pytest.mark.slow
def test_plain_qat_of_the_outlier_model_fails_the_gate(plain, data):
    from edge_mnist.check import evaluate
    from edge_mnist.gate import Criteria

    verdict = evaluate(read_folder(plain, data), GateConfig(Criteria(), skip_runtimes=("tflm",)))
    failed = {(r.artifact, r.criterion) for r in verdict.failed}
    assert {("model_qat_int8.tflite", "accuracy drop vs float (pp)"),
            ("model_qat_int8.onnx", "accuracy drop vs float (pp)")} <= failed


@pytest.mark.slow
def test_debug_of_qat_files_measures_against_the_qat_model_without_fake_quantization(plain, data):
    from edge_mnist.debug import debug
    from edge_mnist.folder.layout import DEBUG_FILE

    results = debug(read_folder(plain, data), ExportConfig(calib_samples=CALIB), progress=quiet)
    assert [r.file for r in results] == ["model_qat_int8.tflite", "model_qat_int8.onnx"]
    for result in results:
        assert set(result.ranking()[:2]) == {"conv1", "conv2"}  # conv1's output grid is conv2's input grid
        by_name = {row.layer: row for row in result.layers}
        assert by_name["conv1"].output_sqnr_db < 10 < by_name["dense1"].output_sqnr_db
        assert by_name["conv1"].weight_sqnr_db > 30 and by_name["conv2"].end_to_end_sqnr_db is not None
        assert by_name["conv1"].accuracy_if_float is None  # for QAT that takes a fine-tune: --fallback does it
    record = json.loads((plain / DEBUG_FILE).read_text())
    assert [set(a["ranking"][:2]) for a in record["artifacts"]] == [{"conv1", "conv2"}] * 2


@pytest.mark.slow
def test_qat_fallback_leaves_conv1_and_conv2_float_and_passes(mixed, data):
    from edge_mnist.check import evaluate
    from edge_mnist.folder.records import Manifest
    from edge_mnist.runtime.onnx import OnnxRunner
    from edge_mnist.runtime.tflite import TFLiteRunner

    manifest = Manifest.load(mixed)
    float_layers = manifest.float_layers()
    assert float_layers["tflite_qat_int8"] == float_layers["onnx_qat_int8"]
    # conv1 and conv2 (the outlier and its grid) float, then what the search needed for 1 pp (probs, when written)
    assert {"conv1", "conv2"} <= set(float_layers["tflite_qat_int8"].split(", "))
    assert manifest.artifacts["tflite_qat_int8"].details["fallback"].startswith("passes the gate")
    assert manifest.artifacts["tflite_qat_int8"].details["float_followers"] == "pool1"  # pool2 before int8 dense1
    assert manifest.qat.accuracy > 0.8  # model_qat.h5 is the chosen mix's QAT model
    tflite = TFLiteRunner(mixed / "model_qat_int8.tflite")
    assert tflite.precision == "int8" and "float32" in tflite.tensor_dtypes()  # conv1 and conv2 run in float
    assert OnnxRunner(mixed / "model_qat_int8.onnx").precision == "int8"
    verdict = evaluate(read_folder(mixed, data), GateConfig(_mixed_criteria(), skip_runtimes=("tflm",)))
    assert verdict.passed, verdict.failed
    assert verdict.float_layers["tflite_qat_int8"] == float_layers["tflite_qat_int8"]


@pytest.fixture(scope="module")
def folded():
    """The reference CNN, untrained, BatchNorm folded as QAT folds it."""
    from edge_mnist.quantize.batchnorm import fold_batchnorm
    from edge_mnist.registry.datasets import DATASETS
    from edge_mnist.registry.models import ARCHITECTURES

    return fold_batchnorm(ARCHITECTURES["reference_cnn"].build(DATASETS["fashion-mnist"].task), through_relu=True)


def test_only_pooling_between_float_layers_stays_unannotated_with_them(folded):
    from edge_mnist.quantize.qat import with_followers

    assert with_followers(folded, ("conv1",)) == ("conv1",)  # pool1 before an int8 conv2: tfmot quantizes there
    assert with_followers(folded, ("conv2", "conv1")) == ("conv1", "pool1", "conv2")
    assert with_followers(folded, ("dense1", "probs")) == ("dense1", "dropout", "probs")


def test_the_float_model_of_a_qat_model_is_its_layers_without_fake_quantization(folded):
    import numpy as np
    import tensorflow_model_optimization as tfmot

    from edge_mnist.quantize.qat import float_model, quantized_copy

    partial = quantized_copy(folded, ("conv1", "pool1", "conv2"))
    quantized_kernels = {w.name.split("/")[0] for w in partial.weights if w.name.endswith("kernel_min:0")}
    assert quantized_kernels == {"quant_dense1", "quant_probs"}
    x = np.random.default_rng(0).random((8, 28, 28, 1), np.float32)
    unquantized = float_model(tfmot.quantization.keras.quantize_model(folded))
    assert [layer.name for layer in unquantized.layers][-2:] == ["dropout", "probs"]
    np.testing.assert_allclose(unquantized.predict(x, verbose=0), folded.predict(x, verbose=0), atol=1e-5)
