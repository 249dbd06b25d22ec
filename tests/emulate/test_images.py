"""emulate/images.py: the host's Debian mirror, the runtime-only install a guest gets, the cache, and the
logged commands and scratch folders emulation's builds run in (no root needed)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.emulate.images import apt_mirror, cache_dir, remove_tree, run_logged, runtime_requirements, sweep
from edge_mnist.emulate.targets import BOOKWORM_ARM64, BOOKWORM_ARMHF, TRIXIE_ARM64

pytestmark = pytest.mark.device


DEBIAN_SOURCES = """Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm

Types: deb
# a comment inside a stanza
URIs: http://ftp.de.debian.org/debian/
Suites: bookworm
 bookworm-updates
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example.org/debian
Suites: bookworm
"""


def write_sources(etc: Path, files: dict[str, str]) -> Path:
    """An /etc/apt lookalike holding `files` (paths relative to it)."""
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


@pytest.mark.parametrize("files, mirror", [
    ({"sources.list.d/debian.sources": DEBIAN_SOURCES,
      "sources.list.d/node.sources.disabled": "Types: deb\nURIs: http://no.example.org/debian\nSuites: bookworm\n"},
     "http://ftp.de.debian.org/debian"),
    ({"sources.list": "# deb http://commented.example.org/debian bookworm main\n"
                      "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://mirror.example.org/debian/ "
                      "bookworm main contrib\n"}, "https://mirror.example.org/debian"),
    ({"sources.list.d/google.list": "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
      "sources.list": "deb http://mirror.example.org/debian trixie main\n"}, "http://mirror.example.org/debian"),
    ({"sources.list": "deb http://archive.ubuntu.com/ubuntu jammy main\n"}, None),
    ({}, None),
], ids=["deb822", "one-line-with-options", "another-release", "not-debian", "none"])
def test_apt_mirror_is_the_debian_archive_the_host_uses(tmp_path, files, mirror):
    assert apt_mirror(write_sources(tmp_path / "apt", files)) == mirror


@pytest.mark.parametrize("distro", [BOOKWORM_ARM64, TRIXIE_ARM64], ids=lambda d: d.name)
def test_an_arm64_guest_gets_the_runtime_only_install_at_this_hosts_versions(distro):
    pins = dict(p.split("==") for p in runtime_requirements(distro))
    assert {name.lower() for name in pins} == {"numpy", "click", "flatbuffers", "onnxruntime", "ai-edge-litert",
                                               "pillow", "tqdm"}
    assert all(version == metadata.version(name) for name, version in pins.items())


def test_a_32_bit_guest_gets_tflite_runtime_and_debians_numpy_and_pillow():
    pins = runtime_requirements(BOOKWORM_ARMHF)
    assert "tflite-runtime==2.14.0" in pins  # the last release, with cp311 armv7l wheels; needs numpy < 2
    assert {re.split("[<>=]", p)[0].lower() for p in pins} == {"click", "flatbuffers", "tflite-runtime", "tqdm"}
    assert dict(BOOKWORM_ARMHF.system) == {"numpy": "python3-numpy", "pillow": "python3-pil"}
    assert BOOKWORM_ARMHF.runtimes == ("tflite",)


def test_the_cache_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "edge-mnist" / "emulate"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "edge-mnist" / "emulate"


def test_a_logged_command_writes_its_output_to_the_log(tmp_path):
    log = tmp_path / "build.log"
    run_logged([sys.executable, "-c", "print('step one'); import sys; print('step two', file=sys.stderr)"], log, 60,
               "the build")
    assert log.read_text().split() == ["step", "one", "step", "two"]


def test_a_failed_command_is_one_line_with_its_last_error_and_the_remedy(tmp_path):
    log = tmp_path / "build.log"
    script = "print('I: Retrieving'); print('E: Couldn\\'t download packages'); print('I: done'); raise SystemExit(3)"
    with pytest.raises(EdgeMnistError) as info:
        run_logged([sys.executable, "-c", script], log, 60, "debootstrap", "check the mirror")
    assert str(info.value) == f"debootstrap failed (exit 3: E: Couldn't download packages); check the mirror; log: {log}"


def test_a_command_over_its_time_is_stopped_with_its_children(tmp_path):
    """The whole process group goes: a child the command started does not outlive it."""
    pid_file = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', "
              f"'import time; time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    with pytest.raises(EdgeMnistError, match="the worker took longer than 1 s and was stopped; see "):
        run_logged([sys.executable, "-c", script], tmp_path / "w.log", 1, "the worker")
    assert not running(int(pid_file.read_text()))


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a killed orphan may wait for a reaper)."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.01)
    return True


def test_sweep_removes_the_folders_of_dead_runs_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {name: tmp_path / name for name in (f"{dead.pid}-rootfs-bookworm-arm64", f"{os.getpid()}-site",
                                                 "notapid-x")}
    for folder in folders.values():
        (folder / "inner").mkdir(parents=True)
    sweep(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{os.getpid()}-site", "notapid-x"])
    remove_tree(folders[f"{os.getpid()}-site"])
    remove_tree(tmp_path / "never-made")
    assert not folders[f"{os.getpid()}-site"].exists()
