"""The architecture registry: each model the toolkit trains, built for a dataset's task.

Models are built with tf_keras (Keras 2) because tensorflow-model-optimization rejects Keras 3
models; TensorFlow is imported only when a model is built. Adding an architecture is one
builder function and one `Architecture` entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .datasets import Task
from .errors import EdgeMnistError
from .tfenv import import_tf


@dataclass(frozen=True)
class Architecture:
    """A registered model: its builder and the parameter count it has on a 28x28x1, 10-class task."""

    name: str
    build: Callable[[Task], object]
    mnist_parameters: int
    summary: str


def reference_cnn(task: Task):
    """Conv32-3x3, MaxPool, Conv64-3x3, MaxPool, Flatten, Dense512-ReLU, BatchNorm, Dropout 0.5, Dense-softmax."""
    _, keras = import_tf()
    layers = keras.layers
    return keras.Sequential(
        [
            layers.Input(task.input_shape, name="image"),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(512, activation="relu", name="dense1"),
            layers.BatchNormalization(name="bn"),
            layers.Dropout(0.5, name="dropout"),
            layers.Dense(task.num_classes, activation="softmax", name="probs", dtype="float32"),
        ],
        name="reference_cnn",
    )


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("reference_cnn", reference_cnn, 845_706,
                 "Conv32 3x3, MaxPool, Conv64 3x3, MaxPool, Dense512, BatchNorm, Dropout 0.5, Dense"),
)}


def build(name: str, task: Task):
    """Build a registered architecture for `task` (its input shape and number of classes)."""
    if name not in ARCHITECTURES:
        raise EdgeMnistError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name].build(task)
