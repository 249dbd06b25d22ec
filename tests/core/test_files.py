"""files.py: atomic writes never leave a half-written target."""
from __future__ import annotations

import os

import pytest

from edge_mnist.core import files

pytestmark = pytest.mark.device


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    files.atomic_write_json(target, {"x": 1})
    files.atomic_write_json(target, {"x": 2})
    assert target.read_text().strip().endswith("}") and '"x": 2' in target.read_text()


def test_crash_during_write_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")

    from edge_mnist.core.errors import EdgeMnistError

    def boom(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(EdgeMnistError, match="model.onnx: cannot write \\(No space left on device\\)"):
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


def make_set(folder, **contents):
    """A folder holding the given files."""
    folder.mkdir(exist_ok=True)
    for name, text in contents.items():
        (folder / name).write_text(text)
    return folder


def snapshot(folder) -> dict[str, str]:
    """Name -> content of every file in a folder."""
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("can_exchange", [True, False])
def test_staged_swaps_the_whole_set_and_drops_stale_files(tmp_path, monkeypatch, can_exchange):
    if not can_exchange:
        monkeypatch.setattr(files, "exchange", lambda a, b: False)
    out = make_set(tmp_path / "export", **{"manifest.json": "old", "a.tflite": "old", "bench.json": "old",
                                          "notes.txt": "mine"})
    with files.staged(out, drop=("bench.json",)) as stage:
        files.atomic_write_bytes(stage / "a.tflite", b"new")
        files.atomic_write_bytes(stage / "manifest.json", b"new")
        assert snapshot(out)["a.tflite"] == "old"  # nothing visible until the swap
    assert snapshot(out) == {"a.tflite": "new", "manifest.json": "new", "notes.txt": "mine"}
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_an_error_inside_the_stage_leaves_the_old_set(tmp_path):
    out = make_set(tmp_path / "export", **{"manifest.json": "old", "a.tflite": "old"})
    with pytest.raises(OSError):
        with files.staged(out) as stage:
            files.atomic_write_bytes(stage / "a.tflite", b"new")
            raise OSError(28, "No space left on device")
    assert snapshot(out) == {"a.tflite": "old", "manifest.json": "old"}
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_recover_restores_the_old_set_after_a_crash_between_two_renames(tmp_path):
    out = tmp_path / "export"
    make_set(tmp_path / ".export.old", **{"manifest.json": "old"})
    make_set(tmp_path / ".export.staging", **{"manifest.json": "half"})
    files.recover(out)
    assert snapshot(out) == {"manifest.json": "old"} and sorted(os.listdir(tmp_path)) == ["export"]


def test_written_files_follow_the_umask_not_the_temp_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        files.atomic_write_bytes(tmp_path / "m.tflite", b"x")
        with files.atomic_output(tmp_path / "m.keras") as tmp:
            tmp.write_bytes(b"x")
        with files.staged(tmp_path / "export") as stage:
            files.atomic_write_json(stage / "manifest.json", {})
    finally:
        os.umask(old)
    for path in (tmp_path / "m.tflite", tmp_path / "m.keras", tmp_path / "export" / "manifest.json"):
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o755


def test_a_folder_that_is_a_file_is_refused(tmp_path):
    from edge_mnist.core.errors import EdgeMnistError

    (tmp_path / "export").write_text("x")
    with pytest.raises(EdgeMnistError, match="export: exists and is not a folder"):
        files.writable_folder(tmp_path / "export")


def test_a_symlinked_folder_is_swapped_at_its_target(tmp_path):
    real = make_set(tmp_path / "real", **{"manifest.json": "old"})
    (tmp_path / "export").symlink_to(real)
    for _ in range(2):
        with files.staged(tmp_path / "export") as stage:
            files.atomic_write_bytes(stage / "manifest.json", b"new")
    assert (tmp_path / "export").is_symlink() and snapshot(real) == {"manifest.json": "new"}
    assert sorted(os.listdir(tmp_path)) == ["export", "real"]


def test_dot_names_the_current_folder_and_root_is_refused(tmp_path, monkeypatch):
    from edge_mnist.core.errors import EdgeMnistError

    out = make_set(tmp_path / "export", **{"manifest.json": "old"})
    monkeypatch.chdir(out)
    with files.staged(files.Path(".")) as stage:
        files.atomic_write_bytes(stage / "manifest.json", b"new")
    assert snapshot(out) == {"manifest.json": "new"} and sorted(os.listdir(tmp_path)) == ["export"]
    with pytest.raises(EdgeMnistError, match="the filesystem root cannot be an artifact folder"):
        files.writable_folder(files.Path("/"))


def test_a_mount_point_is_swapped_file_by_file_with_the_manifest_last(tmp_path, monkeypatch):
    out = make_set(tmp_path / "export", **{"manifest.json": "old", "a.tflite": "old", "bench.json": "old"})
    order = []
    real_replace = os.replace
    monkeypatch.setattr(files.os.path, "ismount", lambda p: str(p) == str(out))
    monkeypatch.setattr(files.os, "replace", lambda a, b: (order.append(os.path.basename(b)), real_replace(a, b)))
    with files.staged(out, drop=("bench.json",), last=("manifest.json",)) as stage:
        (stage / "a.tflite").unlink()
        (stage / "a.tflite").write_text("new")
        (stage / "manifest.json").unlink()
        (stage / "manifest.json").write_text("new")
    assert snapshot(out) == {"a.tflite": "new", "manifest.json": "new"}
    assert order[-1] == "manifest.json" and sorted(os.listdir(tmp_path)) == ["export"]


def test_a_mount_points_sub_folder_is_swapped_whole(tmp_path, monkeypatch):
    """web/ of a new set replaces the old one on a mount point; a folder the new set dropped goes."""
    out = make_set(tmp_path / "export", **{"manifest.json": "old"})
    for name in ("web", "gone"):
        (out / name).mkdir()
        (out / name / "index.html").write_text("old")
    monkeypatch.setattr(files.os.path, "ismount", lambda p: str(p) == str(out))
    with files.staged(out, drop=("gone",), last=("manifest.json",)) as stage:
        (stage / "web" / "index.html").unlink()
        (stage / "web" / "index.html").write_text("new")
        (stage / "web" / "model.onnx").write_text("new")
    assert sorted(os.listdir(out)) == ["manifest.json", "web"]
    assert {p.name: p.read_text() for p in (out / "web").iterdir()} == {"index.html": "new", "model.onnx": "new"}
