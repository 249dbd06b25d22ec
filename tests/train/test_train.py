"""train.py: device/precision selection, the tf.data pipeline, and a short real training run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.config import ExportConfig, GateConfig
from edge_mnist.folder.opener import open_folder, read_folder
from tests.cli.test_commands import run_cli

pytestmark = pytest.mark.tf


def test_mixed_precision_falls_back_to_float32_without_gpu():
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.train import select_device

    tf, keras = import_tf()
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this test covers the CPU fallback")
    info = select_device(mixed_precision=True)
    assert info["device"] == "CPU" and info["policy"] == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "needs a GPU" in info["note"]


def test_pipeline_normalizes_and_is_seeded():
    from edge_mnist.train import make_pipeline

    images = np.arange(10 * 28 * 28, dtype=np.int64).reshape(10, 28, 28).astype(np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    first = [y.numpy().tolist() for _, y in make_pipeline(images, labels, 4, seed=1, shuffle=True)]
    again = [y.numpy().tolist() for _, y in make_pipeline(images, labels, 4, seed=1, shuffle=True)]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    for x, y in make_pipeline(images, labels, 4, seed=2, shuffle=True):  # images stay with their labels
        np.testing.assert_allclose(x.numpy()[..., 0] * 255.0, images[y.numpy()], atol=1e-4)
    x, _ = next(iter(make_pipeline(images, labels, 10, seed=1, shuffle=False)))
    assert x.shape == (10, 28, 28, 1) and x.dtype.name == "float32"
    np.testing.assert_allclose(x.numpy()[..., 0], images / 255.0, atol=1e-7)


def test_training_writes_model_history_and_curves(tiny_export):
    history = json.loads((tiny_export / "history.json").read_text())
    assert history["parameters"] == 845_706
    assert history["device"]["device"] in ("CPU", "GPU")
    # 2 epochs on 3000 real Fashion-MNIST images: far above chance (10%).
    assert history["test_accuracy"] > 0.6
    assert len(history["history"]["images_per_second"]) == 2
    # images/s comes from the training pass alone; the epoch wall time also holds validation.
    metrics = history["history"]
    assert all(0 < t < e for t, e in zip(metrics["train_seconds"], metrics["epoch_seconds"]))
    assert (tiny_export / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_export / "model_float32.keras").stat().st_size > 3_000_000


def test_training_over_an_export_folder_replaces_the_set_and_drops_stale_artifacts(device_export, fixture_data_dir):
    from edge_mnist.core.files import sha256_file
    from edge_mnist.data import load_dataset
    from edge_mnist.train import TrainConfig, train

    history = train(load_dataset("fashion-mnist", fixture_data_dir), device_export,
                    TrainConfig(epochs=1, batch_size=32))
    names = sorted(p.name for p in device_export.iterdir())
    assert names == [".edge-mnist.lock", "history.json", "model_float32.keras", "training_curves.png"]
    assert history["keras_sha256"] == sha256_file(device_export / "model_float32.keras")
    assert json.loads((device_export / "history.json").read_text())["keras_sha256"] == history["keras_sha256"]


@pytest.mark.slow
def test_training_killed_before_the_swap_leaves_the_old_set_passing(device_export, fixture_data_dir):
    import signal

    from edge_mnist.check import evaluate
    from edge_mnist.data import load_dataset
    from edge_mnist.gate import Criteria
    from tests.conftest import run_process
    from tests.export.test_interrupt import digest

    before = digest(device_export)
    proc = run_process(["train", "--out", device_export, "--data-dir", fixture_data_dir, "--epochs", "1",
                        "--batch-size", "32"], env={"EDGE_MNIST_FAULT_AT": "wrote history.json"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert digest(device_export) == before
    assert evaluate(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                    GateConfig(Criteria())).passed


def test_export_refuses_a_model_with_nan_or_constant_outputs(tmp_path, fixture_data_dir):
    from edge_mnist.core.errors import EdgeMnistError
    from edge_mnist.core.keras_io import save_keras
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.data import load_dataset
    from edge_mnist.export import export

    _, keras = import_tf()
    data = load_dataset("fashion-mnist", fixture_data_dir)
    for name, bias in (("nan", np.nan), ("constant", 0.0)):
        model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(10, activation="softmax")])
        model.layers[-1].set_weights([np.zeros((784, 10), np.float32), np.full(10, bias, np.float32)])
        out = tmp_path / name
        out.mkdir()
        save_keras(model, out / "model_float32.keras")
        expected = "outputs on the test images are NaN" if name == "nan" else "gives the same output for every"
        with pytest.raises(EdgeMnistError, match=f"model_float32.keras: the model.*{expected}"):
            with open_folder(out, "export", data, exported=False) as folder:
                export(folder, ExportConfig(("ptq",)), progress=lambda *_: None)
        assert sorted(p.name for p in out.iterdir()) == [".edge-mnist.lock", "model_float32.keras"]


def test_augmentation_is_seeded_keeps_labels_and_moves_the_images():
    from edge_mnist.train import make_pipeline

    rng = np.random.default_rng(0)
    images = np.zeros((8, 28, 28), np.uint8)
    for i in range(8):  # a bright square somewhere in each image
        r, c = rng.integers(6, 16, size=2)
        images[i, r:r + 8, c:c + 8] = 255
    labels = np.arange(8, dtype=np.uint8)
    plain, y = next(iter(make_pipeline(images, labels, 8, seed=3, shuffle=False)))
    first, y1 = next(iter(make_pipeline(images, labels, 8, seed=3, shuffle=False, augment=True)))
    again, _ = next(iter(make_pipeline(images, labels, 8, seed=3, shuffle=False, augment=True)))
    np.testing.assert_array_equal(y1.numpy(), y.numpy())
    np.testing.assert_allclose(first.numpy(), again.numpy(), atol=1e-6)  # seeded
    moved = np.abs(first.numpy() - plain.numpy()).reshape(8, -1).max(1)
    assert (moved > 0.1).all()  # every image was transformed
    assert first.numpy().min() >= -1e-6 and first.numpy().max() <= 1 + 1e-6
    # Small ranges: the square's brightness stays about the same (no flips, no crops off the image).
    np.testing.assert_allclose(first.numpy().sum((1, 2, 3)), plain.numpy().sum((1, 2, 3)), rtol=0.25)


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_with_augmentation(tmp_path, fixture_data_dir):
    from tests.conftest import run_process

    proc = run_process(["train", "--strategy", "mirrored", "--devices", "2", "--augment", "--epochs", "10",
                        "--batch-size", "32", "--dataset", "fashion-mnist", "--data-dir", fixture_data_dir,
                        "--out", tmp_path], timeout=600)
    assert proc.returncode == 0, proc.stderr[-1500:]
    history = json.loads((tmp_path / "history.json").read_text())
    assert (history["strategy"], history["replicas"], history["global_batch_size"]) == ("mirrored", 2, 64)
    augment = history["augment"]  # Fashion-MNIST's preset: flips and 2-pixel shifts, no rotation
    assert (augment["preset"], augment["flips"], augment["rotation_degrees"]) == ("clothes", True, 0.0)
    assert history["test_accuracy"] > 0.3  # 10 passes over the 64 images: 40.2% here, the same on every run


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_with_two_local_workers(tmp_path, fixture_data_dir):
    """Two real worker processes on loopback ports; both finish by themselves within the timeout,
    the chief writes the model and non-chief worker 1 writes nothing."""
    import subprocess
    import sys

    from tests.conftest import FIXTURES

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        args = [sys.executable, "-m", "edge_mnist.cli", "train", "--strategy", "multiworker", "--epochs", "1",
                "--batch-size", "32", "--dataset", "fashion-mnist", "--data-dir", str(fixture_data_dir),
                "--out", str(tmp_path / f"worker{index}")]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      cwd=FIXTURES.parent.parent,
                                      env={**__import__("os").environ, "TF_CONFIG": config}))
    try:
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err[-800:] for _, err in results]
    history = json.loads((tmp_path / "worker0" / "history.json").read_text())
    assert (history["strategy"], history["replicas"], history["global_batch_size"]) == ("multiworker", 2, 64)
    assert not (tmp_path / "worker1" / "model_float32.keras").exists()


@pytest.mark.parametrize("args, env, message", [
    (["--devices", "2"], {}, "--devices is for --strategy mirrored"),
    (["--strategy", "multiworker"], {"TF_CONFIG": ""}, "--strategy multiworker needs TF_CONFIG"),
])
def test_strategy_misuse_is_one_line_exit_2(args, env, message, tmp_path, fixture_data_dir, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_cli(["train", *args, "--dataset", "fashion-mnist", "--data-dir", str(fixture_data_dir),
                            "--out", str(tmp_path)])
    assert code == 2 and message in err.strip().splitlines()[-1], err


@pytest.mark.tf
def test_each_dataset_augments_as_suits_it_and_the_cosine_rate_spans_the_run(fixture_data_dir):
    """Fashion-MNIST's --augment flips and shifts (no rotation or zoom), MNIST's rotates, shifts and zooms
    (no flip); --lr-schedule cosine decays the rate towards 0 over exactly the run's steps."""
    from edge_mnist.data import load_dataset
    from edge_mnist.registry.models import build
    from edge_mnist.train import augment_preset, augmenter, fit

    data = load_dataset("fashion-mnist", fixture_data_dir)
    assert augment_preset(data) == "clothes"
    kinds = {preset: [type(layer).__name__ for layer in augmenter(0, preset).layers]
             for preset in ("clothes", "digits")}
    assert kinds == {"clothes": ["RandomFlip", "RandomTranslation"],
                     "digits": ["RandomRotation", "RandomTranslation", "RandomZoom"]}
    model = build("mlp", data.task)
    fit(model, data, epochs=2, batch_size=16, seed=0, learning_rate=0.01, lr_schedule="cosine")
    optimizer = model.optimizer
    assert int(optimizer.iterations) == 2 * 4  # 64 images in batches of 16
    # the rate of the last of the 8 steps: cosine decay over exactly the 8 steps of the run
    assert float(optimizer.learning_rate) == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 7 / 8)), rel=1e-5)
    schedule = optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay" and schedule["config"]["initial_learning_rate"] == 0.01


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """400 of scikit-learn's real 8x8 digits (0..16 scaled to uint8) as a PNG image folder: 300 train, 100 test."""
    from PIL import Image

    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    root = tmp_path_factory.mktemp("stream") / "digits"
    for i, (image, label) in enumerate(zip(np.round(bunch.images[:400] * (255 / 16)).astype(np.uint8), bunch.target)):
        folder = root / ("train" if i < 300 else "test") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


