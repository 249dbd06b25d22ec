"""registry/datasets.py: the task spec as manifests record it (read back strictly), the one rule for class labels,
a user's data record, and the registered datasets."""
from __future__ import annotations

import hashlib
import json

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.datasets import (
    DATASETS,
    DEBIAN_FASHION_DIR,
    FASHION,
    Task,
    UserData,
    get,
    is_registered,
    label_problem,
    task_from_json,
    user_data_from_json,
)

pytestmark = pytest.mark.device

BLANK = "a blank name cannot be a label"
CONTROL = "a name with control characters, line breaks or lone surrogates cannot be a label"


def test_a_task_round_trips_through_its_json(device_export):
    """The committed manifest's task is Fashion-MNIST's, and writing and reading it back changes nothing."""
    task = Manifest.load(device_export).task
    assert task == DATASETS["fashion-mnist"].task and task.num_classes == 10
    assert task_from_json(json.loads(json.dumps(task.to_json())), "task") == task


@pytest.mark.parametrize("field, value, message", [
    ("input_shape", [28, 28], "task.input_shape: expected three positive integers, got \\[28, 28\\]"),
    ("input_shape", [28, 0, 1], "task.input_shape: expected three positive integers"),
    ("class_names", ["only"], "task.class_names: expected at least two strings"),
    ("class_names", ["a", 2], "task.class_names: expected at least two strings"),
    ("class_names", ["a", "line\nbreak"], f"task.class_names: 'line\\\\nbreak': {CONTROL}"),
    ("fit_box", 29, "task.fit_box: 29 does not fit the 28x28 frame"),
    ("fit_box", "28", "task.fit_box"),
    ("dataset", None, "task.dataset"),
])
def test_a_wrong_task_field_is_one_line_naming_it(field, value, message):
    recorded = {**DATASETS["mnist"].task.to_json(), field: value}
    with pytest.raises(EdgeMnistError, match=message):
        task_from_json(recorded, "task")


@pytest.mark.parametrize("name, problem", [
    ("Ankle boot", None), ("café", None), ("T-shirt/top", None), ("<b>&amp;</b>", None),
    ("", BLANK), ("   ", BLANK), ("a\tb", CONTROL), ("\x1b[31mred", CONTROL), ("a\u2028b", CONTROL),
    ("\ud800", CONTROL), ("a\ufffeb", CONTROL),
])
def test_label_problem_is_the_one_rule_for_class_names(name, problem):
    """Text that C strings, HTML, JSON, XML and a terminal all hold on one line is a label; nothing else is."""
    assert label_problem(name) == problem


def test_a_users_data_record_round_trips_and_is_read_strictly():
    record = UserData("/data/mine", "ab" * 32, 3, (32, 32))
    assert user_data_from_json(json.loads(json.dumps(record.to_json())), "u") == record
    assert user_data_from_json(None, "u") is None
    with pytest.raises(EdgeMnistError, match="u.channels: expected 1 or 3, got 2"):
        user_data_from_json({**record.to_json(), "channels": 2}, "u")
    with pytest.raises(EdgeMnistError, match="u.image_size: expected null or two positive integers, got \\[32\\]"):
        user_data_from_json({**record.to_json(), "image_size": [32]}, "u")


def test_only_the_registered_tasks_are_scans():
    """predict cuts out and fits a registered dataset's scans; another task, even one named like them, is not."""
    assert is_registered(DATASETS["mnist"].task) and is_registered(DATASETS["fashion-mnist"].task)
    assert not is_registered(Task("tinted", (32, 32, 3), FASHION, fit_box=32))
    assert not is_registered(Task("mnist", (28, 28, 1), tuple("abcdefghij"), fit_box=28))  # a folder's own classes


def test_an_unknown_dataset_lists_the_registered_ones():
    assert get("fashion-mnist").name == "fashion-mnist"
    with pytest.raises(EdgeMnistError, match="unknown dataset 'emnist'; choose one of mnist, fashion-mnist"):
        get("emnist")


def test_fashion_mnists_pinned_sha256_are_debians_files():
    """The registry's published sha256 of Fashion-MNIST are those of the files Debian's package installs."""
    if not DEBIAN_FASHION_DIR.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    spec = DATASETS["fashion-mnist"]
    assert spec.system_dirs == (DEBIAN_FASHION_DIR,)
    for name, sha256 in spec.sha256.items():
        assert hashlib.sha256((DEBIAN_FASHION_DIR / name).read_bytes()).hexdigest() == sha256, name
