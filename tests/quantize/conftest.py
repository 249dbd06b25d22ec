"""Shared by the quantize tests that need a trained model: the medium Fashion-MNIST subset, the reference CNN
and compact trained on it (once per session), and `export --int8 --model` in process."""
from __future__ import annotations

import pytest

from edge_mnist.config import ExportConfig
from edge_mnist.folder.opener import read_folder

CALIB = 100  # the calibration size these folders are exported with (debug must be given the same)


def quiet(*_):
    """Progress sink."""


def train_once(arch: str, data, tmp_path_factory, epochs: int = 1, batch_size: int = 64):
    """A folder with `arch` trained on `data`."""
    from edge_mnist.train import TrainConfig, train

    out = tmp_path_factory.mktemp(f"trained_{arch}")
    train(data, out, TrainConfig(epochs=epochs, batch_size=batch_size, architecture=arch))
    return out


def imported(source, out, data, fallback=None, methods=("ptq",), **options):
    """`export --int8 --method ... --model source` into `out`, in process, with `--fallback` aiming at the gate's
    Criteria `fallback` when given (`options`: ExportConfig's fields, e.g. equalize)."""
    from edge_mnist.export import export
    from edge_mnist.train.user_model import import_model

    import_model(source, out, data)
    settings = {"fallback": True, "criteria": fallback} if fallback is not None else {}
    export(read_folder(out, data, exported=False), ExportConfig(methods, calib_samples=CALIB, **settings, **options),
           progress=quiet)
    return out


@pytest.fixture(scope="session")
def data(medium_fashion_dir):
    """The medium Fashion-MNIST subset (12,000 train / 5,000 test)."""
    from edge_mnist.data import load_dataset

    return load_dataset("fashion-mnist", medium_fashion_dir)


@pytest.fixture(scope="session")
def trained(data, tmp_path_factory):
    """The reference CNN trained one epoch on 12,000 images: 500 test images per class keep the gate's
    per-class criterion meaningful (the session's tiny export has 100)."""
    return train_once("reference_cnn", data, tmp_path_factory)


@pytest.fixture(scope="session")
def trained_compact(data, tmp_path_factory):
    """compact (Conv -> BatchNorm -> ReLU blocks) trained on the same images: 3 epochs of batch 32, since after one
    epoch its BatchNorm moving statistics still lag the weights (test accuracy near 35%)."""
    return train_once("compact", data, tmp_path_factory, epochs=3, batch_size=32)
