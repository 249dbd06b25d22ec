"""The writers' lock of an artifact folder (core.lock): one holder at a time across processes, reentrant within
one, released by the kernel when its holder dies, and waited for on request."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from edge_mnist.core import files, lock, progress
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.lock import LOCK_FILE, Holder, folder_lock, writes_into
from edge_mnist.folder.layout import WRITTEN_FILES
from tests.conftest import FIXTURES

pytestmark = pytest.mark.device

HOLD = textwrap.dedent("""
    import sys
    from edge_mnist.core.lock import folder_lock
    with folder_lock(sys.argv[1], "export"):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes stdin (or kills this process)
""")


def holder_process(folder):
    """A child process holding `folder`'s lock (as `export`) until its stdin closes; returned once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=FIXTURES.parent.parent)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_lock_file_is_made_in_the_folder_named_by_the_layout_and_says_who_holds_it(tmp_path):
    with folder_lock(tmp_path, "bench"):
        holder = Holder.parse((tmp_path / LOCK_FILE).read_text())
        assert (holder.pid, holder.command) == (os.getpid(), "bench") and holder.alive()
    assert (tmp_path / LOCK_FILE).exists()  # left for a waiter: deleting it would race with one
    assert LOCK_FILE in WRITTEN_FILES


def test_a_second_writer_in_another_process_is_refused_naming_the_holder(tmp_path):
    proc = holder_process(tmp_path)
    try:
        with pytest.raises(EdgeMnistError) as caught, folder_lock(tmp_path, "bench"):
            pass
        message = str(caught.value)
        assert message.startswith(f"bench: {tmp_path} is being written by pid {proc.pid} (edge-mnist export, since ")
        assert message.endswith("); wait for it or pass --wait") and "\n" not in message
    finally:
        proc.communicate("")
    with folder_lock(tmp_path, "bench"):  # released when the holder closed it
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)
    with folder_lock(tmp_path, "run"):
        with folder_lock(tmp_path / "link", "bench"), folder_lock(tmp_path, "report"):  # the same folder
            pass
        assert Holder.parse((tmp_path / LOCK_FILE).read_text()).command == "run"  # the outer holder still
        proc = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], capture_output=True, text=True,
                              input="", cwd=FIXTURES.parent.parent, timeout=120)
        assert proc.returncode == 1 and f"being written by pid {os.getpid()} (edge-mnist run" in proc.stderr
    assert not lock._held


def test_sigkill_of_the_holder_releases_the_lock(tmp_path):
    proc = holder_process(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    with folder_lock(tmp_path, "bench"):  # the stale file names a dead process; the kernel released its lock
        assert Holder.parse((tmp_path / LOCK_FILE).read_text()).pid == os.getpid()


def test_wait_blocks_until_the_holder_releases_and_says_so_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(progress._state, "quiet", False)
    proc = holder_process(tmp_path)
    release = threading.Timer(1.0, proc.stdin.close)
    release.start()
    start = time.monotonic()
    try:
        with folder_lock(tmp_path, "bench", wait=True):
            waited = time.monotonic() - start
    finally:
        release.cancel()
        proc.kill()
        proc.wait(timeout=60)
    assert waited >= 0.5
    (said,) = capsys.readouterr().err.strip().splitlines()
    assert said.startswith(f"bench: {tmp_path} is being written by pid {proc.pid} (edge-mnist export, since ")
    assert said.endswith("); waiting for it to finish")


@pytest.mark.parametrize("mount_point", [False, True])
def test_the_lock_file_keeps_its_inode_through_a_staged_swap(tmp_path, monkeypatch, mount_point):
    out = tmp_path / "export"
    out.mkdir()
    if mount_point:  # swapped file by file
        monkeypatch.setattr(files.os.path, "ismount", lambda p: str(p) == str(out))
    with folder_lock(out, "export"):
        inode = (out / LOCK_FILE).stat().st_ino
        with files.staged(out) as stage:
            (stage / "manifest.json").write_text("new")
        assert (out / "manifest.json").read_text() == "new"
        assert (out / LOCK_FILE).stat().st_ino == inode  # so a new writer still meets this process's lock


def test_a_folder_that_cannot_hold_a_lock_file_runs_unlocked(tmp_path):
    with folder_lock(tmp_path / "missing", "bench"):  # nothing to protect: the stage says the folder is missing
        pass
    assert not (tmp_path / "missing").exists()
    with folder_lock(tmp_path / "new" / "dir", "train", create=True):
        assert (tmp_path / "new" / "dir" / LOCK_FILE).is_file()


def test_reports_inside_the_folder_take_the_lock_and_others_do_not(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    assert writes_into(out, [None, out / "check.json"])
    assert writes_into(out, [tmp_path / "export" / "ci" / "junit.xml"])
    assert not writes_into(out, [None, tmp_path / "check.json", tmp_path / "export-ci" / "check.json"])

