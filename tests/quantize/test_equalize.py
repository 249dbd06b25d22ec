"""quantize/equalize.py: cross-layer equalization keeps the float function, finds every pair (the Dense after
Flatten too) and undoes an outlier channel, so post-training int8 passes the gate with no float layer.

The outlier models are benchmarks/fallback.py's: one channel of a conv layer scaled up 300x and the next
layer's matching inputs scaled down, in each conv layer of the reference CNN and of compact (BatchNorm).
"""
from __future__ import annotations

import json

import numpy as np
from edge_mnist.config import GateConfig
from edge_mnist.folder.opener import read_folder
import pytest

from benchmarks.fallback import OUTLIER_PAIRS, outlier_channel
from tests.quantize.conftest import CALIB, imported

pytestmark = pytest.mark.tf

OUTLIERS = [(arch, conv) for arch, pairs in OUTLIER_PAIRS.items() for conv in pairs]


def untrained(arch: str):
    """`arch` built for MNIST's task, with random BatchNorm statistics so the fold has something to do."""
    from edge_mnist.registry.datasets import DATASETS
    from edge_mnist.registry.models import build

    model = build(arch, DATASETS["mnist"].task)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n), 0.1 * rng.normal(size=n),
                               rng.uniform(0.5, 2, n)])
    return model


def images(n: int = 16) -> np.ndarray:
    """Random model input."""
    return np.random.default_rng(1).random((n, 28, 28, 1), dtype=np.float32)


@pytest.mark.parametrize("arch", ["reference_cnn", "conv3_bn", "compact", "conv7"])
def test_the_equalized_model_computes_the_same_float_function_and_the_original_is_untouched(arch):
    from edge_mnist.quantize.equalize import equalize

    model = untrained(arch)
    before = [w.copy() for w in model.get_weights()]
    equalized, record = equalize(model)
    np.testing.assert_allclose(equalized(images()).numpy(), model(images()).numpy(), atol=1e-5)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert record.pairs and record.sweeps >= 1
    assert all(p.min_scale > 0 for p in record.pairs)


def test_pairs_run_through_relu_pool_dropout_and_flatten_with_one_scale_per_channel_tiled():
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.batchnorm import fold_batchnorm
    from edge_mnist.quantize.equalize import find_pairs

    _, keras = import_tf()
    compact = fold_batchnorm(untrained("compact"), through_relu=True)
    assert find_pairs(keras, compact.layers) == [("conv1", "conv2", 1), ("conv2", "conv3", 1),
                                                 ("conv3", "dense1", 9), ("dense1", "probs", 1)]
    reference = untrained("reference_cnn")
    assert find_pairs(keras, reference.layers)[:2] == [("conv1", "conv2", 1), ("conv2", "dense1", 25)]
    layers = keras.layers
    sigmoid = keras.Sequential([layers.Input((4,)), layers.Dense(3, activation="sigmoid"), layers.Dense(2)])
    assert find_pairs(keras, sigmoid.layers) == []  # not positively homogeneous: no pair


def test_a_model_that_is_not_sequential_is_left_as_it_is():
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.equalize import equalize

    _, keras = import_tf()
    image = keras.Input((4,))
    model = keras.Model(image, keras.layers.Dense(2)(keras.layers.Dense(3, activation="relu")(image)))
    same, record = equalize(model)
    assert same is model and record.pairs == () and record.describe() == "no Conv2D/Dense pair to equalize"


@pytest.mark.parametrize("arch, conv", OUTLIERS)
def test_equalization_undoes_an_outlier_channel(arch, conv):
    """Equalized weights do not depend on how the channels were scaled before: the outlier model and the
    clean one equalize to the same kernels (so the Flatten tiling is right as well)."""
    from edge_mnist.quantize.equalize import equalize

    clean, broken = untrained(arch), untrained(arch)
    broken.set_weights(clean.get_weights())
    outlier_channel(broken, conv, OUTLIER_PAIRS[arch][conv])
    (fixed, record), (reference, _) = equalize(broken), equalize(clean)
    np.testing.assert_allclose(fixed(images()).numpy(), clean(images()).numpy(), atol=1e-5)
    for ours, theirs in zip(fixed.layers, reference.layers):
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6 * np.abs(b).max())
    pair = next(p for p in record.pairs if p.first == conv)
    assert pair.second == OUTLIER_PAIRS[arch][conv] and pair.max_scale > 50


