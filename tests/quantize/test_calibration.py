"""calibration.py: the calibration images are a seeded subset of the training split, also when that split is an
image folder's files (decoded only for the images drawn)."""
from __future__ import annotations

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import to_float
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.userdata import FileImages, load_folder
from tests.test_userdata import write_folder


def test_a_folders_calibration_images_are_the_ones_its_decoded_split_gives(tmp_path):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    images, labels = np.round(bunch.images[:200] * (255 / 16)).astype(np.uint8), bunch.target[:200]
    names = [str(i) for i in range(10)]
    data = load_folder(write_folder(tmp_path / "d", {"train": (images[:150], labels[:150]),
                                                     "test": (images[150:], labels[150:])}, names))
    assert isinstance(data.x_train, FileImages)
    calib = calibration_images(data, 40, seed=5)
    drawn = np.sort(np.random.default_rng(5).choice(150, 40, replace=False))
    np.testing.assert_array_equal(calib, to_float(data.x_train[:][drawn]))
    assert calib.shape == (40, 8, 8, 1)
    with pytest.raises(EdgeMnistError, match="1..150"):
        calibration_images(data, 151, seed=5)
