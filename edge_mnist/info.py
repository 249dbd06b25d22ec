"""`edge-mnist info`: what an export folder holds, read from its records; no model is run.

The manifest lists the models; each file's size and sha256 are compared with it here (a read,
no runtime), so "ok" means the file is the one exported. Accuracies are only those recorded,
each named with its record: the float and QAT Keras models' at export (manifest.json), each
run's from the last bench (bench.json) and from the last gate verdict saved in the folder
(check.json, written by `edge-mnist run` or `check --json DIR/check.json`), which is also shown. A
record older than the export is marked stale; an unreadable optional record is named with its
problem instead of stopping the summary. A missing folder or manifest is bad input (exit 2).
Nothing heavy is imported: it runs on a device.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import sha256_file
from edge_mnist.core.jsonio import expect, read_record
from edge_mnist.folder.layout import BENCH_FILE, CHECK_FILE, HISTORY_FILE, MANIFEST_FILE
from edge_mnist.folder.records import Artifact, BenchResult, History, Manifest
from edge_mnist.registry import formats
from edge_mnist.registry.methods import QAT
from edge_mnist.render.tables import fit, percent, plural, table

KINDS = {".keras": "Keras", ".h5": "Keras HDF5", ".tflite": "TFLite", ".onnx": "ONNX", ".ort": "ORT",
         ".h": "C++ header", ".cc": "C++ source", ".config": "ops config"}
MICRO_KINDS = {".h": "C header", ".c": "C source"}  # the interpreter-free C (export.micro_c)


@dataclass
class ModelFile:
    """One model file of the folder and whether it is still the one the manifest recorded."""

    file: str
    kind: str
    precision: str
    method: str
    size_bytes: int | None
    sha256: str  # "ok", "missing" or "modified"


@dataclass
class Recorded:
    """An accuracy a record holds: of which model (file, or file@runtime), where, and when."""

    model: str
    accuracy: float
    record: str
    date: str
    stale: bool = False


@dataclass
class Info:
    """Everything `info` shows; `notes` names each optional record that could not be read."""

    folder: str
    exported: str
    edge_mnist: str
    dataset: str
    test_set_sha256: str
    classes: list[str]
    architecture: str
    models: list[ModelFile]
    accuracies: list[Recorded]
    verdict: dict | None = None
    notes: list[str] = field(default_factory=list)
    user_data: dict | None = None  # a user's own dataset: its recorded path, fingerprint, channels and resize

    def to_json(self) -> dict:
        """JSON object (the same names as the fields; user_data only for a user's own dataset)."""
        data = asdict(self)
        if self.user_data is None:
            del data["user_data"]
        return data


def _sha_status(path: Path, sha256: str, size_bytes: int | None) -> str:
    """'ok' when the file has the recorded size and sha256, else 'missing' or 'modified'."""
    if not path.is_file():
        return "missing"
    if size_bytes is not None and path.stat().st_size != size_bytes:
        return "modified"
    return "ok" if sha256_file(path) == sha256 else "modified"


def _model_file(out: Path, artifact: Artifact, mixed: bool) -> ModelFile:
    """One artifact of the manifest as a row: its kind by suffix, precision (int8+float for a fallback mix)."""
    suffix = Path(artifact.file).suffix
    kinds = MICRO_KINDS if artifact.fmt.exporter.startswith("edge_mnist.export.micro_c:") else KINDS
    return ModelFile(artifact.file, kinds.get(suffix, suffix), "int8+float" if mixed else artifact.fmt.precision,
                     artifact.fmt.method, artifact.size_bytes,
                     _sha_status(out / artifact.file, artifact.sha256, artifact.size_bytes))


def _models(out: Path, manifest: Manifest) -> list[ModelFile]:
    """Every file the manifest lists, in registry order, then the QAT Keras model of its QAT record."""
    mixed = manifest.float_layers()
    files = [_model_file(out, manifest.artifacts[f.key], f.key in mixed)
             for f in formats.FORMATS if f.key in manifest.artifacts]
    if manifest.qat is not None:
        path = out / manifest.qat.keras_file
        files.append(ModelFile(manifest.qat.keras_file, KINDS[path.suffix], "float32", QAT.name,
                               path.stat().st_size if path.is_file() else None,
                               _sha_status(path, manifest.qat.keras_sha256, None)))
    return files


def _architecture(out: Path, notes: list[str]) -> str:
    """The trained architecture from history.json (train's config, or a user model's), with its parameters."""
    path = out / HISTORY_FILE
    if not path.is_file():
        return f"unknown (no {HISTORY_FILE})"
    try:
        history = History.load(out)
    except EdgeMnistError as exc:
        notes.append(str(exc))
        return f"unknown ({HISTORY_FILE} unreadable)"
    return history.architecture + (f", {history.parameters:,} parameters" if history.parameters is not None else "")


def _bench_accuracies(out: Path, manifest: Manifest, notes: list[str]) -> list[Recorded]:
    """Each run's accuracy from bench.json, if the folder has one that reads."""
    if not (out / BENCH_FILE).is_file():
        return []
    try:
        bench = BenchResult.load(out / BENCH_FILE, manifest.task.num_classes)
    except EdgeMnistError as exc:
        notes.append(str(exc))
        return []
    stale = bench.created < manifest.created
    return [Recorded(formats.RUNS[row.key].label + ("" if row.indices is None else f" ({row.n_samples:,} img)"),
                     row.accuracy, BENCH_FILE, bench.created, stale) for row in bench.rows]


def _accuracy_map(raw: dict, path: Path) -> dict[str, float]:
    """check.json's accuracies (file label -> fraction; a run on a subset labelled with its image count); an
    older check.json without them gives none."""
    found = expect(raw.get("accuracies", {}), dict, f"{path}: accuracies")
    subsets = expect(raw.get("subsets", {}), dict, f"{path}: subsets")
    for name, value in found.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise EdgeMnistError(f"{path}: accuracies.{name}: expected a fraction 0..1, got {value!r}")
    return {str(k) + (f" ({subsets[k]:,} img)" if isinstance(subsets.get(k), int) else ""): float(v)
            for k, v in found.items()}


def _verdict(raw: dict, path: Path, manifest: Manifest) -> dict:
    """The recorded verdict's summary: PASS/FAIL, date, counts, failed files, and whether it is stale."""
    word = expect(raw.get("verdict"), str, f"{path}: verdict")
    results = expect(raw.get("results"), list, f"{path}: results")
    if word not in ("PASS", "FAIL") or not all(isinstance(r, dict) for r in results):
        raise EdgeMnistError(f"{path}: not a verdict written by `edge-mnist check --json`")
    failed = [r for r in results if r.get("passed") is not True]
    created = str(raw.get("created", ""))
    dataset = raw.get("dataset")
    return {"verdict": word, "date": created or None, "checks": len(results), "failed": len(failed),
            "failed_files": list(dict.fromkeys(str(r.get("artifact")) for r in failed)),
            "n_samples": raw.get("n_samples"), "dataset": dataset,
            "stale": (bool(created) and created < manifest.created) or dataset != manifest.task.dataset}


def _check_record(out: Path, manifest: Manifest, notes: list[str]) -> tuple[dict | None, list[Recorded]]:
    """The gate verdict saved as DIR/check.json and the accuracies it measured, if there is one that reads."""
    path = out / CHECK_FILE
    if not path.is_file():
        return None, []
    try:
        raw = read_record(path, "gate verdict")
        verdict, accuracies = _verdict(raw, path, manifest), _accuracy_map(raw, path)
    except EdgeMnistError as exc:
        notes.append(str(exc))
        return None, []
    date = verdict["date"] or "date not recorded"
    return verdict, [Recorded(name, acc, CHECK_FILE, date, verdict["stale"]) for name, acc in accuracies.items()]


def gather(out: Path) -> Info:
    """Read DIR's manifest (required) and its other records (each optional) into an Info."""
    out = Path(out)
    manifest = Manifest.load(out)
    notes: list[str] = []
    at_export = [Recorded(formats.BY_KEY["keras_float32"].file, manifest.float_accuracy, MANIFEST_FILE,
                          manifest.created)]
    if manifest.qat is not None:
        at_export.append(Recorded(manifest.qat.keras_file, manifest.qat.accuracy, MANIFEST_FILE, manifest.created))
    verdict, checked = _check_record(out, manifest, notes)
    return Info(str(out), manifest.created, manifest.versions.get("edge-mnist", "?"), manifest.task.dataset,
                manifest.dataset_fingerprint, list(manifest.task.class_names), _architecture(out, notes),
                _models(out, manifest), at_export + _bench_accuracies(out, manifest, notes) + checked, verdict, notes,
                None if manifest.user_data is None else manifest.user_data.to_json())


def _size(size_bytes: int | None) -> str:
    """'10.6 KB' (1 KB = 1000 bytes, as bench's MB), or '-' for a missing file."""
    return "-" if size_bytes is None else f"{size_bytes / 1000:,.1f} KB"


def _indented(text: str) -> list[str]:
    """A table's lines indented by two spaces, without trailing blanks."""
    return [f"  {line}".rstrip() for line in text.splitlines()]


def _verdict_lines(verdict: dict | None) -> list[str]:
    """The recorded gate verdict, clearly a record with its date, or how to record one."""
    if verdict is None:
        return [f"gate verdict: none recorded (`edge-mnist check --out DIR --json DIR/{CHECK_FILE}` records one)"]
    images = f"on {verdict['n_samples']} images"
    counts = (f"all {plural(verdict['checks'], 'check')} passed {images}" if verdict["verdict"] == "PASS" else
              f"{verdict['failed']} of {plural(verdict['checks'], 'check')} failed {images}, in "
              f"{', '.join(verdict['failed_files'])}")
    stale = "; STALE: recorded before this export or on another dataset" if verdict["stale"] else ""
    return [f"gate verdict as recorded in {CHECK_FILE} ({verdict['date'] or 'date not recorded'}):",
            f"  {verdict['verdict']}: {counts}{stale}"]


def _user_data_lines(user_data: dict | None) -> list[str]:
    """Where a user's own dataset is read from and its fingerprint (nothing for a registered dataset)."""
    if user_data is None:
        return []
    size = user_data["image_size"]
    resize = "" if size is None else f", resized to {size[0]}x{size[1]}"
    return [f"data: {user_data['path']} ({user_data['channels']} channel{'s' if user_data['channels'] > 1 else ''}"
            f"{resize}); fingerprint {user_data['fingerprint'][:16]}…"]


def render(info: Info) -> str:
    """The summary as text, every line at most tables.WIDTH columns."""
    models = table(["file", "format", "precision", "method", "size", "sha256"],
                   [[m.file, m.kind, m.precision, m.method, _size(m.size_bytes), m.sha256] for m in info.models])
    accuracies = table(["model", "accuracy", "recorded in"],
                       [[r.model, percent(r.accuracy), f"{r.record}, {r.date}" + (" (STALE)" if r.stale else "")]
                        for r in info.accuracies])
    lines = [f"folder: {info.folder}, exported {info.exported} by edge-mnist {info.edge_mnist}",
             f"dataset: {info.dataset}, {len(info.classes)} classes ({', '.join(info.classes)}); "
             f"test set sha256 {info.test_set_sha256[:16]}…",
             *_user_data_lines(info.user_data),
             f"architecture: {info.architecture}",
             f"models ({sum(m.sha256 == 'ok' for m in info.models)} of {len(info.models)} files as exported: "
             f"size and sha256 as in {MANIFEST_FILE}):",
             *_indented(models),
             "accuracy as recorded (not measured now; `edge-mnist check` measures):", *_indented(accuracies),
             *_verdict_lines(info.verdict), *(f"could not read: {note}" for note in info.notes)]
    return "\n".join(fit(line, indent=len(line) - len(line.lstrip()) + 2) for line in lines)


__all__ = ["CHECK_FILE", "Info", "gather", "render"]
