"""The one place Keras model files are read and written (TensorFlow imported when called).

Loading a Keras file can run code: a Lambda layer stores Python bytecode, HDF5 files are
read without Keras' safe mode, and a config can name any module to import. So every load
goes through `load_keras`, which first reads the stored config as plain JSON (from the .keras
zip or the HDF5 attribute), refuses Lambda layers, layers that call a TensorFlow function by
name, classes it does not know and modules outside Keras and tfmot, and only then lets Keras
build the model (with safe_mode for .keras files). The toolkit's own files are also checked
against the sha256 recorded when they were written.
"""
from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_output, atomic_write_bytes, sha256_file
from edge_mnist.core.tfenv import import_tf

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
REFUSED = {"Lambda": "runs Python code stored in the file", "__lambda__": "runs Python code stored in the file",
           "TFOpLambda": "calls a TensorFlow function named in the file",
           "SlicingOpLambda": "calls a TensorFlow function named in the file"}
MODEL_CLASSES = {"Sequential", "Functional", "Model", "Policy", "DTypePolicy", "FloatDTypePolicy", "__tensor__",
                 "__keras_tensor__", "__numpy__", "__typespec__", "TensorShape"}
ALLOWED_MODULES = ("keras", "tf_keras", "tensorflow_model_optimization")
MAX_CONFIG_BYTES = 16 << 20


def _magic(path: Path) -> bytes:
    """The first bytes of a file, to tell a zip from HDF5 whatever the suffix says."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8)
    except OSError as exc:
        raise EdgeMnistError(f"{path}: cannot read ({exc.strerror})") from exc


def stored_config(path: Path) -> dict:
    """The model config stored in a .keras zip or an HDF5 file, as JSON, without building anything."""
    path = Path(path)
    magic = _magic(path)
    expected = {".keras": ZIP_MAGIC, ".h5": HDF5_MAGIC, ".hdf5": HDF5_MAGIC}.get(path.suffix.lower())
    if expected is None:
        raise EdgeMnistError(f"{path}: not a Keras model file (expected .keras or .h5)")
    if not magic.startswith(expected):
        kind = "a zip" if magic.startswith(ZIP_MAGIC) else "HDF5" if magic.startswith(HDF5_MAGIC) else "unknown"
        raise EdgeMnistError(f"{path}: the content is {kind} data, which does not match its {path.suffix} suffix")
    try:
        if expected == ZIP_MAGIC:
            with zipfile.ZipFile(path) as archive:
                if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                    raise ValueError("config.json is too large")
                config = json.loads(archive.read("config.json"))
                config.pop("compile_config", None)  # never used: models load with compile=False
                return config
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            if raw is None:
                raise ValueError("no model_config attribute (a weights-only file?)")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, RecursionError) as exc:
        raise EdgeMnistError(f"{path}: cannot read the stored model config ({exc})") from exc


def _objects(config):
    """Every serialized object (a dict with a class_name) in a config, depth first."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def known_classes(keras) -> tuple[set[str], set[str]]:
    """(Keras classes a config may name, tfmot QAT classes): built-in layers, initializers and the like."""
    names = set(MODEL_CLASSES)
    for module in (keras.layers, keras.initializers, keras.regularizers, keras.constraints):
        names |= {n for n in dir(module) if n[:1].isupper()}
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError:
        return names - set(REFUSED), set()
    qat = set()
    for objects in tfmot.quantization.keras.quantize_scope().custom_objects:
        qat |= set(objects)
    return names - set(REFUSED), qat


def refuse_unsafe(path: Path, config: dict, allowed: set[str]) -> set[str]:
    """Raise naming the first layer that could run code or is unknown; return the class names used."""
    used = set()
    for obj in _objects(config):
        name = str(obj.get("class_name"))
        inner = obj.get("config")
        layer = inner.get("name") if isinstance(inner, dict) and isinstance(inner.get("name"), str) else None
        where = f"layer {layer!r} ({name})" if layer else name
        if name in REFUSED:
            raise EdgeMnistError(f"{path}: refused to load: {where} {REFUSED[name]}; rebuild the model without it")
        module = obj.get("module")
        if isinstance(module, str) and module and not module.split(".")[0] in ALLOWED_MODULES:
            raise EdgeMnistError(f"{path}: refused to load: {where} names module {module!r}, which is not Keras")
        if name not in allowed:
            raise EdgeMnistError(f"{path}: refused to load: {where} is not a built-in Keras layer; "
                                 "custom layers are not supported")
        used.add(name)
    return used


