"""Typed records: manifest.json (what was exported) and bench.json (what was measured).

Both carry a schema version and are parsed strictly: a missing field or one of the wrong
type is a one-line EdgeMnistError naming the file and the field. Predictions are integer
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_json
from edge_mnist.core.jsonio import count, expect, now, number, read_record
from edge_mnist.core.version import __version__
from edge_mnist.folder.layout import BENCH_FILE, HISTORY_FILE, MANIFEST_FILE
from edge_mnist.registry import formats
from edge_mnist.registry.datasets import Task, UserData, task_from_json, user_data_from_json
from edge_mnist.registry.methods import FLOAT

SCHEMA = 2
LATENCY_KEYS = ("p50", "p90", "p99")
_VERSIONED = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
              "onnxruntime", "ai-edge-litert", "numpy")


def _predictions(value: Any, where: str, num_classes: int) -> np.ndarray:
    """A list of class indices as an int array, each within 0..num_classes-1."""
    items = expect(value, list, where)
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < num_classes for v in items):
        raise EdgeMnistError(f"{where}: expected a non-empty list of class indices 0..{num_classes - 1}")
    return np.asarray(items, dtype=np.int64)


def _test_indices(value: Any, where: str) -> np.ndarray | None:
    """The ascending test-set indices a row was measured on (a stratified subset), or None for the whole
    test set (null, or absent as in records written before subsets)."""
    if value is None:
        return None
    items = expect(value, list, where)
    if (not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items)
            or any(b <= a for a, b in itertools.pairwise(items))):
        raise EdgeMnistError(f"{where}: expected null or a non-empty ascending list of test-image indices")
    return np.asarray(items, dtype=np.int64)


def _check_schema(raw: dict, path: Path) -> None:
    """Refuse records of another schema version (they would be misread)."""
    version = raw.get("schema")
    if version != SCHEMA:
        raise EdgeMnistError(f"{path}: schema {version!r} is not {SCHEMA}; re-run the command that wrote it")


def tool_versions() -> dict[str, str]:
    """Versions of edge-mnist and of the installed packages that shape an artifact."""

    versions = {"python": platform.python_version(), "edge-mnist": __version__}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class InputSpec:
    """A model's input as read back from the file: shape, dtype and int8 quantization."""

    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "InputSpec":
        """Strict parse."""
        obj = expect(raw, dict, where)
        shape = expect(obj.get("shape"), list, f"{where}.shape")
        if not all(isinstance(d, int) for d in shape):
            raise EdgeMnistError(f"{where}.shape: expected integers")
        dtype = expect(obj.get("dtype"), str, f"{where}.dtype")
        if dtype not in ("float32", "int8", "uint8"):
            raise EdgeMnistError(f"{where}.dtype: {dtype!r} is not float32, int8 or uint8")
        scale, zero = obj.get("scale"), obj.get("zero_point")
        if dtype != "float32":
            scale = number(scale, f"{where}.scale", low=1e-12)
            zero = expect(zero, int, f"{where}.zero_point")
        return cls(shape, dtype, scale, zero)


def _format_key(obj: dict, where: str, known: dict) -> str:
    """The registered key of a record entry: a format key (manifest) or a run key (bench)."""
    key = expect(obj.get("key"), str, f"{where}.key")
    if key not in known:
        raise EdgeMnistError(f"{where}.key: unknown artifact format {key!r}")
    return key


