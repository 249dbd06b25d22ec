"""status.py: emulate's progress line says what runs (the debootstrap stage, the guest's images done) and gives
an ETA only for the worker's current file, from its measured rate."""
from __future__ import annotations

import json
import time

import pytest

from edge_mnist.emulate import status
from edge_mnist.emulate.guest import PROGRESS_FILE, Guest
from edge_mnist.emulate.images import rootfs_log
from edge_mnist.emulate.targets import PI_TARGETS, TRIXIE_ARM64

pytestmark = pytest.mark.device

# The first lines of a real `debootstrap --variant=minbase trixie` log, then its later stages.
LOG = """I: Retrieving InRelease
I: Checking Release signature
I: Valid Release signature (key id 4CB50190207B4758A3F73A796ED0E7B82643E131)
I: Retrieving Packages
I: Validating Packages
I: Resolving dependencies of required packages...
I: Checking component main on http://mirror.example.org/debian...
I: Retrieving adduser 3.152
I: Validating adduser 3.152
I: Retrieving apt 3.0.3
I: Validating apt 3.0.3
W: an unrelated warning
I: Extracting adduser...
I: Extracting apt...
"""


def test_the_debootstrap_stage_is_read_from_its_log(tmp_path):
    assert status.debootstrap_status(tmp_path, TRIXIE_ARM64) == ""  # not started
    log = rootfs_log(tmp_path, TRIXIE_ARM64)
    log.write_text(LOG)
    assert status.debootstrap_status(tmp_path, TRIXIE_ARM64) == "debootstrap trixie-arm64: extracting apt (2 so far)"
    log.write_text(LOG + "I: Configuring libc6:arm64...\nI: Unpacking the base system...\n")
    assert status.debootstrap_status(tmp_path, TRIXIE_ARM64) == \
        "debootstrap trixie-arm64: unpacking the base system (1 so far)"
    log.write_text(LOG + "I: Base system installed successfully.\n")
    assert status.debootstrap_status(tmp_path, TRIXIE_ARM64) == \
        "debootstrap trixie-arm64: base system installed successfully (1 so far)"


def test_the_worker_reports_its_file_and_images_with_an_eta_for_that_file(tmp_path):
    g = Guest(tmp_path, tmp_path / "run", tmp_path / "root", tmp_path / "site", TRIXIE_ARM64)
    (g.run / "work").mkdir(parents=True)
    target = PI_TARGETS["pi5-trixie"]
    assert status.worker_status(g, target) == "pi5-trixie: starting Python under qemu"
    (g.run / "work" / PROGRESS_FILE).write_text(json.dumps(
        {"file": "model_int8.onnx", "done": 100, "total": 500, "index": 1, "files": 6, "seconds": 30.0}))
    assert status.worker_status(g, target) == \
        "pi5-trixie: model_int8.onnx (2/6) 100/500 images, 2:00 left for this file"
    (g.run / "work" / PROGRESS_FILE).write_text(json.dumps(
        {"file": "model_int8.onnx", "done": 500, "total": 500, "index": 1, "files": 6, "seconds": 90.0}))
    assert status.worker_status(g, target) == "pi5-trixie: model_int8.onnx (2/6) 500/500 images"


def test_watching_puts_the_activity_on_the_step_until_the_block_ends(monkeypatch):
    monkeypatch.setattr(status, "POLL_S", 0.01)
    seen = []

    class Shown:
        def update(self, n=1, **figures):
            seen.append((n, figures))

    with status.watching(Shown(), lambda: "busy"):
        time.sleep(0.1)
    count = len(seen)
    time.sleep(0.05)
    assert count >= 3 and len(seen) == count and all(s == (0, {"now": "busy"}) for s in seen[:-1])
    assert seen[-1] == (0, {"now": ""})  # cleared when the block ends
