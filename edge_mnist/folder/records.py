"""Typed records: manifest.json (what was exported), bench.json (what was measured) and history.json.

Each record declares its fields once (core.jsonio.json_field); its strict reader and its writer follow
from them: a missing field or one of the wrong type is a one-line EdgeMnistError naming the file and the
field, and manifest.json and bench.json carry a schema version. Predictions are integer
arrays (any number of classes). "Reference" and "source model" are defined here once:
- the reference is the float model every artifact's accuracy is compared with: the first
  measured format of formats.REFERENCE_ORDER (the Keras model where TensorFlow runs, else
  the float ONNX, else the float TFLite);
- an artifact's source model is the Keras model it was quantized from (Format.source): the
  float Keras model (stood in for by the reference) or the QAT Keras model, whose test-set
  predictions the manifest records because no device runtime can run it.
"""
from __future__ import annotations

import itertools
import platform
import re
from dataclasses import dataclass, field
from importlib import metadata
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_json
from edge_mnist.core.jsonio import Record, equal_to, expect, json_field, now, number, read_record, records, strings
from edge_mnist.core.machine import Machine
from edge_mnist.core.version import __version__
from edge_mnist.folder.layout import BENCH_FILE, HISTORY_FILE, MANIFEST_FILE
from edge_mnist.registry import formats
from edge_mnist.registry.datasets import Task, UserData, task_from_json, user_data_from_json
from edge_mnist.registry.methods import FLOAT, QAT_KERAS

SCHEMA = 2
LATENCY_KEYS = ("p50", "p90", "p99")
_VERSIONED = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
              "onnxruntime", "ai-edge-litert", "numpy")
_SHA256 = re.compile("[0-9a-f]{64}")


def _predictions(value: Any, where: str, seen: dict) -> np.ndarray:
    """A list of class indices as an int array, each within 0..num_classes-1 (the reader's context)."""
    num_classes = seen["num_classes"]
    items = expect(value, list, where)
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < num_classes for v in items):
        raise EdgeMnistError(f"{where}: expected a non-empty list of class indices 0..{num_classes - 1}")
    return np.asarray(items, dtype=np.int64)


def _test_indices(value: Any, where: str, seen: dict) -> np.ndarray:
    """The ascending test-set indices a row was measured on (a stratified subset; null, or absent as in
    records written before subsets, is the whole test set)."""
    items = expect(value, list, where)
    if (not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items)
            or any(b <= a for a, b in itertools.pairwise(items))):
        raise EdgeMnistError(f"{where}: expected null or a non-empty ascending list of test-image indices")
    return np.asarray(items, dtype=np.int64)


def _sha256(value: Any, where: str, seen: dict | None = None) -> str:
    """A sha256 as lowercase hex."""
    if not _SHA256.fullmatch(expect(value, str, where)):
        raise EdgeMnistError(f"{where}: not a sha256 hex digest")
    return value


def _is_none(value: Any) -> bool:
    """Left out of the JSON when None (written only when there is one)."""
    return value is None


def _is_empty(value: Any) -> bool:
    """Left out of the JSON when empty."""
    return not value


