"""user_model.py: a user's own Keras 3 or tf_keras model as the float reference (`--model FILE`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.user_model import residual_model as keras3_residual
from tests.cli.test_commands import run_cli
from tests.conftest import run_process

pytestmark = pytest.mark.tf


def keras3():
    """Plain Keras 3, what `pip install tensorflow` gives users (tf_keras is the toolkit's own)."""
    import keras

    assert keras.__version__.startswith("3")
    return keras


def trained(model, data, epochs: int = 1):
    """`model` fitted on the training split (Keras 3's own fit)."""
    from edge_mnist.data import to_float

    keras3().utils.set_random_seed(0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(to_float(data.x_train), data.y_train.astype(np.int32), batch_size=64, epochs=epochs, verbose=0)
    return model


@pytest.fixture(scope="module")
def medium(medium_fashion_dir):
    from edge_mnist.data import load_dataset

    return load_dataset("fashion-mnist", medium_fashion_dir)


@pytest.mark.slow
def test_a_trained_keras3_residual_model_runs_the_main_job_and_passes(medium, medium_fashion_dir, tmp_path):
    """The issue's case: functional, Keras 3, residual add, BatchNorm after a conv; PTQ and QAT."""
    source = tmp_path / "mine.keras"
    trained(keras3_residual(), medium, epochs=2).save(source)
    out = tmp_path / "export"
    proc = run_process(["run", "--model", source, "--method", "both", "--dataset", "fashion-mnist",
                        "--data-dir", medium_fashion_dir, "--out", out, "--threads", "1", "--skip-runtime", "tflm"],
                       timeout=900)  # TFLM's parity is tested on full data by test_end_to_end and test_models
    assert proc.returncode == 0, proc.stderr[-1500:]
    history = json.loads((out / "history.json").read_text())
    assert history["source_model"]["keras_version"].startswith("3")
    assert history["parameters"] == keras3_residual().count_params()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {a["key"] for a in manifest["artifacts"]} >= {"tflite_int8", "onnx_int8", "ort_int8", "tflite_qat_int8",
                                                         "onnx_qat_int8", "ort_qat_int8"}
    assert "[1/5] import" in proc.stderr and not (out / "training_curves.png").exists()
    copy = keras3().saving.load_model(out / "model_float32.keras", compile=False)  # users' Keras reads our copy
    assert copy.count_params() == history["parameters"]


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_the_tf_keras_copy_computes_what_the_keras3_model_computes(medium, tmp_path, kind):
    from edge_mnist.data import to_float
    from edge_mnist.train.user_model import load_user_model

    keras = keras3()
    if kind == "functional":
        model = keras3_residual()
    else:
        L = keras.layers
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(),
                                  L.BatchNormalization(), L.Flatten(), L.Dropout(0.3), L.Dense(10)])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2, n)])
    model.save(tmp_path / "m.keras")
    copy, version = load_user_model(tmp_path / "m.keras", medium)
    x = to_float(medium.x_test[:200])
    want = np.asarray(model(x, training=False))
    if kind == "sequential":  # it outputs logits; the copy ends in softmax (argmax unchanged)
        want = np.exp(want - want.max(1, keepdims=True))
        want /= want.sum(1, keepdims=True)
        assert copy.layers[-1].name == "probs"
    assert version.startswith("3")
    np.testing.assert_allclose(copy(x, training=False).numpy(), want, atol=1e-5)


def test_a_tf_keras_h5_model_exports(medium_fashion_dir, tmp_path, medium):
    from edge_mnist.registry.models import build

    model = build("mlp", medium.task)
    model.save(tmp_path / "mlp.h5")
    code, _, err = run_cli(["export", "--int8", "--model", str(tmp_path / "mlp.h5"), "--dataset", "fashion-mnist",
                            "--data-dir", str(medium_fashion_dir), "--out", str(tmp_path / "out")])
    assert code == 0, err[-1500:]
    assert json.loads((tmp_path / "out" / "history.json").read_text())["source_model"]["keras_version"] == "2"
    assert (tmp_path / "out" / "model_int8.onnx").is_file()


def _unsupported_layer(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3), L.LeakyReLU(), L.Flatten(), L.Dense(10)])


def _wrong_input(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((32, 32, 3)), L.Flatten(), L.Dense(10, activation="softmax")])


def _wrong_output(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(7, activation="softmax")])


def _swish(keras):
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(16, activation="swish"), L.Dense(10)])


@pytest.mark.parametrize("make, message", [
    (_unsupported_layer, r"layer 'leaky_re_lu' \(LeakyReLU\) is not supported; supported layers: InputLayer, Conv2D"),
    (_wrong_input, r"the model's input is \(None, 32, 32, 3\); expected one input of shape \(None, 28, 28, 1\)"),
    (_wrong_output, r"the model's output is \(None, 7\); expected one output of shape \(None, 10\)"),
    (_swish, r"activation '(swish|silu)' is not supported; supported: linear, relu, relu6, softmax"),
])
def test_an_unusable_model_is_one_line_exit_2_and_the_folder_is_untouched(make, message, device_export, tmp_path,
                                                                            fixture_data_dir):
    from edge_mnist.core.files import sha256_file
    from edge_mnist.core.lock import LOCK_FILE

    make(keras3()).save(tmp_path / "bad.keras")
    before = {p.name: sha256_file(p) for p in device_export.iterdir() if p.is_file()}
    code, _, err = run_cli(["export", "--int8", "--model", str(tmp_path / "bad.keras"), "--dataset", "fashion-mnist",
                            "--data-dir", str(fixture_data_dir), "--out", str(device_export)])
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert "bad.keras" in line
    import re

    assert re.search(message, line), line
    assert {p.name: sha256_file(p) for p in device_export.iterdir() if p.is_file() and p.name != LOCK_FILE} == before


def test_a_keras3_lambda_is_refused_before_anything_runs(tmp_path, medium):
    from edge_mnist.core.errors import EdgeMnistError
    from edge_mnist.train.user_model import load_user_model

    keras = keras3()
    image = keras.Input((28, 28, 1))
    model = keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Lambda(lambda t: t)(image))))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(EdgeMnistError, match="refused to load: layer 'lambda' .Lambda. runs Python code"):
        load_user_model(tmp_path / "lambda.keras", medium)


def test_qat_on_a_model_tfmot_cannot_quantize_suggests_ptq(tmp_path, medium_fashion_dir):
    keras3_residual(batchnorm_after_add=True).save(tmp_path / "m.keras")
    code, _, err = run_cli(["export", "--int8", "--method", "qat", "--model", str(tmp_path / "m.keras"), "--dataset",
                            "fashion-mnist", "--data-dir", str(medium_fashion_dir), "--out", str(tmp_path / "out")])
    assert code == 2, err[-1500:]
    (line,) = err.strip().splitlines()[-1:]
    assert "quantization-aware training is not possible for this model" in line and "use --method ptq" in line
