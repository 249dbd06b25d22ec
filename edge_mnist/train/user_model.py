"""A user's own Keras model as the float reference of an export folder (`--model FILE`, no training).

Users save with Keras 3 (what TensorFlow 2.21 installs) or with tf_keras; tfmot and our
exporters work on tf_keras models. The file is first checked as JSON (keras_io.refuse_unsafe:
no Lambda, no custom classes, no foreign modules) and against the layers every int8 path here
supports, so an unsupported layer is one line naming it before anything is built. A Keras 3
file is then loaded by Keras 3 in safe mode and rebuilt layer by layer in tf_keras from its
stored graph, with the same weights; the two must compute the same outputs or the import is
refused. The copy written to the folder is what every artifact is exported from.
"""
from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import sha256_file, staged, writable_folder
from edge_mnist.core.keras_io import known_classes, load_keras, load_keras3, refuse_unsafe, save_keras, stored_config
from edge_mnist.core.lock import folder_lock
from edge_mnist.core.tfenv import import_tf
from edge_mnist.data import Dataset
from edge_mnist.folder.layout import CURVES_FILE, HISTORY_FILE, KERAS_FILE, STALE_AFTER_TRAINING
from edge_mnist.folder.records import History
from edge_mnist.registry.formats import OUTPUT_NAME
from edge_mnist.train import evaluate_keras

SUPPORTED_LAYERS = ("InputLayer", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization",
                    "ReLU", "Activation", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Flatten",
                    "Reshape", "Dropout", "Add")
ACTIVATIONS = ("linear", "relu", "relu6", "softmax")
UNUSED_AT_INFERENCE = ("_initializer", "_regularizer", "_constraint")
MAX_OUTPUT_DIFFERENCE = 1e-4


def _layer_entries(config: dict, path: Path) -> list[dict]:
    """The layer entries of a Sequential or functional model config; nested models are refused."""
    if config.get("class_name") not in ("Sequential", "Functional", "Model"):
        raise EdgeMnistError(f"{path}: expected a Sequential or functional model, not {config.get('class_name')!r}")
    return list(config.get("config", {}).get("layers", []))


def _activation_name(value) -> str:
    """An activation as stored (a name, or a serialized object) -> its name."""
    if isinstance(value, dict):
        value = value.get("config", {}).get("name", value.get("class_name"))
    return str(value)


def check_supported(config: dict, path: Path) -> None:
    """Refuse, naming the layer, anything outside what every int8 path here handles."""
    supported = ", ".join(SUPPORTED_LAYERS)
    for entry in _layer_entries(config, path):
        cls, inner = entry.get("class_name"), entry.get("config", {})
        where = f"{path}: layer {inner.get('name', '?')!r} ({cls})"
        if cls not in SUPPORTED_LAYERS:
            raise EdgeMnistError(f"{where} is not supported; supported layers: {supported}")
        if inner.get("data_format") not in (None, "channels_last"):
            raise EdgeMnistError(f"{where}: only channels_last is supported")
        if "activation" in inner and _activation_name(inner["activation"]) not in ACTIVATIONS:
            raise EdgeMnistError(f"{where}: activation {_activation_name(inner['activation'])!r} is not supported; "
                                 f"supported: {', '.join(ACTIVATIONS)}")
        if cls == "ReLU" and (inner.get("negative_slope") or inner.get("threshold")
                              or inner.get("max_value") not in (None, 6, 6.0)):
            raise EdgeMnistError(f"{where}: only ReLU and ReLU6 are supported (no slope, threshold or other cap)")
        if len(entry.get("inbound_nodes") or [None]) > 1:
            raise EdgeMnistError(f"{where} is used more than once; shared layers are not supported")


def keras_version(path: Path) -> str:
    """The Keras version that saved a .keras file (its metadata.json); '2' for HDF5 files."""
    if Path(path).suffix.lower() != ".keras":
        return "2"
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json")).get("keras_version", "2"))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise EdgeMnistError(f"{path}: cannot read metadata.json ({exc})") from exc


