"""The architecture registry: each model the toolkit trains, built for a dataset's task.

Models are built with tf_keras (Keras 2) because tensorflow-model-optimization rejects Keras 3
models; TensorFlow is imported only when a model is built. Adding an architecture is one
builder function and one `Architecture` entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.tfenv import import_tf
from edge_mnist.registry.datasets import Task


@dataclass(frozen=True)
class Architecture:
    """A registered model: its builder and the parameter count it has on a 28x28x1, 10-class task."""

    name: str
    build: Callable[[Task], object]
    mnist_parameters: int
    spec: str
    note: str = ""

    @property
    def min_side(self) -> int:
        """The smallest image side (pixels) the architecture takes: below it a valid conv or a pool leaves no
        pixel."""
        return next(side for side in range(1, 4097) if output_side(self.spec, side) >= 1)

    def describe(self) -> str:
        """One line for --help and the README: the layers in the notebooks' notation, parameters, note."""
        layers = " ".join(self.spec.split())
        note = f"; {self.note}" if self.note else ""
        return f"{self.name}: {layers}, {self.mnist_parameters:,} parameters{note}"


LAYER_CODES = {"C": "conv", "P": "pool", "D": "dropout", "B": "bn", "F": "flatten", "H": "dense"}


def conv_args(arg: str) -> tuple[int, int, int, str, bool]:
    """A conv token's argument (`32:3`, `32:5s`, `16:3/2`, `16:3sn`) -> filters, kernel, stride, padding and
    whether BatchNorm sits before the ReLU."""
    flags = arg[len(arg.rstrip("sn")):]
    shape, _, stride = arg.rstrip("sn").partition("/")
    filters, kernel = shape.split(":")
    return int(filters), int(kernel), int(stride or 1), "same" if "s" in flags else "valid", "n" in flags


def output_side(spec: str, side: int) -> int:
    """The side of the feature map a spec leaves from a `side`-pixel image, 0 once a layer leaves no pixel
    (Keras' arithmetic: a valid conv k shrinks by k - 1, strides and 2x2 pools divide, flooring)."""
    for token in spec.split():
        if token[0] == "C":
            _, kernel, stride, padding, _ = conv_args(token[1:])
            side = -(-side // stride) if padding == "same" else (side - kernel) // stride + 1
        elif token[0] == "P":
            side //= 2
        if side < 1:
            return 0
    return side


def _layer(keras, token: str, name: str) -> list:
    """The layers of one spec token (see `spec_model`); every hidden Conv and Dense is ReLU. A conv token
    ending in `n` is Conv (no bias) -> BatchNorm -> ReLU, which the TFLite converter folds into one
    int8 convolution."""
    layers, code, arg = keras.layers, token[0], token[1:]
    if code == "C":
        filters, kernel, stride, padding, batch_norm = conv_args(arg)
        conv = dict(strides=stride, padding=padding, name=name)
        if batch_norm:
            return [layers.Conv2D(filters, kernel, use_bias=False, **conv),
                    layers.BatchNormalization(name=f"{name}_bn"), layers.ReLU(name=f"{name}_relu")]
        return [layers.Conv2D(filters, kernel, activation="relu", **conv)]
    if code == "H":
        return [layers.Dense(int(arg), activation="relu", name=name)]
    if code == "D":
        return [layers.Dropout(float(arg), name=name)]
    return [{"P": layers.MaxPooling2D, "B": layers.BatchNormalization, "F": layers.Flatten}[code](name=name)]


def _names(tokens: list[str]) -> list[str]:
    """Layer names: conv1, pool1, dense1, ... always numbered; bn, dropout and flatten numbered only
    when the model has more than one (so the reference CNN keeps its names: bn, dropout, flatten)."""
    kinds = [LAYER_CODES[t[0]] for t in tokens]
    seen: dict[str, int] = {}
    names = []
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        numbered = kind in ("conv", "pool", "dense") or kinds.count(kind) > 1
        names.append(f"{kind}{seen[kind]}" if numbered else kind)
    return names


def spec_model(name: str, spec: str, task: Task):
    """A Sequential model from a spec: tokens `C32:3` (Conv 32 3x3 valid; `C32:5s` same padding; `C16:3/2`
    stride 2; `C16:3sn` same padding with BatchNorm before the ReLU),
    `P` (MaxPool 2x2), `D0.5` (Dropout), `B` (BatchNorm), `F` (Flatten), `H128` (Dense 128), then
    the Dense softmax output `probs` sized by the task. One builder for every architecture keeps
    them comparable and their definitions one line each."""
    _, keras = import_tf()
    tokens = spec.split()
    hidden = [layer for token, layer_name in zip(tokens, _names(tokens)) for layer in _layer(keras, token, layer_name)]
    return keras.Sequential(
        [keras.layers.Input(task.input_shape, name="image"), *hidden,
         keras.layers.Dense(task.num_classes, activation="softmax", name="probs", dtype="float32")],
        name=name,
    )


def _registered(name: str, spec: str, parameters: int, note: str = "") -> Architecture:
    """An `Architecture` built by `spec_model` from `spec`."""
    return Architecture(name, lambda task: spec_model(name, spec, task), parameters, spec, note)


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    _registered("reference_cnn", "C32:3 P C64:3 P F H512 B D0.5", 845_706, "the reference MNIST CNN (default)"),
    _registered("cnn_dense128", "C32:3 P C64:3 P F H128", 225_034),
    _registered("mlp", "F H256 D0.2 H256 D0.2", 269_322),
    _registered("conv3", "C16:3 C32:3 C64:3 P F H64", 519_626),
    _registered("conv3_bn", "C32:3s C16:3 P D0.5 C32:3 P B F H64 D0.5 B", 61_882),
    _registered("conv5x5_deep", "C32:5s C128:5s P D0.25 C64:5s P D0.25 C64:5s B C32:5s P D0.25 F H128 B D0.5",
                500_970, "the notebooks' best: 99.51% on MNIST after 10 epochs"),
    _registered("conv7", "C64:7s C128:2s C64:2s P D0.25 C64:3s C32:2s P C32:3s C32:2s D0.25 B F H64 D0.5", 228_650),
    _registered("cnn5x5_dense64", "C32:5s P C64:5s P F H64", 253_514),
    _registered("cnn5x5_dense1024", "C32:5s P C64:5s P F H1024 D0.2", 3_274_634),
    _registered("compact", "C16:3sn P C32:3sn P C64:3sn P F H28", 40_078,
                "for microcontrollers: 48.6 KB int8, BatchNorm before each ReLU (folded at export); 92.0% "
                "Fashion-MNIST after 20 epochs with --augment --lr-schedule cosine --learning-rate 0.002"),
)}


def check_fits(name: str, task: Task) -> None:
    """Refuse an architecture whose layers would shrink the task's images to nothing, naming those that fit."""
    if name not in ARCHITECTURES:
        raise EdgeMnistError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    height, width = task.input_shape[:2]
    need = ARCHITECTURES[name].min_side
    if min(height, width) < need:
        fit = [a.name for a in ARCHITECTURES.values() if a.min_side <= min(height, width)]
        raise EdgeMnistError(f"--arch {name} needs images of at least {need}x{need} pixels, {task.dataset} images are "
                             f"{height}x{width}; architectures that fit: {', '.join(fit) or 'none'}")


def build(name: str, task: Task):
    """Build a registered architecture for `task` (its input shape and number of classes)."""
    check_fits(name, task)
    return ARCHITECTURES[name].build(task)
