"""export/ort_web.py: onnxruntime-web's three files for the page come from a verified cache, else from npm's tarball
checked against the pinned integrity and sha256; anything else is one line saying why (a local server stands in for
npm, the user's verified cache for the real files)."""
from __future__ import annotations

import hashlib
import io
import shutil
import socket
import tarfile
from pathlib import Path

import pytest

from edge_mnist.export import ort_web
from edge_mnist.export.job import NotExported

pytestmark = pytest.mark.device

TARBALL = f"onnxruntime-web/-/onnxruntime-web-{ort_web.VERSION}.tgz"


@pytest.fixture(scope="module")
def real_files() -> dict[str, bytes]:
    """The pinned files from the user's cache (an earlier export downloaded and verified them)."""
    folder = Path.home() / ".cache" / "edge-mnist" / f"{ort_web.PACKAGE}-{ort_web.VERSION}"
    if not all((folder / name).is_file() for name in ort_web.FILES):
        pytest.skip(f"no verified {ort_web.PACKAGE} {ort_web.VERSION} in {folder} (export once with npm reachable)")
    files = {name: (folder / name).read_bytes() for name in ort_web.FILES}
    assert {name: hashlib.sha256(data).hexdigest() for name, data in files.items()} == ort_web.FILES
    return files


def tarball(files: dict[str, bytes]) -> bytes:
    """An npm-style tarball holding `files` under package/dist/."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def closed_registry(monkeypatch, tmp_path) -> str:
    """An empty cache and, as the npm registry, a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv(ort_web.REGISTRY_ENV, url + "/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return url


def test_the_cache_and_the_registry_follow_the_environment(closed_registry, tmp_path):
    assert ort_web.cache_dir() == tmp_path / "cache" / "edge-mnist" / f"onnxruntime-web-{ort_web.VERSION}"
    assert ort_web.tarball_url() == f"{closed_registry}/{TARBALL}"


def test_the_verified_cache_serves_without_the_network(closed_registry, real_files):
    shutil.copytree(Path.home() / ".cache" / "edge-mnist" / f"{ort_web.PACKAGE}-{ort_web.VERSION}", ort_web.cache_dir())
    assert ort_web.runtime_files() == real_files and ort_web.SCRIPT in real_files


def test_a_changed_cached_file_is_not_used_and_offline_is_one_line(closed_registry, real_files):
    ort_web.cache_dir().mkdir(parents=True)
    for name, data in real_files.items():
        (ort_web.cache_dir() / name).write_bytes(data)
    (ort_web.cache_dir() / ort_web.SCRIPT).write_bytes(real_files[ort_web.SCRIPT] + b"//")
    with pytest.raises(NotExported) as info:
        ort_web.runtime_files()
    message = str(info.value)
    assert message.startswith(f"cannot download onnxruntime-web {ort_web.VERSION} from {closed_registry}/{TARBALL}")
    assert f"{ort_web.cache_dir()} holds no copy" in message and "\n" not in message


def test_a_tarball_that_is_not_the_pinned_release_is_refused(http_root, monkeypatch, tmp_path, real_files):
    root, base = http_root
    (root / TARBALL).parent.mkdir(parents=True)
    (root / TARBALL).write_bytes(tarball(real_files))  # the right files, but not npm's tarball of them
    monkeypatch.setenv(ort_web.REGISTRY_ENV, base)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(NotExported, match="the tarball does not match onnxruntime-web .*'s pinned npm integrity"):
        ort_web.runtime_files()
    assert not ort_web.cache_dir().exists()


def test_the_files_are_taken_from_the_tarball_only_when_each_is_the_pinned_one(real_files):
    assert ort_web._unpack(tarball(real_files)) == real_files
    with pytest.raises(NotExported, match=f"dist/{ort_web.SCRIPT} is not the pinned file"):
        ort_web._unpack(tarball({ort_web.SCRIPT: b"console.log('not it')"}))  # the first file checked
