"""models.py: the architecture registry and the reference architecture."""
from __future__ import annotations

import pytest

from edge_mnist.datasets import DATASETS
from edge_mnist.errors import EdgeMnistError
from edge_mnist.models import ARCHITECTURES, build

TASK = DATASETS["mnist"].task


@pytest.mark.tf
def test_reference_cnn_layout_and_parameters():
    model = build("reference_cnn", TASK)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense",
                     "BatchNormalization", "Dropout", "Dense"]
    # conv1 3*3*1*32+32, conv2 3*3*32*64+64, dense1 (5*5*64)*512+512, bn 4*512, dense2 512*10+10
    per_layer = [320, 0, 18_496, 0, 0, 819_712, 2_048, 0, 5_130]
    assert [layer.count_params() for layer in model.layers] == per_layer
    assert model.count_params() == sum(per_layer) == ARCHITECTURES["reference_cnn"].mnist_parameters


@pytest.mark.tf
def test_output_follows_the_task():
    from edge_mnist.datasets import Task

    letters = Task("letters", (28, 28, 1), tuple("abcdefghijklmnopqrstuvwxyz"), 20)
    assert build("reference_cnn", letters).output_shape == (None, 26)


@pytest.mark.device
def test_unknown_architecture_is_an_error():
    with pytest.raises(EdgeMnistError, match="unknown architecture 'resnet9000'; choose one of reference_cnn"):
        build("resnet9000", TASK)