@dataclass
class _FileEntry:
    """A file of the folder by format key: what manifest and bench entries share."""

    key: str
    file: str
    sha256: str
    size_bytes: int

    KEYS: ClassVar[dict] = formats.BY_KEY

    @property
    def fmt(self) -> formats.Format:
        """The registry entry this file is an instance of."""
        return formats.RUNS[self.key].fmt if self.key in formats.RUNS else formats.BY_KEY[self.key]

    @property
    def runtime(self) -> str | None:
        """The runtime this entry is about: the run's (bench rows), else the format's own."""
        return formats.RUNS[self.key].runtime if self.key in formats.RUNS else self.fmt.runtime

    def _identity(self) -> dict:
        """The shared JSON fields, with the registry's description of the format for readers of the file."""
        fmt = self.fmt
        return {"key": self.key, "file": self.file, "runtime": self.runtime, "precision": fmt.precision,
                "method": fmt.method, "notes": fmt.notes, "sha256": self.sha256, "size_bytes": self.size_bytes}

    @classmethod
    def _parse_identity(cls, obj: dict, where: str) -> dict:
        """Strict parse of the shared fields; the file name must be the registered format's."""
        key = _format_key(obj, where, cls.KEYS)
        expected = cls.KEYS[key].fmt.file if isinstance(cls.KEYS[key], formats.Run) else cls.KEYS[key].file
        file = expect(obj.get("file"), str, f"{where}.file")
        if file != expected:
            raise EdgeMnistError(f"{where}.file: {file!r} is not {expected!r}")
        sha = expect(obj.get("sha256"), str, f"{where}.sha256")
        if len(sha) != 64:
            raise EdgeMnistError(f"{where}.sha256: not a sha256 hex digest")
        return {"key": key, "file": file, "sha256": sha, "size_bytes": count(obj.get("size_bytes"),
                                                                             f"{where}.size_bytes", 1)}


def _parts(value: Any, where: str, file: str) -> dict[str, str]:
    """The further files of a format that spans a folder: path within DIR (in the entry file's folder) -> sha256."""
    parts = expect(value if value is not None else {}, dict, where)
    folder = Path(file).parent
    for name, sha in parts.items():
        if Path(name).parent != folder or Path(name).name in ("", "..", "."):
            raise EdgeMnistError(f"{where}: {name!r} is not a file of {folder}/")
        if not isinstance(sha, str) or len(sha) != 64:
            raise EdgeMnistError(f"{where}.{name}: not a sha256 hex digest")
    return dict(parts)


@dataclass
class Artifact(_FileEntry):
    """One exported file: its format (by registry key), hash, size, input and how it was made; `parts` are
    the further files of a format that spans a folder (web/: the page's script, model and runtime), by sha256."""

    input: InputSpec
    details: dict[str, str] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        """JSON object (parts only for a format that has them)."""
        return {**self._identity(), "input": vars(self.input), "details": self.details,
                **({"parts": self.parts} if self.parts else {})}

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "Artifact":
        """Strict parse; the key must be a registered format whose file name matches."""
        obj = expect(raw, dict, where)
        details = expect(obj.get("details"), dict, f"{where}.details")
        identity = cls._parse_identity(obj, where)
        return cls(**identity, input=InputSpec.from_json(obj.get("input"), f"{where}.input"),
                   details={str(k): str(v) for k, v in details.items()},
                   parts=_parts(obj.get("parts"), f"{where}.parts", identity["file"]))


@dataclass
class QatRecord:
    """The QAT fine-tune: its Keras file and the test-set predictions of that Keras model."""

    epochs: int
    keras_file: str
    keras_sha256: str
    accuracy: float
    predictions: np.ndarray
    history: dict

    def to_json(self) -> dict:
        """JSON object (predictions as a list of ints)."""
        return {"epochs": self.epochs, "keras_file": self.keras_file, "keras_sha256": self.keras_sha256,
                "accuracy": self.accuracy, "predictions": self.predictions.tolist(), "history": self.history}

    @classmethod
    def from_json(cls, raw: Any, where: str, num_classes: int) -> "QatRecord":
        """Strict parse."""
        obj = expect(raw, dict, where)
        if obj.get("keras_file") != formats.QAT_KERAS_FILE:
            raise EdgeMnistError(f"{where}.keras_file: expected {formats.QAT_KERAS_FILE!r}")
        return cls(count(obj.get("epochs"), f"{where}.epochs", 1), formats.QAT_KERAS_FILE,
                   expect(obj.get("keras_sha256"), str, f"{where}.keras_sha256"),
                   number(obj.get("accuracy"), f"{where}.accuracy", 0, 1),
                   _predictions(obj.get("predictions"), f"{where}.predictions", num_classes),
                   expect(obj.get("history"), dict, f"{where}.history"))