def all_int8(model, data):
    """The all-int8 .tflite and .onnx of `model`, as export builds them, judged by the default gate."""
    from edge_mnist.data import to_float
    from edge_mnist.gate import Criteria, Measured
    from edge_mnist.quantize.calibration import calibration_images
    from edge_mnist.quantize.fallback import evaluate_mix
    from edge_mnist.quantize.mixed import Mixer

    x, labels = to_float(data.x_test), data.y_test.astype(np.int64)
    preds = model.predict(x, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured("float_keras", "model_float32.keras", preds, float((preds == labels).mean()))
    mixer = Mixer.for_model(model, calibration_images(data, CALIB, 0))
    return mixer, evaluate_mix(mixer.runners(), x, labels, reference, data.task.class_names, Criteria(), ())


@pytest.mark.slow
@pytest.mark.parametrize("arch, conv", OUTLIERS)
def test_plain_ptq_of_each_outlier_fails_the_gate_and_equalized_ptq_passes_it(arch, conv, trained,
                                                                               trained_compact, data):
    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.quantize.equalize import equalize

    folder = {"reference_cnn": trained, "compact": trained_compact}[arch]
    broken = outlier_channel(load_keras(folder / "model_float32.keras"), conv, OUTLIER_PAIRS[arch][conv])
    _, plain = all_int8(broken, data)
    _, fixed = all_int8(equalize(broken)[0], data)
    assert any("model_int8.tflite" in f for f in plain.failed) and any("model_int8.onnx" in f for f in plain.failed)
    assert fixed.passed, fixed.failed
    assert min(fixed.accuracy.values()) > max(plain.accuracy.values())


@pytest.fixture(scope="module")
def conv2_outlier(trained, tmp_path_factory):
    """The reference CNN with the outlier in conv2, whose partner dense1 holds 97% of the weights."""
    from edge_mnist.core.keras_io import load_keras, save_keras

    path = tmp_path_factory.mktemp("conv2_outlier") / "broken.keras"
    save_keras(outlier_channel(load_keras(trained / "model_float32.keras"), "conv2", "dense1"), path)
    return path


@pytest.mark.slow
def test_the_float_fallback_cannot_rescue_the_conv2_outlier_without_making_the_model_float(conv2_outlier, data):
    """conv2 float alone still fails; conv2 and dense1 float is the float model (the search passes it over)."""
    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.data import to_float
    from edge_mnist.gate import Criteria, Measured
    from edge_mnist.quantize.fallback import evaluate_mix

    mixer, plain = all_int8(load_keras(conv2_outlier), data)
    assert not plain.passed
    assert mixer.runner(("conv2", "dense1"), "tflite").precision != "int8"
    x, labels = to_float(data.x_test), data.y_test.astype(np.int64)
    float_preds = load_keras(conv2_outlier).predict(x, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured("float_keras", "model_float32.keras", float_preds, float((float_preds == labels).mean()))
    conv2_float = evaluate_mix(mixer.runners(("conv2",)), x, labels, reference, data.task.class_names, Criteria(),
                               ("conv2",))
    assert not conv2_float.passed


@pytest.mark.slow
def test_fallback_passes_the_conv2_outlier_by_equalization_with_no_float_layer(conv2_outlier, data, tmp_path):
    from edge_mnist.check import evaluate
    from edge_mnist.folder.records import Manifest
    from edge_mnist.gate import Criteria
    from edge_mnist.quantize.equalize import DETAILS_KEY
    from edge_mnist.runtime.tflite import TFLiteRunner

    out = imported(conv2_outlier, tmp_path / "cle", data, Criteria())
    manifest = Manifest.load(out)
    assert manifest.float_layers() == {}
    for key in ("tflite_int8", "onnx_int8"):
        details = manifest.artifacts[key].details
        assert details["fallback"].startswith("passes the gate with no float layer after 2 step(s)")
        assert "conv2>dense1 64 ch" in details[DETAILS_KEY]
    tflite = TFLiteRunner(out / "model_int8.tflite")
    assert tflite.precision == "int8" and "float32" not in tflite.tensor_dtypes()
    assert "conv2>dense1" in tflite.metadata[DETAILS_KEY]  # the file says so itself
    verdict = evaluate(read_folder(out, data), GateConfig(Criteria(), skip_runtimes=("tflm",)))
    assert verdict.passed, [r for r in verdict.failed]
    assert {"model_int8.tflite", "model_int8.onnx"} <= {r.artifact for r in verdict.results}


@pytest.mark.slow
def test_export_equalize_and_debug_of_the_equalized_files(conv2_outlier, medium_fashion_dir, tmp_path):
    """`export --int8 --equalize` with no fallback: the manifest records the rescaling, and `debug` rebuilds the
    same int8 model (it equalizes as export did, else its calibration check would refuse the folder). main()
    returns on success and exits non-zero on any error."""
    from edge_mnist.cli import main

    out = tmp_path / "equalized"
    common = ["--data-dir", str(medium_fashion_dir), "--calib-samples", str(CALIB), "--out", str(out)]
    main(["export", "--int8", "--equalize", "--model", str(conv2_outlier), "--dataset", "fashion-mnist", *common])
    manifest = json.loads((out / "manifest.json").read_text())
    details = {a["key"]: a["details"] for a in manifest["artifacts"]}
    assert details["tflite_int8"]["equalization"].startswith("cross-layer equalization")
    assert "equalization" not in details["tflite_float32"]
    main(["debug", *common])  # an error would exit
    record = json.loads((out / "debug.json").read_text())
    assert [a["file"] for a in record["artifacts"]] == ["model_int8.tflite", "model_int8.onnx"]
