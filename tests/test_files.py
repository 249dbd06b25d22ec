"""files.py: atomic writes never leave a half-written target."""
from __future__ import annotations

import os

import pytest

from edge_mnist import files

pytestmark = pytest.mark.device


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    files.atomic_write_json(target, {"x": 1})
    files.atomic_write_json(target, {"x": 2})
    assert target.read_text().strip().endswith("}") and '"x": 2' in target.read_text()


def test_crash_during_write_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        files.atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_atomic_output_discards_on_error(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(RuntimeError):
        with files.atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash")
    assert not target.exists() and os.listdir(tmp_path) == []