def _not_written(artifacts: dict, key: str) -> bool:
    """True when the artifact `key` is built from records that its exporter could not write it."""
    fmt = formats.BY_KEY[key]
    source = artifacts.get(fmt.built_from)
    return source is not None and f"not_written:{fmt.file}" in source.details


def _check_complete(artifacts: dict, path: Path) -> None:
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


@dataclass
class Manifest:
    """manifest.json: the task, the float model the set was exported from, and every artifact."""

    task: Task
    dataset_fingerprint: str
    keras_sha256: str
    float_accuracy: float
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    qat: QatRecord | None = None
    versions: dict[str, str] = field(default_factory=tool_versions)
    created: str = field(default_factory=now)
    user_data: UserData | None = None  # a user's own dataset (written only then, so other manifests are unchanged)

    def float_layers(self) -> dict[str, str]:
        """Format key -> the layers `export --fallback` kept float, for each mixed int8/float artifact."""
        return {key: a.details["float_layers"] for key, a in self.artifacts.items() if a.details.get("float_layers")}

    def to_json(self) -> dict:
        """JSON object in registry order."""
        ordered = [self.artifacts[f.key].to_json() for f in formats.FORMATS if f.key in self.artifacts]
        user_data = {} if self.user_data is None else {"user_data": self.user_data.to_json()}
        return {"schema": SCHEMA, "created": self.created, "task": self.task.to_json(),
                "dataset_fingerprint": self.dataset_fingerprint, **user_data, "keras_sha256": self.keras_sha256,
                "float_accuracy": self.float_accuracy, "versions": self.versions,
                "qat": self.qat.to_json() if self.qat else None, "artifacts": ordered}

    def save(self, out: Path) -> None:
        """Write DIR/manifest.json atomically."""
        atomic_write_json(Path(out) / MANIFEST_FILE, self.to_json())

    @classmethod
    def load(cls, out: Path) -> "Manifest":
        """Read DIR/manifest.json strictly."""
        path = Path(out) / MANIFEST_FILE
        raw = read_record(path, "manifest (run `edge-mnist export` first)")
        _check_schema(raw, path)
        task = task_from_json(raw.get("task"), f"{path}: task")
        artifacts = {}
        for i, entry in enumerate(expect(raw.get("artifacts"), list, f"{path}: artifacts")):
            artifact = Artifact.from_json(entry, f"{path}: artifacts[{i}]")
            artifacts[artifact.key] = artifact
        _check_complete(artifacts, path)
        qat = raw.get("qat")
        return cls(task=task,
                   dataset_fingerprint=expect(raw.get("dataset_fingerprint"), str, f"{path}: dataset_fingerprint"),
                   keras_sha256=expect(raw.get("keras_sha256"), str, f"{path}: keras_sha256"),
                   float_accuracy=number(raw.get("float_accuracy"), f"{path}: float_accuracy", 0, 1),
                   artifacts=artifacts,
                   qat=None if qat is None else QatRecord.from_json(qat, f"{path}: qat", task.num_classes),
                   versions={str(k): str(v) for k, v in expect(raw.get("versions"), dict,
                                                               f"{path}: versions").items()},
                   created=expect(raw.get("created"), str, f"{path}: created"),
                   user_data=user_data_from_json(raw.get("user_data"), f"{path}: user_data"))