def _tf_keras_layer(tfk, entry: dict, path: Path):
    """The tf_keras layer for one Keras 3 layer entry: same class and options; initializers,
    regularizers and constraints are left out (the weights are copied), and an option tf_keras
    does not know is dropped only when it is unset."""
    cls = getattr(tfk.layers, entry["class_name"])
    config = {k: v for k, v in entry["config"].items() if not k.endswith(UNUSED_AT_INFERENCE)}
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = config["dtype"].get("config", {}).get("name", "float32")
    if "activation" in config:
        config["activation"] = _activation_name(config["activation"])
    accepted = {"name", "trainable", "dtype"}.union(*(inspect.signature(base.__init__).parameters
                                                      for base in cls.__mro__ if "__init__" in vars(base)))
    for key in [k for k in config if k not in accepted]:
        if config[key] not in (None, False):
            raise EdgeMnistError(f"{path}: layer {config.get('name')!r}: option {key}={config[key]!r} "
                                 "has no tf_keras equivalent")
        del config[key]
    return cls(**config)


def _tf_keras_layers(tfk, entry: dict, path: Path) -> list:
    """The tf_keras layer for one Keras 3 entry, with a fused relu6 split off into a ReLU(6) layer
    after it: the same function, and tfmot quantizes a ReLU layer but refuses relu6 as a layer's
    own activation."""
    layer = _tf_keras_layer(tfk, entry, path)
    if _activation_name(entry["config"].get("activation")) != "relu6":
        return [layer]
    config = layer.get_config()
    config["activation"] = "linear"
    return [type(layer).from_config(config), tfk.layers.ReLU(6.0, name=f"{layer.name}_relu6")]


def _resolve(node, tensors: dict):
    """A stored call argument with every Keras 3 tensor reference replaced by the rebuilt tensor."""
    if isinstance(node, dict) and node.get("class_name") == "__keras_tensor__":
        return tensors[node["config"]["keras_history"][0]]
    if isinstance(node, list):
        return [_resolve(item, tensors) for item in node]
    if isinstance(node, dict):
        return {key: _resolve(value, tensors) for key, value in node.items()}
    return node


def _endpoints(spec) -> list[str]:
    """Layer names of a functional config's input_layers/output_layers (one [name, 0, 0] or a list of them)."""
    return [spec[0]] if spec and isinstance(spec[0], str) else [item[0] for item in spec]


def _input(tfk, entry: dict):
    """A tf_keras Input for a Keras 3 InputLayer entry (same shape and name)."""
    return tfk.Input(tuple(entry["config"]["batch_shape"][1:]), name=entry["config"]["name"])


def rebuild_in_tf_keras(config: dict, path: Path):
    """A tf_keras model with the graph of a Keras 3 model config (weights not yet set): a Sequential
    stays Sequential; a functional graph is wired from each layer's stored call arguments."""
    _, tfk = import_tf()
    entries, inner = _layer_entries(config, path), config["config"]
    name = inner.get("name", "user_model")
    if config["class_name"] == "Sequential":
        if not entries or entries[0]["class_name"] != "InputLayer":
            raise EdgeMnistError(f"{path}: a Sequential model without an Input layer is not supported")
        layers = [layer for e in entries[1:] for layer in _tf_keras_layers(tfk, e, path)]
        return tfk.Sequential([_input(tfk, entries[0]), *layers], name=name)
    tensors: dict = {}
    for entry in entries:
        if entry["class_name"] == "InputLayer":
            tensors[entry["config"]["name"]] = _input(tfk, entry)
            continue
        node = entry["inbound_nodes"][0]
        first, *rest = _tf_keras_layers(tfk, entry, path)
        tensor = first(*_resolve(node["args"], tensors), **_resolve(node.get("kwargs", {}), tensors))
        for layer in rest:
            tensor = layer(tensor)
        tensors[entry["config"]["name"]] = tensor
    return tfk.Model([tensors[n] for n in _endpoints(inner["input_layers"])],
                     [tensors[n] for n in _endpoints(inner["output_layers"])], name=name)