def epoch(pipeline) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a pipeline: its images back as uint8 and its labels, in the order they came."""
    batches = [(x.numpy(), y.numpy()) for x, y in pipeline]
    return (np.round(np.concatenate([x for x, _ in batches]) * 255).astype(np.uint8),
            np.concatenate([y for _, y in batches]))


def as_multiset(images: np.ndarray, labels: np.ndarray) -> list[tuple[int, bytes]]:
    """(label, pixels) pairs in sorted order: what an epoch holds regardless of order."""
    return sorted(zip(labels.tolist(), (image.tobytes() for image in images)))


def test_a_folder_streams_the_images_and_labels_the_arrays_would_give(digits_folder):
    from edge_mnist.train import make_pipeline
    from edge_mnist.userdata import FileImages, load_folder

    data = load_folder(digits_folder)
    assert isinstance(data.x_train, FileImages)
    decoded = data.x_train[:]
    streamed = make_pipeline(data.x_train, data.y_train, 64, seed=3, shuffle=True)
    first, second = epoch(streamed), epoch(streamed)
    expected = as_multiset(decoded[..., None], data.y_train)
    assert as_multiset(*first) == expected and as_multiset(*second) == expected  # every image once per epoch
    assert first[1].tolist() != second[1].tolist()  # reshuffled each epoch
    again = epoch(make_pipeline(data.x_train, data.y_train, 64, seed=3, shuffle=True))
    in_memory = epoch(make_pipeline(decoded, data.y_train, 64, seed=3, shuffle=True))
    for images, labels in (again, in_memory):  # the same order for the same seed, from files or from memory
        np.testing.assert_array_equal(images, first[0])
        np.testing.assert_array_equal(labels, first[1])
    augmented = epoch(make_pipeline(data.x_train, data.y_train, 64, seed=3, shuffle=True, augment=True))
    np.testing.assert_array_equal(augmented[1], first[1])
    assert augmented[0].shape == first[0].shape and (augmented[0] != first[0]).any()


def test_streamed_pixels_are_userdatas_decode_for_png_jpeg_and_bmp(digits_folder, tmp_path):
    """Grey PNGs, a colour JPEG stored sideways (EXIF orientation 6) and a BMP of another size, read as RGB at
    one size: every streamed image equals userdata.decode of its file, and colour batches have four axes."""
    from PIL import Image

    from edge_mnist.train import make_pipeline
    from edge_mnist.userdata import decode, load_folder

    root = shutil.copytree(digits_folder, tmp_path / "mixed")
    rgb = np.random.default_rng(0).integers(0, 256, (8, 12, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(root / "train" / "3" / "photo.jpg", exif=exif)
    Image.fromarray(rgb[:, :10]).save(root / "train" / "5" / "drawing.bmp")
    data = load_folder(root, channels=3, image_size=(10, 9))
    images, labels = epoch(make_pipeline(data.x_train, data.y_train, 32, seed=0, shuffle=False))
    assert images.shape == (302, 10, 9, 3)
    expected = np.stack([decode(root / relative, (10, 9, 3)) for relative in data.x_train.relatives])
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, data.y_train)
    assert {Path(r).suffix for r in data.x_train.relatives} == {".png", ".jpg", ".bmp"}
    colour, _ = next(iter(make_pipeline(expected, data.y_train, 32, seed=0, shuffle=False)))
    assert colour.shape == (32, 10, 9, 3)  # in memory too: no fifth axis for colour arrays