@dataclass
class BenchRow(_FileEntry):
    """One artifact measured under one runtime (key: a run key, formats.RUNS): accuracy, predictions and
    timing; latency and throughput are None for a runtime whose timing here would mislead (TFLM). `indices`
    are the test images a `subset` runtime ran on (predictions[i] is image indices[i]); None: all of them."""

    KEYS: ClassVar[dict] = formats.RUNS

    accuracy: float
    predictions: np.ndarray
    latency_us: dict[str, float] | None
    throughput_ips: float | None
    agreement: float | None = None
    source_agreement: float | None = None
    indices: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        """Number of test images this row was measured on."""
        return len(self.predictions)

    def restrict(self, full: np.ndarray) -> np.ndarray:
        """A per-test-image array (labels, another row's predictions) on this row's images only."""
        return full if self.indices is None else full[self.indices]

    def to_json(self) -> dict:
        """JSON object (predictions and test-image indices as lists of ints; n_samples, their number, is for
        readers of the file and not read back)."""
        return {**self._identity(), "accuracy": self.accuracy, "n_samples": self.n_samples,
                "agreement": self.agreement, "source_agreement": self.source_agreement,
                "latency_us": self.latency_us, "throughput_ips": self.throughput_ips,
                "predictions": self.predictions.tolist(),
                "test_indices": None if self.indices is None else self.indices.tolist()}

    @classmethod
    def from_json(cls, raw: Any, where: str, num_classes: int) -> "BenchRow":
        """Strict parse."""
        obj = expect(raw, dict, where)
        identity = cls._parse_identity(obj, where)
        timed = formats.RUNTIMES[formats.RUNS[identity["key"]].runtime].timed
        latency = expect(obj.get("latency_us"), dict, f"{where}.latency_us") if timed else None
        for needed in LATENCY_KEYS if timed else ():
            number(latency.get(needed), f"{where}.latency_us.{needed}", low=0)
        for name in ("agreement", "source_agreement"):
            if name not in obj:
                raise EdgeMnistError(f"{where}.{name}: missing (null when not measured)")
        optional = {name: None if obj[name] is None else number(obj[name], f"{where}.{name}", 0, 1)
                    for name in ("agreement", "source_agreement")}
        return cls(**identity,
                   accuracy=number(obj.get("accuracy"), f"{where}.accuracy", 0, 1),
                   predictions=_predictions(obj.get("predictions"), f"{where}.predictions", num_classes),
                   latency_us=None if latency is None else {str(k): number(v, f"{where}.latency_us.{k}")
                                                            for k, v in latency.items()},
                   throughput_ips=number(obj.get("throughput_ips"), f"{where}.throughput_ips", low=0) if timed
                   else None, **optional, indices=_test_indices(obj.get("test_indices"), f"{where}.test_indices"))