def load_keras(path: Path, sha256: str | None = None):
    """Load a Keras model without its optimizer, safely, or a one-line error naming the file.

    `sha256` (for the toolkit's own files) must match the file. QAT models (tfmot wrappers)
    are opened inside tfmot's scope when their config names its classes.
    """
    _, keras = import_tf()
    path = Path(path)
    if not path.is_file():
        raise EdgeMnistError(f"{path}: Keras model not found (run `edge-mnist train` first)")
    if sha256 is not None and sha256_file(path) != sha256:
        raise EdgeMnistError(f"{path}: sha256 does not match the one recorded when it was written; "
                             "retrain or re-export")
    builtin, qat = known_classes(keras)
    used = refuse_unsafe(path, stored_config(path), builtin | qat)
    options = {"compile": False, "safe_mode": True} if path.suffix == ".keras" else {"compile": False}
    if used & qat:
        import tensorflow_model_optimization as tfmot

        with tfmot.quantization.keras.quantize_scope():
            return _built(keras, path, options)
    return _built(keras, path, options)


def _built(keras, path: Path, options: dict):
    """`keras.models.load_model` (tf_keras or Keras 3) on a checked file; any failure is one line."""
    try:
        return keras.models.load_model(path, **options)
    except Exception as exc:  # Keras raises many types for a corrupt file
        raise EdgeMnistError(f"{path}: cannot load Keras model ({type(exc).__name__}: {str(exc)[:160]})") from exc


def load_keras3(path: Path):
    """Load a file saved by Keras 3 with Keras 3 itself, after the same JSON checks as `load_keras`,
    in safe mode (a user's model for `--model`, before it is rebuilt in tf_keras)."""
    _, tf_keras = import_tf()
    import keras

    path = Path(path)
    builtin, _ = known_classes(tf_keras)
    refuse_unsafe(path, stored_config(path), builtin)
    return _built(keras, path, {"compile": False, "safe_mode": True})


def inference_copy(model):
    """The same architecture and weights without optimizer state: a third of the file size."""
    _, keras = import_tf()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def save_keras(model, path: Path) -> None:
    """Save a Keras model atomically; the suffix picks the format (.keras zip or .h5 HDF5).

    HDF5 is built in memory and written by our own atomic writer: the HDF5 library crashes
    the process (SIGSEGV) when a write to disk fails, e.g. on a full disk.
    """
    path = Path(path)
    if path.suffix == ".h5":
        import io

        import h5py

        buffer = io.BytesIO()
        with warnings.catch_warnings(), h5py.File(buffer, "w") as handle:
            warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
            model.save(handle)
        atomic_write_bytes(path, buffer.getvalue())
        return
    with atomic_output(path) as tmp:
        model.save(tmp)
        keras3_compatible(Path(tmp))


def _scalar_batchnorm_axis(node) -> None:
    """Replace every BatchNormalization `axis: [n]` in a config tree by `axis: n`, in place."""
    if isinstance(node, dict):
        config = node.get("config")
        if node.get("class_name") == "BatchNormalization" and isinstance(config, dict):
            axis = config.get("axis")
            if isinstance(axis, list) and len(axis) == 1:
                config["axis"] = axis[0]
        for value in node.values():
            _scalar_batchnorm_axis(value)
    elif isinstance(node, list):
        for value in node:
            _scalar_batchnorm_axis(value)


def keras3_compatible(path: Path) -> None:
    """Rewrite a tf_keras .keras zip so plain Keras 3 loads it too.

    tf_keras writes BatchNormalization's axis as a one-element list, which Keras 3 rejects
    (int() of a list); both read a plain integer. A functional model's own entry names the module
    `tf_keras.src.engine.functional`, which Keras 3 cannot import; both read it as `keras.Model`,
    whose from_config builds the functional graph. Nothing else in the file changes.
    """
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if info.filename == "config.json":
                config = json.loads(data)
                _scalar_batchnorm_axis(config)
                if config.get("class_name") == "Functional" and str(config.get("module", "")).startswith("tf_keras"):
                    config.update(module="keras", class_name="Model", registered_name=None)
                data = json.dumps(config).encode()
            archive.writestr(info, data)
