"""pipeline.py: the dataset is a property of the artifact folder."""
from __future__ import annotations

import json

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import folder_dataset
from edge_mnist.userdata import load_for_folder

pytestmark = pytest.mark.device


def test_folder_dataset_comes_from_manifest_then_history(device_export, tmp_path):
    assert folder_dataset(device_export) == "fashion-mnist"
    trained = tmp_path / "trained"
    trained.mkdir()
    assert folder_dataset(trained) is None
    (trained / "history.json").write_text(json.dumps({"dataset": "mnist"}))
    assert folder_dataset(trained) == "mnist"


def test_asking_for_another_dataset_names_both(device_export, fixture_data_dir):
    with pytest.raises(EdgeMnistError, match="trained on fashion-mnist, not mnist"):
        load_for_folder(device_export, "mnist", fixture_data_dir)
    assert load_for_folder(device_export, None, fixture_data_dir).name == "fashion-mnist"
