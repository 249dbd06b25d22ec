"""manifest.json: every artifact with its hash, size, input quantization, dataset and versions.

The manifest is rewritten atomically after each export; running `export --method qat` after
a PTQ export keeps the PTQ entries, and entries exported from a different float model (its
sha256 changed) are dropped because they no longer belong to it.
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from ..data import LABELS, Dataset
from ..errors import EdgeMnistError
from ..files import atomic_write_json, read_json, sha256_file
from ..formats import BY_KEY, Format

MANIFEST = "manifest.json"
SCHEMA = 1
_VERSIONED = ("edge-mnist", "tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx",
              "onnxruntime", "ai-edge-litert", "numpy")


def tool_versions() -> dict:
    """Installed versions of the packages that shape an artifact."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_artifact(path: Path, fmt: Format, details: dict) -> dict:
    """Manifest entry for one file, reading its input signature back with the runtime."""
    from ..runtime import open_model

    entry = {"file": fmt.file, "format": fmt.runtime, "precision": fmt.precision, "method": fmt.method,
             "sha256": sha256_file(path), "size_bytes": path.stat().st_size}
    if fmt.runtime != "keras":
        runner = open_model(path)
        entry.update({"input_shape": [-1, 28, 28, 1], "input_dtype": runner.input_dtype.name,
                      "input_scale": float(runner.input_scale), "input_zero_point": int(runner.input_zero_point)})
    else:
        entry.update({"input_shape": [-1, 28, 28, 1], "input_dtype": "float32", "input_scale": None,
                      "input_zero_point": None})
    entry.update({k: v for k, v in details.items() if not k.startswith("_")})
    return entry


@dataclass
class Manifest:
    """In-memory manifest bound to an output folder."""

    out: Path
    dataset: str
    dataset_fingerprint: str
    keras_sha256: str
    float_accuracy: float | None = None
    artifacts: dict = field(default_factory=dict)
    qat: dict | None = None

    @classmethod
    def load_or_new(cls, out: Path, dataset: Dataset, keras_sha256: str) -> "Manifest":
        """Start from the existing manifest when it belongs to the same float model and dataset."""
        fresh = cls(out, dataset.name, dataset.test_fingerprint(), keras_sha256)
        if not (out / MANIFEST).is_file():
            return fresh
        try:
            old = cls.load(out)
        except EdgeMnistError:
            return fresh
        if (old.keras_sha256, old.dataset_fingerprint) != (keras_sha256, fresh.dataset_fingerprint):
            return fresh
        return old

    @classmethod
    def load(cls, out: Path) -> "Manifest":
        """Read and sanity-check DIR/manifest.json."""
        path = Path(out) / MANIFEST
        raw = read_json(path, "manifest")
        try:
            if raw["schema"] != SCHEMA:
                raise EdgeMnistError(f"{path}: manifest schema {raw['schema']} is not {SCHEMA}")
            arts = raw["artifacts"]
            for key, entry in arts.items():
                if key not in BY_KEY or BY_KEY[key].file != entry["file"]:
                    raise EdgeMnistError(f"{path}: unknown artifact {key!r}")
            return cls(Path(out), raw["dataset"], raw["dataset_fingerprint"], raw["keras_sha256"],
                       raw.get("float_accuracy"), arts, raw.get("qat"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise EdgeMnistError(f"{path}: manifest is missing or has malformed field {exc}") from exc

    def add(self, fmt: Format, entry: dict) -> None:
        """Add or replace one artifact's entry."""
        self.artifacts[fmt.key] = entry

    def verify(self, key: str) -> Path:
        """Return the artifact's path after checking it exists and its sha256 matches the manifest."""
        entry = self.artifacts[key]
        path = self.out / entry["file"]
        if not path.is_file():
            raise EdgeMnistError(f"{path}: listed in {MANIFEST} but missing")
        if sha256_file(path) != entry["sha256"]:
            raise EdgeMnistError(f"{path}: sha256 does not match {MANIFEST} (modified after export; re-export it)")
        return path

    def save(self) -> None:
        """Write DIR/manifest.json atomically."""
        ordered = {k: self.artifacts[k] for k in BY_KEY if k in self.artifacts}
        atomic_write_json(self.out / MANIFEST, {
            "schema": SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "dataset": self.dataset,
            "labels": LABELS[self.dataset],
            "dataset_fingerprint": self.dataset_fingerprint,
            "keras_sha256": self.keras_sha256,
            "float_accuracy": self.float_accuracy,
            "versions": tool_versions(),
            "qat": self.qat,
            "artifacts": ordered,
        })