@dataclass
class BenchResult:
    """bench.json: every artifact of a folder measured on one test set with one thread count."""

    dataset: str
    dataset_fingerprint: str
    labels: np.ndarray
    threads: int
    timing: dict[str, int]
    machine: dict
    rows: list[BenchRow]
    skipped: list[dict] = field(default_factory=list)
    created: str = field(default_factory=now)
    user_data: UserData | None = None  # a user's own dataset the rows were measured on (written only then)

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
        if row.fmt.source == formats.QAT_KERAS:
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

    def to_json(self) -> dict:
        """JSON object."""
        reference = self.reference()
        user_data = {} if self.user_data is None else {"user_data": self.user_data.to_json()}
        return {"schema": SCHEMA, "created": self.created, "dataset": self.dataset, **user_data,
                "dataset_fingerprint": self.dataset_fingerprint, "n_samples": self.n_samples,
                "threads": self.threads, "timing": self.timing, "machine": self.machine,
                "reference": reference.key if reference else None, "labels": self.labels.tolist(),
                "rows": [r.to_json() for r in self.rows], "skipped": self.skipped}

    def save(self, out: Path) -> None:
        """Write DIR/bench.json atomically."""
        atomic_write_json(Path(out) / BENCH_FILE, self.to_json())

    @classmethod
    def load(cls, path: Path, num_classes: int) -> "BenchResult":
        """Read a bench.json strictly; every row must hold one prediction per label (per listed test image for
        a row measured on a subset)."""
        path = Path(path)
        raw = read_record(path, "bench results (run `edge-mnist bench` first)")
        _check_schema(raw, path)
        labels = _predictions(raw.get("labels"), f"{path}: labels", num_classes)
        rows = [BenchRow.from_json(r, f"{path}: rows[{i}]", num_classes)
                for i, r in enumerate(expect(raw.get("rows"), list, f"{path}: rows"))]
        for row in rows:
            if row.indices is not None and row.indices[-1] >= len(labels):
                raise EdgeMnistError(f"{path}: {row.file} lists test image {row.indices[-1]}, beyond the "
                                     f"{len(labels)} labels")
            images = len(row.restrict(labels))
            if len(row.predictions) != images:
                raise EdgeMnistError(f"{path}: {row.file} has {len(row.predictions)} predictions for {images} labels")
        return cls(expect(raw.get("dataset"), str, f"{path}: dataset"),
                   expect(raw.get("dataset_fingerprint"), str, f"{path}: dataset_fingerprint"), labels,
                   count(raw.get("threads"), f"{path}: threads", 1),
                   expect(raw.get("timing"), dict, f"{path}: timing"),
                   expect(raw.get("machine"), dict, f"{path}: machine"), rows,
                   expect(raw.get("skipped"), list, f"{path}: skipped"),
                   expect(raw.get("created"), str, f"{path}: created"),
                   user_data_from_json(raw.get("user_data"), f"{path}: user_data"))


@dataclass
class History:
    """DIR/history.json: how DIR's float model came to be, trained here or imported with --model. The fields
    the stages read are parsed strictly; the rest (device, strategy, augmentation...) is kept as written."""

    dataset: str
    architecture: str
    test_accuracy: float | None = None
    parameters: int | None = None
    keras_sha256: str | None = None
    metrics: dict = field(default_factory=dict)  # per-epoch lists ("history" in the file); empty when imported
    source_model: dict | None = None  # path, sha256 and Keras version of an imported file
    raw: dict = field(default_factory=dict, repr=False)
    user_data: UserData | None = None  # where a user's own dataset was read, and its fingerprint

    @classmethod
    def from_json(cls, raw: dict, where: str) -> "History":
        """Parse a history record (`where` names it in errors)."""
        config = expect(raw.get("config", raw), dict, f"{where}: config")
        accuracy, params = raw.get("test_accuracy"), raw.get("parameters")
        sha = raw.get("keras_sha256")
        source = raw.get("source_model")
        return cls(expect(raw.get("dataset"), str, f"{where}: dataset"),
                   str(expect(config.get("architecture", "unknown"), str, f"{where}: config.architecture")),
                   None if accuracy is None else number(accuracy, f"{where}: test_accuracy", 0, 1),
                   None if params is None else count(params, f"{where}: parameters", 0),
                   None if sha is None else expect(sha, str, f"{where}: keras_sha256"),
                   expect(raw.get("history", {}), dict, f"{where}: history"),
                   None if source is None else expect(source, dict, f"{where}: source_model"), raw,
                   user_data_from_json(raw.get("user_data"), f"{where}: user_data"))

    @classmethod
    def load(cls, out: Path) -> "History | None":
        """DIR/history.json, or None when the folder has none."""
        path = Path(out) / HISTORY_FILE
        return cls.from_json(read_record(path, "training history"), str(path)) if path.is_file() else None

    @staticmethod
    def write(path: Path, raw: dict) -> None:
        """Write a history record atomically, after checking it parses as one."""
        History.from_json(raw, str(path))
        atomic_write_json(path, raw)

    @property
    def model_name(self) -> str:
        """The architecture trained, or the imported file's name."""
        if self.source_model is not None:
            return f"imported {Path(str(self.source_model.get('path', 'model'))).name}"
        return self.architecture
