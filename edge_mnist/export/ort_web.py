"""onnxruntime-web's files for the web page: the pinned npm release, verified, kept in a user cache.

The page needs three files of the package's dist/: the WASM-only script (ort.wasm.min.js), the module it loads
(ort-wasm-simd-threaded.mjs) and the WebAssembly binary (ort-wasm-simd-threaded.wasm), which also runs on one
thread when the page sets numThreads = 1 (no cross-origin isolation needed). They come from npm's tarball of
VERSION, checked against npm's dist.integrity (sha512) pinned here, and each copied file against its own
pinned sha256, so what the page loads is known without the network; the gate checks web/ against FILES too.
The tarball is read once and the three files kept in CACHE (~/.cache/edge-mnist, or $XDG_CACHE_HOME/edge-mnist);
EDGE_MNIST_NPM_REGISTRY points at another registry (a mirror, or a closed port in tests).
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.export.job import NotExported

PACKAGE, VERSION = "onnxruntime-web", "1.31.1"
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
FILES = {  # file of the package's dist/ -> its sha256
    "ort.wasm.min.js": "b8a78c408c40da65fdc8ba0846f7b2948e92a4c6d6b23cc8e4165e428ad95443",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
SCRIPT = "ort.wasm.min.js"  # the one the page's <script> names; it loads the other two
REGISTRY_ENV, REGISTRY = "EDGE_MNIST_NPM_REGISTRY", "https://registry.npmjs.org"
TIMEOUT_S = 60


def cache_dir() -> Path:
    """Where the verified files of VERSION are kept between exports."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "edge-mnist" / f"{PACKAGE}-{VERSION}"


def tarball_url() -> str:
    """npm's tarball of VERSION on the configured registry."""
    registry = os.environ.get(REGISTRY_ENV, REGISTRY).rstrip("/")
    return f"{registry}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def _sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _cached() -> dict[str, bytes] | None:
    """The cached files when every one is there with its pinned sha256, else None."""
    folder = cache_dir()
    try:
        files = {name: (folder / name).read_bytes() for name in FILES}
    except OSError:
        return None
    return files if all(_sha256(files[name]) == sha for name, sha in FILES.items()) else None


def _download() -> bytes:
    """The tarball's bytes, refused unless they match the pinned npm integrity; NotExported when unreachable."""
    url = tarball_url()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise NotExported(f"cannot download {PACKAGE} {VERSION} from {url} ({reason}) and {cache_dir()} holds "
                          "no copy; export again with the registry reachable") from exc
    algorithm, digest = INTEGRITY.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != digest:
        raise NotExported(f"{url}: the tarball does not match {PACKAGE} {VERSION}'s pinned npm integrity")
    return data


def _unpack(tarball: bytes) -> dict[str, bytes]:
    """The pinned files out of npm's tarball (package/dist/NAME), each checked against its sha256."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name, sha in FILES.items():
            member = archive.extractfile(f"package/dist/{name}")
            data = member.read() if member is not None else b""
            if _sha256(data) != sha:
                raise NotExported(f"{PACKAGE} {VERSION}: dist/{name} is not the pinned file")
            files[name] = data
    return files


def runtime_files() -> dict[str, bytes]:
    """The page's onnxruntime-web files by name: from the cache, else downloaded, verified and cached.

    NotExported (one line: why) when neither works; a cache that cannot be written only costs a download
    next time."""
    files = _cached()
    if files is not None:
        return files
    files = _unpack(_download())
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            atomic_write_bytes(cache_dir() / name, data)
    except (OSError, EdgeMnistError):  # an unwritable cache is not an export failure
        pass
    return files


__all__ = ["FILES", "SCRIPT", "VERSION", "cache_dir", "runtime_files", "tarball_url"]
