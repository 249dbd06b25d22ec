"""data.py: IDX/npz parsing, validation, source order and the sha256-verified download."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from edge_mnist import data
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.datasets import DATASETS, DEBIAN_FASHION_DIR, Task
from tests.conftest import synthetic_arrays, write_idx, write_idx_dir

pytestmark = pytest.mark.device


def npz_bytes(arrays) -> bytes:
    """An mnist.npz in Keras' layout, in memory."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_idx_dir_round_trip(tmp_path):
    arrays = synthetic_arrays()
    ds = data.load_dataset("mnist", write_idx_dir(tmp_path, arrays))
    assert ds.x_train.shape == (64, 28, 28) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_test, arrays["x_test"])
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])


def test_npz_in_keras_layout(tmp_path):
    arrays = synthetic_arrays()
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(arrays))
    ds = data.load_dataset("mnist", tmp_path)
    assert ds.source.endswith("mnist.npz")
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])


def test_bad_magic_number_names_file(tmp_path):
    write_idx_dir(tmp_path, synthetic_arrays())
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(32, np.uint8), magic_type=0x0D)
    with pytest.raises(EdgeMnistError, match="t10k-labels-idx1-ubyte.gz: bad IDX magic"):
        data.load_dataset("mnist", tmp_path)


def test_truncated_idx(tmp_path):
    write_idx_dir(tmp_path, synthetic_arrays())
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = data.gzip.decompress(path.read_bytes())[:-100]
    path.write_bytes(data.gzip.compress(raw))
    with pytest.raises(EdgeMnistError, match="IDX header says"):
        data.load_dataset("mnist", tmp_path)


def test_gz_bomb_is_refused_after_reading_only_what_the_header_declares(tmp_path):
    import time
    import tracemalloc
    import zlib

    write_idx_dir(tmp_path, synthetic_arrays())
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (64, 28, 28))
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    chunks = [stream.compress(header)] + [stream.compress(bytes(1 << 20)) for _ in range(300)] + [stream.flush()]
    path.write_bytes(b"".join(chunks))  # 0.3 MB on disk, 300 MB of zeros inside
    tracemalloc.start()
    try:  # tracing left on would slow every later test of the session several times over
        start = time.perf_counter()
        with pytest.raises(EdgeMnistError, match=r"train-images-idx3-ubyte.gz: IDX header says \[64, 28, 28\] but "
                                                 "the file holds more"):
            data.load_dataset("mnist", tmp_path)
        peak, seconds = tracemalloc.get_traced_memory()[1], time.perf_counter() - start
    finally:
        tracemalloc.stop()
    assert peak < 20e6 and seconds < 5


def test_idx_header_declaring_too_much_is_refused_before_reading(tmp_path):
    write_idx_dir(tmp_path, synthetic_arrays())
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (4_000_000, 28, 28))
    path.write_bytes(data.gzip.compress(header + bytes(100)))
    with pytest.raises(EdgeMnistError, match="declares \\[4000000, 28, 28\\], more than the 256 MB limit"):
        data.load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(y_test=a["y_test"][:-1]), "32 test images but 31 labels"),
    (lambda a: a.update(y_train=a["y_train"] + 10), "labels span"),
    (lambda a: a.update(x_test=a["x_test"][:, :27]), "expected \\(N, 28, 28\\)"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "expected uint8"),
    (lambda a: a.update(x_test=a["x_test"][:0], y_test=a["y_test"][:0]), "split is empty"),
])
def test_validation_errors(tmp_path, mutate, message):
    arrays = synthetic_arrays()
    mutate(arrays)
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(arrays))
    with pytest.raises(EdgeMnistError, match=message):
        data.load_dataset("mnist", tmp_path)


def test_npz_missing_array_and_junk(tmp_path):
    arrays = synthetic_arrays()
    del arrays["y_test"]
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(arrays))
    with pytest.raises(EdgeMnistError, match="missing arrays"):
        data.load_dataset("mnist", tmp_path)
    (tmp_path / "mnist.npz").write_bytes(b"not a zip at all")
    with pytest.raises(EdgeMnistError, match="mnist.npz: not a readable .npz"):
        data.load_dataset("mnist", tmp_path)


def test_empty_data_dir_and_missing_dir(tmp_path):
    with pytest.raises(EdgeMnistError, match="holds neither mnist.npz"):
        data.load_dataset("mnist", tmp_path)
    with pytest.raises(EdgeMnistError, match="not a folder"):
        data.load_dataset("mnist", tmp_path / "nope")


def test_keras_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist.npz").write_bytes(npz_bytes(synthetic_arrays()))
    assert data.load_dataset("mnist", download=False).source == str(tmp_path / "datasets" / "mnist.npz")


