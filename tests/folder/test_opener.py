"""folder/opener.py: one way into an artifact folder: checked, locked and read once."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from edge_mnist.config import DataConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.lock import folder_lock
from edge_mnist.data import load_dataset
from edge_mnist.folder.opener import open_folder, read_folder

pytestmark = pytest.mark.device

TRY_LOCK = """import sys
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.lock import folder_lock
try:
    with folder_lock(sys.argv[1], "check"):
        sys.exit(0)
except EdgeMnistError:
    sys.exit(7)
"""


@pytest.fixture
def data(fixture_data_dir):
    """The committed Fashion-MNIST subset the device export was made with."""
    return load_dataset("fashion-mnist", fixture_data_dir)


def test_an_exported_folder_is_read_once_with_its_own_dataset(device_export, fixture_data_dir):
    folder = read_folder(device_export, DataConfig(data_dir=fixture_data_dir))
    assert folder.dataset.name == "fashion-mnist" and len(folder.dataset.x_test) == 500
    assert folder.exported.task.dataset == "fashion-mnist"
    assert folder.keras_sha256 == json.loads((device_export / "manifest.json").read_text())["keras_sha256"]


def test_asking_for_another_dataset_names_both(device_export, fixture_data_dir):
    with pytest.raises(EdgeMnistError, match="trained on fashion-mnist, not mnist"):
        read_folder(device_export, DataConfig("mnist", fixture_data_dir))


def test_other_test_data_than_the_export_s_is_refused(device_export, data):
    data.y_test[0] = (data.y_test[0] + 1) % 10
    with pytest.raises(EdgeMnistError, match="exported with other fashion-mnist test data"):
        read_folder(device_export, data)


def test_a_folder_before_its_first_export_has_no_manifest(device_export, data):
    (device_export / "manifest.json").unlink()
    for name in [p.name for p in device_export.iterdir() if p.name not in ("model_float32.keras", "history.json")]:
        (device_export / name).unlink()
    folder = read_folder(device_export, data, exported=False)
    assert folder.manifest is None and folder.keras_sha256 is None  # this history records no sha256
    with pytest.raises(EdgeMnistError, match="manifest.json: manifest .run `edge-mnist export` first. not found"):
        folder.exported
    with pytest.raises(EdgeMnistError, match="manifest.json: manifest .run `edge-mnist export` first. not found"):
        read_folder(device_export, data)


def test_the_dataset_comes_from_the_manifest_then_the_history(device_export, tmp_path, fixture_data_dir):
    trained = tmp_path / "trained"
    trained.mkdir()
    shutil.copy(device_export / "history.json", trained / "history.json")
    shutil.copy(device_export / "model_float32.keras", trained / "model_float32.keras")
    assert read_folder(trained, DataConfig(data_dir=fixture_data_dir), exported=False).dataset.name == "fashion-mnist"
    record = json.loads((trained / "history.json").read_text())
    (trained / "history.json").write_text(json.dumps({**record, "dataset": "mnist"}))
    with pytest.raises(EdgeMnistError, match="trained on mnist, not fashion-mnist"):
        read_folder(trained, DataConfig("fashion-mnist", fixture_data_dir), exported=False)


def test_an_unlisted_model_file_is_refused(device_export, data):
    (device_export / "web").mkdir()
    (device_export / "web" / "index.html").write_text("<html></html>")
    with pytest.raises(EdgeMnistError, match="web/index.html: present but not listed in manifest.json"):
        read_folder(device_export, data)


def test_a_missing_folder_is_one_line(tmp_path, data):
    with pytest.raises(EdgeMnistError, match="artifact folder does not exist"):
        read_folder(tmp_path / "nothing", data)
    with pytest.raises(EdgeMnistError, match="artifact folder does not exist"):
        with open_folder(tmp_path / "nothing", "bench", data):
            pass


def test_open_folder_holds_the_lock_and_is_reentrant(device_export, data):
    with open_folder(device_export, "bench", data) as folder:
        assert folder.dataset is data
        with folder_lock(device_export, "report"):  # the same process may take it again (run's stages)
            pass
        other = subprocess.run([sys.executable, "-c", TRY_LOCK, str(device_export)], capture_output=True, text=True)
        assert other.returncode == 7, other.stderr


def test_a_reader_takes_no_lock(device_export, data):
    with folder_lock(device_export, "export"):
        with open_folder(device_export, "check", data, lock=False) as folder:
            assert folder.manifest is not None


def test_the_recorded_keras_sha256_comes_from_history_then_the_manifest(device_export, data, tmp_path):
    """The committed history.json records none, so the manifest's is used; a manifest this version cannot load whole
    still vouches by its field; a folder without records has none."""
    recorded = json.loads((device_export / "manifest.json").read_text())["keras_sha256"]
    assert read_folder(device_export, data, exported=False).keras_sha256 == recorded
    history = json.loads((device_export / "history.json").read_text())
    (device_export / "history.json").write_text(json.dumps({**history, "keras_sha256": "f" * 64}))
    assert read_folder(device_export, data, exported=False).keras_sha256 == "f" * 64
    old = shutil.copytree(device_export, tmp_path / "old")
    (old / "history.json").unlink()
    raw = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**raw, "artifacts": "from another version"}))
    folder = read_folder(old, data, exported=False)
    assert folder.manifest is None and folder.keras_sha256 == recorded
    (tmp_path / "empty").mkdir()
    assert read_folder(tmp_path / "empty", data, exported=False).keras_sha256 is None
