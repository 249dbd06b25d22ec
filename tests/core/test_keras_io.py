"""keras_io.py: no model file runs code. Lambda layers, unknown classes and foreign modules are refused
from the stored config before Keras builds anything; HDF5 bytes under a .keras name are refused."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from tests.cli.test_commands import run_cli

pytestmark = pytest.mark.tf


@pytest.fixture
def keras():
    """tf_keras, as the toolkit uses it."""
    from edge_mnist.core.tfenv import import_tf

    return import_tf()[1]


def lambda_model(keras, marker):
    """A model whose Lambda layer writes `marker` whenever its Python code runs."""
    marker = str(marker)

    def side_effect(x):
        with open(marker, "w") as handle:
            handle.write("code ran")
        return x

    return keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Lambda(side_effect, name="evil"),
                             keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_and_never_runs(keras, tmp_path, suffix):
    from edge_mnist.core.keras_io import load_keras

    marker = tmp_path / "ran.txt"
    path = tmp_path / f"model{suffix}"
    lambda_model(keras, marker).save(path)
    marker.unlink(missing_ok=True)
    with pytest.raises(EdgeMnistError, match=f"model{suffix}: refused to load: layer 'evil' \\(Lambda\\) runs Python"):
        load_keras(path)
    assert not marker.exists()


def test_hdf5_bytes_named_keras_are_refused(keras, tmp_path):
    from edge_mnist.core.keras_io import load_keras

    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "m.h5")
    shutil.copy(tmp_path / "m.h5", tmp_path / "m.keras")
    with pytest.raises(EdgeMnistError, match="m.keras: the content is HDF5 data, which does not match its .keras"):
        load_keras(tmp_path / "m.keras")


def rewrite_config(path, edit) -> None:
    """Edit config.json inside a .keras zip."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["config"]["layers"][-1].update(module="os", class_name="Dense"), "names module 'os'"),
    (lambda c: c["config"]["layers"][-1].update(class_name="MyLayer"), r"\(MyLayer\) is not a built-in"),
])
def test_foreign_modules_and_unknown_classes_are_refused(keras, tmp_path, edit, message):
    from edge_mnist.core.keras_io import load_keras

    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "m.keras")
    rewrite_config(tmp_path / "m.keras", edit)
    with pytest.raises(EdgeMnistError, match=message):
        load_keras(tmp_path / "m.keras")


def test_own_files_load_only_with_the_recorded_sha256(device_export):
    from edge_mnist.core.files import sha256_file
    from edge_mnist.core.keras_io import load_keras

    path = device_export / "model_float32.keras"
    assert load_keras(path, sha256=sha256_file(path)).count_params() > 0
    with pytest.raises(EdgeMnistError, match="sha256 does not match the one recorded"):
        load_keras(path, sha256="0" * 64)
    qat = load_keras(device_export / "model_qat.h5")  # tfmot wrappers are known classes, loaded in tfmot's scope
    assert any("Quantize" in type(layer).__name__ for layer in qat.layers)


def test_export_bench_and_predict_refuse_a_lambda_model_without_running_it(keras, device_export, fixture_data_dir,
                                                                            tmp_path):
    from edge_mnist.core.files import sha256_file

    marker = tmp_path / "ran.txt"
    path = device_export / "model_float32.keras"
    lambda_model(keras, marker).save(path)
    manifest = json.loads((device_export / "manifest.json").read_text())
    manifest["keras_sha256"] = sha256_file(path)
    entry = next(a for a in manifest["artifacts"] if a["file"] == path.name)
    entry.update(sha256=sha256_file(path), size_bytes=path.stat().st_size)
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    (device_export / "history.json").unlink()
    h5 = tmp_path / "evil.h5"
    lambda_model(keras, marker).save(h5)
    marker.unlink()
    image = tmp_path / "x.npy"
    np.save(image, np.eye(28))
    for args in (["export", "--int8", "--out", device_export, "--data-dir", fixture_data_dir],
                 ["bench", "--out", device_export, "--data-dir", fixture_data_dir, "--runs", "3", "--throughput-seconds", "0"],
                 ["predict", "--out", device_export, "--model", h5, image]):
        code, _, err = run_cli([str(arg) for arg in args])
        assert code == 2 and "refused to load: layer 'evil' (Lambda)" in err, err[-1500:]
    assert not marker.exists()


PLAIN_KERAS3 = """
import sys, numpy as np, keras
assert keras.__version__.startswith("3."), keras.__version__
model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], model.predict(x, verbose=0))
"""


def test_the_float_keras_file_loads_in_plain_keras3_and_tf_keras(tiny_export, small_fashion_dir, tmp_path):
    """Users have plain Keras 3 (what TensorFlow installs); the toolkit itself reads it with tf_keras.
    Both must load model_float32.keras and give the same probabilities."""
    import os
    import subprocess
    import sys

    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.data import load_dataset, to_float

    x = to_float(load_dataset("fashion-mnist", small_fashion_dir).x_test[:64])
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, "-c", PLAIN_KERAS3, str(tiny_export / "model_float32.keras"),
                           str(tmp_path / "x.npy"), str(tmp_path / "keras3.npy")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tf_keras_probs = load_keras(tiny_export / "model_float32.keras").predict(x, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "keras3.npy"), tf_keras_probs, atol=1e-5)