def test_no_copy_no_download_names_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(EdgeMnistError, match="--data-dir.*dataset-fashion-mnist"):
        data.load_dataset("mnist", download=False)


def test_download_verified_success(tmp_path, http_root):
    root, base = http_root
    payload = npz_bytes(synthetic_arrays())
    (root / "mnist.npz").write_bytes(payload)
    dest = tmp_path / "cache" / "mnist.npz"
    data.download_verified(base + "mnist.npz", dest, hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload
    assert data.read_npz(dest)["x_train"].shape == (64, 28, 28)


def test_download_wrong_checksum_saves_nothing(tmp_path, http_root, monkeypatch):
    root, base = http_root
    (root / "mnist.npz").write_bytes(npz_bytes(synthetic_arrays()))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    # load_dataset downloads from the mirror and checks the published mnist.npz sha256: the small file fails it.
    with pytest.raises(EdgeMnistError, match="sha256 mismatch.*file not saved.*--data-dir"):
        data.load_dataset("mnist", base_url=base)
    assert not (tmp_path / "keras" / "datasets" / "mnist.npz").exists()
    assert list((tmp_path / "keras" / "datasets").glob("*")) == []


def test_download_unreachable_names_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(EdgeMnistError, match="download failed.*--data-dir"):
        data.load_dataset("mnist", base_url="http://127.0.0.1:9/")


def test_real_fashion_mnist(fashion_full):
    arrays = data.validate(dict(fashion_full), "debian", DATASETS["fashion-mnist"].task)
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    assert np.bincount(arrays["y_test"]).tolist() == [1000] * 10
    for name, digest in DATASETS["fashion-mnist"].sha256.items():
        assert hashlib.sha256((DEBIAN_FASHION_DIR / name).read_bytes()).hexdigest() == digest


def test_dataset_carries_its_task(tmp_path):
    ds = data.load_dataset("fashion-mnist", write_idx_dir(tmp_path, synthetic_arrays()))
    assert ds.name == "fashion-mnist" and ds.task.class_names[9] == "Ankle boot"


def test_unknown_dataset_lists_the_registry():
    with pytest.raises(EdgeMnistError, match="unknown dataset 'cifar'; choose one of mnist, fashion-mnist"):
        data.load_dataset("cifar")


def test_stratified_indices_take_the_first_images_of_each_class_in_equal_shares():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 50))
    picked = data.stratified_indices(labels, 100)
    assert np.bincount(labels[picked], minlength=10).tolist() == [10] * 10
    assert picked.tolist() == sorted(np.concatenate([np.flatnonzero(labels == c)[:10] for c in range(10)]).tolist())
    assert np.array_equal(picked, data.stratified_indices(labels, 100))  # deterministic: bench and check agree


def test_stratified_indices_give_a_small_class_all_it_has_and_the_remainder_to_the_lowest_classes():
    labels = np.array([0] * 3 + [1] * 100 + [2] * 100 + [3] * 100)
    assert np.bincount(labels[data.stratified_indices(labels, 50)]).tolist() == [3, 16, 16, 15]
    assert np.bincount(labels[data.stratified_indices(labels, 13)]).tolist() == [3, 4, 3, 3]


@pytest.mark.parametrize("n", [0, 400, 401])
def test_stratified_indices_of_zero_or_the_whole_set_mean_all(n):
    assert data.stratified_indices(np.arange(400) % 10, n) is None


def test_stratified_indices_refuse_a_negative_count():
    with pytest.raises(EdgeMnistError, match="0 .all. or more, not -1"):
        data.stratified_indices(np.arange(10), -1)


def test_to_float_adds_the_channel_axis_only_to_one_channel_images():
    assert data.to_float(np.zeros((2, 8, 8), np.uint8)).shape == (2, 8, 8, 1)
    colour = data.to_float(np.full((2, 8, 8, 3), 255, np.uint8))
    assert colour.shape == (2, 8, 8, 3) and colour.max() == 1.0


def test_validate_takes_three_channels_and_more_than_256_classes():
    task = Task("own", (8, 8, 3), tuple(f"c{i}" for i in range(300)), fit_box=8)
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8) for s in ("train", "test")}
    arrays |= {f"y_{s}": np.arange(300) for s in ("train", "test")}
    checked = data.validate(arrays, "own", task)
    assert checked["y_test"].dtype == np.uint16 and checked["y_test"][-1] == 299
    with pytest.raises(EdgeMnistError, match="expected \\(N, 8, 8, 3\\)"):
        data.validate({**arrays, "x_test": arrays["x_test"][..., 0]}, "own", task)