def tool_versions() -> dict[str, str]:
    """Versions of edge-mnist and of the installed packages that shape an artifact."""

    versions = {"python": platform.python_version(), "edge-mnist": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _shape(value: Any, where: str, seen: dict) -> list[int]:
    """A tensor shape: a list of integers (-1 for the batch)."""
    shape = expect(value, list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise EdgeMnistError(f"{where}: expected integers")
    return shape


def _float_input(seen: dict) -> bool:
    """A float32 input has no quantization (scale and zero point null)."""
    return seen["dtype"] == "float32"


@dataclass
class InputSpec(Record):
    """A model's input as read back from the file: shape, dtype and int8 quantization."""

    shape: list[int] = json_field(parse=_shape)
    dtype: str = json_field(str, choices=("float32", "int8", "uint8"))
    scale: float | None = json_field(float, low=1e-12, nullable=_float_input, default=None)
    zero_point: int | None = json_field(int, nullable=_float_input, default=None)


def _registered(value: Any, where: str, seen: dict) -> str:
    """The registered key of a record entry: a format key (manifest) or a run key (bench), seen["keys"]."""
    key = expect(value, str, where)
    if key not in seen["keys"]:
        raise EdgeMnistError(f"{where}: unknown artifact format {key!r}")
    return key


def _registered_file(value: Any, where: str, seen: dict) -> str:
    """The file name of an entry: the registered format's."""
    entry = seen["keys"][seen["key"]]
    expected = entry.fmt.file if isinstance(entry, formats.Run) else entry.file
    file = expect(value, str, where)
    if file != expected:
        raise EdgeMnistError(f"{where}: {file!r} is not {expected!r}")
    return file


_DESCRIBED = (("runtime", attrgetter("runtime")), ("precision", attrgetter("fmt.precision")),
              ("method", attrgetter("fmt.method")), ("notes", attrgetter("fmt.notes")))


@dataclass
class _FileEntry(Record):
    """A file of the folder by format key: what manifest and bench entries share; the registry's description
    of the format follows the file name for readers of the file."""

    key: str = json_field(parse=_registered)
    file: str = json_field(parse=_registered_file, then=_DESCRIBED)
    sha256: str = json_field(parse=_sha256)
    size_bytes: int = json_field(int, low=1)

    KEYS: ClassVar[dict] = formats.BY_KEY

    @property
    def fmt(self) -> formats.Format:
        """The registry entry this file is an instance of."""
        return formats.RUNS[self.key].fmt if self.key in formats.RUNS else formats.BY_KEY[self.key]

    @property
    def runtime(self) -> str | None:
        """The runtime this entry is about: the run's (bench rows), else the format's own."""
        return formats.RUNS[self.key].runtime if self.key in formats.RUNS else self.fmt.runtime

    @classmethod
    def from_json(cls, raw: Any, where: str, **context: Any) -> "_FileEntry":
        """Strict parse; the key must be registered (in KEYS) and the file name the registered one."""
        return super().from_json(raw, where, keys=cls.KEYS, **context)


def _parts(value: Any, where: str, seen: dict) -> dict[str, str]:
    """The further files of a format that spans a folder: path within DIR (in the entry file's folder) -> sha256."""
    parts = expect(value, dict, where)
    folder = Path(seen["file"]).parent
    for name, sha in parts.items():
        if Path(name).parent != folder or Path(name).name in ("", "..", "."):
            raise EdgeMnistError(f"{where}: {name!r} is not a file of {folder}/")
        _sha256(sha, f"{where}.{name}")
    return dict(parts)


@dataclass
class Artifact(_FileEntry):
    """One exported file: its format (by registry key), hash, size, input and how it was made; `parts` are
    the further files of a format that spans a folder (web/: the page's script, model and runtime), by sha256,
    written only for a format that has them."""

    input: InputSpec = json_field(InputSpec)
    details: dict[str, str] = json_field(parse=strings, default_factory=dict)
    parts: dict[str, str] = json_field(parse=_parts, nullable=True, omit=_is_empty, default_factory=dict)


@dataclass
class QatRecord(Record):
    """The QAT fine-tune: its Keras file and the test-set predictions of that Keras model."""

    epochs: int = json_field(int, low=1)
    keras_file: str = json_field(parse=equal_to(formats.QAT_KERAS_FILE), first=True)
    keras_sha256: str = json_field(str)
    accuracy: float = json_field(float, low=0, high=1)
    predictions: np.ndarray = json_field(parse=_predictions)
    history: dict = json_field(dict)


def _not_written(artifacts: dict, key: str) -> bool:
    """True when the artifact `key` is built from records that its exporter could not write it."""
    fmt = formats.BY_KEY[key]
    source = artifacts.get(fmt.built_from)
    return source is not None and f"not_written:{fmt.file}" in source.details


def _check_complete(artifacts: dict, path: str) -> None:
    """A manifest lists the float model and every format export writes for the methods it holds:
    an int8 file left out could otherwise escape the gate. The one exception is a file its exporter said it
    could not make (the interpreter-free C of a model with an operator it lacks): the file it is built from
    records why (details["not_written:FILE"]); and an optional format (web/), which an older export lacks."""
    methods = tuple(sorted({a.fmt.method for a in artifacts.values()} - {FLOAT.name}))
    required = ["keras_float32"] + [f.key for f in formats.for_methods(methods)]
    missing = [formats.BY_KEY[k].file for k in required
               if k not in artifacts and not _not_written(artifacts, k) and not formats.BY_KEY[k].optional]
    if missing:
        raise EdgeMnistError(f"{path}: artifacts: {', '.join(missing)} not listed, but export writes "
                             f"{'it' if len(missing) == 1 else 'them'} with the others; re-export")


def _task(value: Any, where: str, seen: dict) -> Task:
    """The task the folder's models solve."""
    return task_from_json(value, where)


def _user_data(value: Any, where: str, seen: dict) -> UserData | None:
    """A user's own dataset (written only then, so other records are unchanged)."""
    return user_data_from_json(value, where)


def _qat(value: Any, where: str, seen: dict) -> QatRecord:
    """The QAT record, its predictions within the task's classes."""
    return QatRecord.from_json(value, where, num_classes=seen["task"].num_classes)


def _artifacts(value: Any, where: str, seen: dict) -> dict[str, Artifact]:
    """The artifact list by format key."""
    return {artifact.key: artifact for artifact in records(Artifact, value, where)}


def _in_registry_order(artifacts: dict[str, Artifact]) -> list[dict]:
    """The artifact list as written: in registry order."""
    return [artifacts[f.key].to_json() for f in formats.FORMATS if f.key in artifacts]


@dataclass
class Manifest(Record):
    """manifest.json: the task, the float model the set was exported from, and every artifact."""

    SCHEMA = SCHEMA
    TOP = True

    created: str = json_field(str, default_factory=now, kw_only=True)
    task: Task = json_field(parse=_task)
    dataset_fingerprint: str = json_field(str)
    user_data: UserData | None = json_field(parse=_user_data, nullable=True, omit=_is_none, default=None,
                                            kw_only=True)
    keras_sha256: str = json_field(str)
    float_accuracy: float = json_field(float, low=0, high=1)
    versions: dict[str, str] = json_field(parse=strings, default_factory=tool_versions, kw_only=True)
    qat: QatRecord | None = json_field(parse=_qat, nullable=True, default=None, kw_only=True)
    artifacts: dict[str, Artifact] = json_field(parse=_artifacts, dump=_in_registry_order, default_factory=dict,
                                                kw_only=True)

    def float_layers(self) -> dict[str, str]:
        """Format key -> the layers `export --fallback` kept float, for each mixed int8/float artifact."""
        return {key: a.details["float_layers"] for key, a in self.artifacts.items() if a.details.get("float_layers")}

    def validate(self, where: str) -> None:
        """Every file export writes for the methods listed is listed."""
        _check_complete(self.artifacts, where)

    def save(self, out: Path) -> None:
        """Write DIR/manifest.json atomically."""
        atomic_write_json(Path(out) / MANIFEST_FILE, self.to_json())

    @classmethod
    def load(cls, out: Path) -> "Manifest":
        """Read DIR/manifest.json strictly."""
        path = Path(out) / MANIFEST_FILE
        return cls.from_json(read_record(path, "manifest (run `edge-mnist export` first)"), str(path))


def _untimed(seen: dict) -> bool:
    """Latency and throughput are null for a runtime whose timing here would mislead (TFLM)."""
    return not formats.RUNTIMES[formats.RUNS[seen["key"]].runtime].timed


def _latency(value: Any, where: str, seen: dict) -> dict[str, float]:
    """Single-image latency figures in microseconds (and the runs they came from): at least LATENCY_KEYS, each
    a number >= 0, every other a number; kept as written."""
    latency = expect(value, dict, where)
    for name in (*LATENCY_KEYS, *latency):
        number(latency.get(name), f"{where}.{name}", low=0 if name in LATENCY_KEYS else None)
    return dict(latency)


@dataclass(kw_only=True)
class BenchRow(_FileEntry):
    """One artifact measured under one runtime (key: a run key, formats.RUNS): accuracy, predictions and
    timing; latency and throughput are None for a runtime whose timing here would mislead (TFLM). `indices`
    are the test images a `subset` runtime ran on (predictions[i] is image indices[i]); None: all of them.
    n_samples, their number, is written for readers of the file and not read back."""

    KEYS: ClassVar[dict] = formats.RUNS

    accuracy: float = json_field(float, low=0, high=1, then=(("n_samples", attrgetter("n_samples")),))
    agreement: float | None = json_field(float, low=0, high=1, nullable=True, present=True, default=None)
    source_agreement: float | None = json_field(float, low=0, high=1, nullable=True, present=True, default=None)
    latency_us: dict[str, float] | None = json_field(parse=_latency, nullable=_untimed)
    throughput_ips: float | None = json_field(float, low=0, nullable=_untimed)
    predictions: np.ndarray = json_field(parse=_predictions)
    indices: np.ndarray | None = json_field(name="test_indices", parse=_test_indices, nullable=True, default=None)

    @property
    def n_samples(self) -> int:
        """Number of test images this row was measured on."""
        return len(self.predictions)

    def restrict(self, full: np.ndarray) -> np.ndarray:
        """A per-test-image array (labels, another row's predictions) on this row's images only."""
        return full if self.indices is None else full[self.indices]


@dataclass(frozen=True)
class Timing(Record):
    """How bench timed: `runs` single-image runs after `warmup` ones, and batch throughput's time budget."""

    runs: int = json_field(int, low=0)
    warmup: int = json_field(int, low=0)
    throughput_seconds: float = json_field(float, low=0)


@dataclass(frozen=True)
class Skipped(Record):
    """A run bench left out (`file`: its label, FILE@RUNTIME) and why."""

    file: str = json_field(str)
    reason: str = json_field(str)


def _reference_key(result: "BenchResult") -> str | None:
    """The reference's run key, for readers of bench.json."""
    reference = result.reference()
    return None if reference is None else reference.key


@dataclass(kw_only=True)
class BenchResult(Record):
    """bench.json: every artifact of a folder measured on one test set with one thread count; n_samples and
    the reference are written for readers of the file and not read back."""

    SCHEMA = SCHEMA
    TOP = True

    created: str = json_field(str, default_factory=now)
    dataset: str = json_field(str)
    user_data: UserData | None = json_field(parse=_user_data, nullable=True, omit=_is_none, default=None)
    dataset_fingerprint: str = json_field(str, then=(("n_samples", attrgetter("n_samples")),))
    threads: int = json_field(int, low=1)
    timing: Timing = json_field(Timing)
    machine: Machine = json_field(Machine, then=(("reference", _reference_key),))
    labels: np.ndarray = json_field(parse=_predictions)
    rows: list[BenchRow] = json_field(list, items=BenchRow)
    skipped: list[Skipped] = json_field(list, items=Skipped, default_factory=list)

    @property
    def n_samples(self) -> int:
        """Number of test images in the test set (a row measured on a subset says its own)."""
        return len(self.labels)

    def row(self, key: str) -> BenchRow | None:
        """The row of one format, if measured."""
        return next((r for r in self.rows if r.key == key), None)

    def reference(self) -> BenchRow | None:
        """The float reference: the first measured format of formats.REFERENCE_ORDER."""
        return next((r for f in formats.REFERENCE_ORDER if (r := self.row(f.key)) is not None), None)

    def source_predictions(self, row: BenchRow, manifest: Manifest) -> np.ndarray | None:
        """Predictions of the Keras model `row`'s artifact was quantized from (see module docstring)."""
        if row.fmt.source == QAT_KERAS:
            return manifest.qat.predictions if manifest.qat else None
        reference = self.reference()
        return reference.predictions if reference is not None else None

    def add_agreement(self, manifest: Manifest) -> None:
        """Fill each row's agreement with the reference and with its source model, on the row's images."""
        reference = self.reference()
        for row in self.rows:
            if reference is not None:
                row.agreement = float((row.predictions == row.restrict(reference.predictions)).mean())
            source = self.source_predictions(row, manifest)
            if source is not None and len(source) == len(self.labels):
                row.source_agreement = float((row.predictions == row.restrict(source)).mean())

    def validate(self, where: str) -> None:
        """Every row holds one prediction per label (per listed test image for a row measured on a subset)."""
        for row in self.rows:
            if row.indices is not None and row.indices[-1] >= len(self.labels):
                raise EdgeMnistError(f"{where}: {row.file} lists test image {row.indices[-1]}, beyond the "
                                     f"{len(self.labels)} labels")
            images = len(row.restrict(self.labels))
            if len(row.predictions) != images:
                raise EdgeMnistError(f"{where}: {row.file} has {len(row.predictions)} predictions for {images} labels")

    def save(self, out: Path) -> None:
        """Write DIR/bench.json atomically."""
        atomic_write_json(Path(out) / BENCH_FILE, self.to_json())

    @classmethod
    def load(cls, path: Path, num_classes: int) -> "BenchResult":
        """Read a bench.json strictly, its predictions within `num_classes` classes."""
        path = Path(path)
        raw = read_record(path, "bench results (run `edge-mnist bench` first)")
        return cls.from_json(raw, str(path), num_classes=num_classes)


def _architecture(obj: dict, where: str, seen: dict) -> str:
    """The architecture trained: train's config.architecture (a user model's name), or at the top level of a
    record without a config (the committed fixtures'); "unknown" when neither says."""
    config = expect(obj.get("config", obj), dict, f"{where}: config")
    return expect(config.get("architecture", "unknown"), str, f"{where}: config.architecture")


@dataclass
class History(Record):
    """DIR/history.json: how DIR's float model came to be, trained here or imported with --model. The fields
    the stages read are parsed strictly; the rest (config, device, strategy, augmentation...) is kept in
    `extra` as written."""

    TOP = True
    REST = "extra"

    dataset: str = json_field(str)
    architecture: str = json_field(parse=_architecture, view=True)
    test_accuracy: float | None = json_field(float, low=0, high=1, nullable=True, omit=_is_none, default=None)
    parameters: int | None = json_field(int, low=0, nullable=True, omit=_is_none, default=None)
    keras_sha256: str | None = json_field(str, nullable=True, omit=_is_none, default=None)
    metrics: dict = json_field(dict, name="history", nullable=True, omit=_is_empty,
                               default_factory=dict)  # per-epoch lists; empty when imported
    source_model: dict | None = json_field(dict, nullable=True, omit=_is_none,
                                           default=None)  # path, sha256 and Keras version of an imported file
    user_data: UserData | None = json_field(parse=_user_data, nullable=True, omit=_is_none,
                                            default=None)  # where a user's own dataset was read, and its fingerprint
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, out: Path) -> "History | None":
        """DIR/history.json, or None when the folder has none."""
        path = Path(out) / HISTORY_FILE
        return cls.from_json(read_record(path, "training history"), str(path)) if path.is_file() else None

    @staticmethod
    def write(path: Path, raw: dict) -> None:
        """Write a history record atomically, after checking it parses as one (written as given, so the
        producer's key order stays)."""
        History.from_json(raw, str(path))
        atomic_write_json(path, raw)

    @property
    def model_name(self) -> str:
        """The architecture trained, or the imported file's name."""
        if self.source_model is not None:
            return f"imported {Path(str(self.source_model.get('path', 'model'))).name}"
        return self.architecture
