"""Shared fixtures, and the tiers.

Tiers are markers: `device` (runtime-only install), `tf` (TensorFlow), `slow` (full data, emulation, the
browser; minutes each). Plain `pytest` is the fast loop: it deselects `slow` unless `--runslow` is given
or the marker expression names `slow` (`pytest --runslow -m slow` runs the slow tier alone).

device tier: the committed tests/fixtures (a real Fashion-MNIST subset and a tiny exported model
folder, made by tests/fixtures/make_fixtures.py); they need numpy and the device runtimes only.
tf tier: a Fashion-MNIST subset from Debian's package and one small export per session.
"""
from __future__ import annotations

import functools
import gzip
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.config import BenchConfig, ExportConfig, RunConfig, TrainConfig
from edge_mnist.data import IDX_FILES, read_idx_dir
from edge_mnist.registry.datasets import DEBIAN_FASHION_DIR

FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_idx(path: Path, array: np.ndarray, magic_type: int = 0x08) -> None:
    """Write a uint8 array as a gzipped IDX file (the MNIST distribution format)."""
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_idx_dir(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write x_train/y_train/x_test/y_test as the four IDX .gz files."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        write_idx(folder / name, arrays[key])
    return folder


def synthetic_arrays(n_train=64, n_test=32, seed=0) -> dict[str, np.ndarray]:
    """Random images and labels with valid shapes and ranges."""
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}


@pytest.fixture(scope="session")
def fixture_data_dir() -> Path:
    """Committed real Fashion-MNIST subset (64 train / 500 test images)."""
    return FIXTURES / "fashion-small"


@pytest.fixture(scope="session")
def test_images(fixture_data_dir) -> tuple[np.ndarray, np.ndarray]:
    """The committed subset's 500 test images as float (N, 28, 28, 1) in [0, 1], and their labels: what the
    committed models were exported for."""
    from edge_mnist.data import load_dataset, to_float

    data = load_dataset("fashion-mnist", fixture_data_dir)
    return to_float(data.x_test), data.y_test


@pytest.fixture
def device_export(tmp_path) -> Path:
    """A private copy of the committed tiny export folder (float, PTQ and QAT artifacts + manifest)."""
    dst = tmp_path / "device_export"
    shutil.copytree(FIXTURES / "device_export", dst)
    return dst


@pytest.fixture(scope="session")
def fashion_full():
    """The full real Fashion-MNIST from Debian's dataset-fashion-mnist package."""
    if not DEBIAN_FASHION_DIR.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist")
    return read_idx_dir(DEBIAN_FASHION_DIR)


@pytest.fixture(scope="session")
def small_fashion_dir(tmp_path_factory, fashion_full) -> Path:
    """A real Fashion-MNIST subset (3000 train / 1000 test) as IDX files, for fast TF tests."""
    arrays = {"x_train": fashion_full["x_train"][:3000], "y_train": fashion_full["y_train"][:3000],
              "x_test": fashion_full["x_test"][:1000], "y_test": fashion_full["y_test"][:1000]}
    return write_idx_dir(tmp_path_factory.mktemp("fashion_small"), arrays)


@pytest.fixture(scope="session")
def medium_fashion_dir(tmp_path_factory, fashion_full) -> Path:
    """A larger real Fashion-MNIST subset (12,000 train / 5,000 test): one epoch trains any architecture
    well enough for int8 to be judged, and 500 test images per class keep the per-class criterion fair."""
    arrays = {"x_train": fashion_full["x_train"][:12000], "y_train": fashion_full["y_train"][:12000],
              "x_test": fashion_full["x_test"][:5000], "y_test": fashion_full["y_test"][:5000]}
    return write_idx_dir(tmp_path_factory.mktemp("fashion_medium"), arrays)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, small_fashion_dir):
    """The main job in process (pipeline.run), once per session: train 2 epochs on the subset, export float and PTQ
    int8 artifacts, bench them, gate and report; (RunResult, the progress lines it said)."""
    from edge_mnist.data import load_dataset
    from edge_mnist.pipeline import run

    out = tmp_path_factory.mktemp("export")
    data = load_dataset("fashion-mnist", small_fashion_dir)
    said: list[str] = []
    config = RunConfig(train=TrainConfig(epochs=2, batch_size=64), export=ExportConfig(calib_samples=100),
                       bench=BenchConfig(runs=30, warmup=3, throughput_seconds=0))
    return run(out, data, config, progress=said.append), said


@pytest.fixture(scope="session")
def tiny_export(tiny_run) -> Path:
    """The session's main-job folder (tiny_run): a trained model, its float and PTQ int8 artifacts, bench.json,
    check.json and report.html."""
    return tiny_run[0].report.parent


@pytest.fixture
def export_copy(tiny_export, tmp_path) -> Path:
    """A private copy of the tiny export folder that a test may damage."""
    dst = tmp_path / "export"
    shutil.copytree(tiny_export, dst)
    return dst


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def run_process(args, env: dict | None = None, timeout: float = 300, cwd=None, **kwargs):
    """Run `edge-mnist args` as a real child process (so signals and resource limits are real),
    in the repository root unless `cwd` says otherwise."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "edge_mnist.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd or FIXTURES.parent.parent, **kwargs)


def pytest_addoption(parser):
    """--runslow: also run the slow tier."""
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the slow tier (full-data end to end, emulation, the browser)")


def pytest_collection_modifyitems(config, items):
    """Deselect the slow tier unless --runslow is given or -m names it."""
    if config.getoption("--runslow") or "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture(scope="session")
def tinted_dir(tmp_path_factory, fashion_full) -> Path:
    """A colour image folder of real Fashion-MNIST items, padded to 32x32 and tinted one colour per class
    (tests/test_userdata.py's `tinted`): 100 train and 20 test images per class, small enough to train in seconds."""
    from edge_mnist.data import stratified_indices
    from edge_mnist.registry.datasets import FASHION
    from tests.test_userdata import safe_names, tinted, write_folder

    splits = {}
    for split, count in (("train", 1000), ("test", 200)):
        x, y = fashion_full[f"x_{split}"], fashion_full[f"y_{split}"].astype(np.int64)
        picked = stratified_indices(y, count)
        splits[split] = (tinted(x[picked], y[picked]), y[picked])
    return write_folder(tmp_path_factory.mktemp("tinted") / "tinted", splits, safe_names(FASHION))


@pytest.fixture(scope="session")
def tinted_run(tinted_dir, tmp_path_factory) -> tuple[int, str, str, Path]:
    """`edge-mnist run` on the tinted folder (compact, three epochs, post-training and QAT int8), once per session:
    (exit code, stdout, stderr, artifact folder). The colour export the slow tests of every stage share."""
    from tests.cli.test_commands import run_cli

    out = tmp_path_factory.mktemp("tinted_run") / "out"
    code, stdout, stderr = run_cli(["run", "--dataset", str(tinted_dir), "--arch", "compact", "--epochs", "3",
                                    "--method", "both", "--out", str(out)])
    return code, stdout, stderr, out
