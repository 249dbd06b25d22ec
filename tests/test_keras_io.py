"""keras_io.py: no model file runs code. Lambda layers, unknown classes and foreign modules are refused
from the stored config before Keras builds anything; HDF5 bytes under a .keras name are refused."""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from edge_mnist.errors import EdgeMnistError
from tests.conftest import run_process

pytestmark = pytest.mark.tf


@pytest.fixture
def keras():
    """tf_keras, as the toolkit uses it."""
    from edge_mnist.tfenv import import_tf

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
    from edge_mnist.keras_io import load_keras

    marker = tmp_path / "ran.txt"
    path = tmp_path / f"model{suffix}"
    lambda_model(keras, marker).save(path)
    marker.unlink(missing_ok=True)
    with pytest.raises(EdgeMnistError, match=f"model{suffix}: refused to load: layer 'evil' \\(Lambda\\) runs Python"):
        load_keras(path)
    assert not marker.exists()


def test_hdf5_bytes_named_keras_are_refused(keras, tmp_path):
    from edge_mnist.keras_io import load_keras

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
    from edge_mnist.keras_io import load_keras

    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "m.keras")
    rewrite_config(tmp_path / "m.keras", edit)
    with pytest.raises(EdgeMnistError, match=message):
        load_keras(tmp_path / "m.keras")


def test_own_files_load_only_with_the_recorded_sha256(device_export):
    from edge_mnist.files import sha256_file
    from edge_mnist.keras_io import load_keras

    path = device_export / "model_float32.keras"
    assert load_keras(path, sha256=sha256_file(path)).count_params() > 0
    with pytest.raises(EdgeMnistError, match="sha256 does not match the one recorded"):
        load_keras(path, sha256="0" * 64)
    qat = load_keras(device_export / "model_qat.h5")  # tfmot wrappers are known classes, loaded in tfmot's scope
    assert any("Quantize" in type(layer).__name__ for layer in qat.layers)


def test_export_bench_and_predict_refuse_a_lambda_model_without_running_it(keras, device_export, fixture_data_dir,
                                                                            tmp_path):
    from edge_mnist.files import sha256_file

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
                 ["bench", "--out", device_export, "--data-dir", fixture_data_dir, "--runs", "3"],
                 ["predict", "--out", device_export, "--model", h5, image]):
        proc = run_process(args)
        assert proc.returncode == 2 and "refused to load: layer 'evil' (Lambda)" in proc.stderr, proc.stderr[-1500:]
    assert not marker.exists()