def _from_keras3(path: Path, config: dict):
    """Load a Keras 3 file with Keras 3 (keras_io's safe loader) and return the same model in tf_keras."""

    original = load_keras3(path)
    model = rebuild_in_tf_keras(config, path)
    for layer in model.layers:
        weights = layer.get_weights() and original.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(weights)
    probe = np.random.default_rng(0).random((8, *model.input_shape[1:]), dtype=np.float32)
    difference = float(np.abs(np.asarray(original(probe, training=False)) - model(probe, training=False).numpy()).max())
    if not difference <= MAX_OUTPUT_DIFFERENCE:
        raise EdgeMnistError(f"{path}: the tf_keras copy differs from the Keras 3 model by {difference:.2g}; "
                             "a layer option is not supported")
    return model


def with_softmax(model):
    """`model` ending in softmax: a model that outputs logits gets a Softmax layer (argmax unchanged),
    so every artifact's output is class probabilities, as the metadata says."""
    _, tfk = import_tf()
    last = model.layers[-1]
    if _activation_name(last.get_config().get("activation")) == "softmax" or type(last).__name__ == "Softmax":
        return model
    softmax = tfk.layers.Activation("softmax", name=OUTPUT_NAME)
    if isinstance(model, tfk.Sequential):  # stays Sequential, so QAT can fold its BatchNorms
        return tfk.Sequential([tfk.Input(model.input_shape[1:]), *model.layers, softmax], name=model.name)
    return tfk.Model(model.inputs, softmax(model.outputs[0]), name=model.name)


def check_io(model, dataset: Dataset, path: Path) -> None:
    """One input of the dataset's image shape, one output with one value per class."""
    task = dataset.task
    if len(model.inputs) != 1 or tuple(model.input_shape[1:]) != tuple(task.input_shape):
        raise EdgeMnistError(f"{path}: the model's input is {model.input_shape}; expected one input of shape "
                             f"(None, {', '.join(map(str, task.input_shape))})")
    if len(model.outputs) != 1 or tuple(model.output_shape[1:]) != (task.num_classes,):
        raise EdgeMnistError(f"{path}: the model's output is {model.output_shape}; expected one output of shape "
                             f"(None, {task.num_classes}), one value per class of {task.dataset}")


def require_model_file(path: Path) -> None:
    """Refuse a --model path that is no file, before any data is read or downloaded for it."""
    if not Path(path).is_file():
        raise EdgeMnistError(f"{path}: model file not found")


def load_user_model(path: Path, dataset: Dataset):
    """A user's .keras/.h5 model, checked and as tf_keras, ending in softmax."""

    _, tfk = import_tf()
    path = Path(path)
    require_model_file(path)
    config = stored_config(path)
    builtin, _ = known_classes(tfk)
    refuse_unsafe(path, config, builtin)
    check_supported(config, path)
    version = keras_version(path)
    model = _from_keras3(path, config) if version.startswith("3") else load_keras(path)
    check_io(model, dataset, path)
    return with_softmax(model), version


def import_model(source: Path, out: Path, dataset: Dataset, *, wait: bool = False) -> dict:
    """Copy a user's model into DIR as model_float32.keras with a history.json saying where it came from.

    The previous model's artifacts and records leave in the same swap (as after training), so
    the folder never mixes two models. DIR's lock is held throughout (core.lock; `wait` waits for
    another writer).
    """

    tf, _ = import_tf()
    out = Path(out)
    writable_folder(out)
    with folder_lock(out, "import", wait, create=True):
        model, version = load_user_model(source, dataset)
        accuracy = evaluate_keras(model, dataset, str(source))
        record = {
            "config": {"architecture": f"user model {model.name}"}, **dataset.history_fields(),
            "parameters": int(model.count_params()),
            "test_accuracy": accuracy, "tensorflow": tf.__version__,
            "source_model": {"path": str(Path(source).resolve()), "sha256": sha256_file(source),
                             "keras_version": version},
        }
        with staged(out, drop=STALE_AFTER_TRAINING + (CURVES_FILE,), last=(HISTORY_FILE,)) as stage:
            save_keras(model, stage / KERAS_FILE)
            record["keras_sha256"] = sha256_file(stage / KERAS_FILE)
            History.write(stage / HISTORY_FILE, record)
        return record
