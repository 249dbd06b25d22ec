"""Opening a folder's artifacts only as its manifest describes them, from bytes that were verified.

bench, check and predict open models through here. A file's bytes are read once, their size
and sha256 compared with the manifest, and the runtime is handed those same bytes, so what
runs is what was checked. What the gate relies on is then read back from the model itself and
must agree with the format the manifest claims: its precision (from the weight types in the
file), its input type and input quantization.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.folder.layout import MANIFEST_FILE
from edge_mnist.folder.records import Artifact, Manifest
from edge_mnist.registry.formats import BY_KEY, FORMATS, RUNS, RUNTIMES
from edge_mnist.runtime import open_model
from edge_mnist.runtime.base import Runner


def read_verified(path: Path, sha256: str, size_bytes: int | None = None) -> bytes:
    """The file's bytes, refused unless they are the ones the manifest recorded."""
    path = Path(path)
    if not path.is_file():
        raise EdgeMnistError(f"{path}: listed in {MANIFEST_FILE} but missing")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise EdgeMnistError(f"{path}: cannot read ({exc.strerror})") from exc
    if size_bytes is not None and len(content) != size_bytes:
        raise EdgeMnistError(f"{path}: {len(content)} bytes, {MANIFEST_FILE} says {size_bytes} (modified after "
                             "export; re-export it)")
    if hashlib.sha256(content).hexdigest() != sha256:
        raise EdgeMnistError(f"{path}: sha256 does not match {MANIFEST_FILE} (modified after export; re-export it)")
    return content


def refuse_unlisted(out: Path, manifest: Manifest) -> None:
    """A registered artifact file present in DIR but not in the manifest is refused: it would escape
    bench and the gate while an app could still load it (a file two formats share is listed by either)."""
    listed = {a.file for a in manifest.artifacts.values()}
    for fmt in FORMATS:
        if fmt.file not in listed and (Path(out) / fmt.file).exists():
            raise EdgeMnistError(f"{Path(out) / fmt.file}: present but not listed in {MANIFEST_FILE}; re-export, "
                                 "or remove the file")


def check_claims(runner: Runner, artifact: Artifact) -> None:
    """The model must be what the manifest says: same precision, input type and input quantization."""
    fmt, spec = artifact.fmt, artifact.input
    if runner.precision != fmt.precision:
        raise EdgeMnistError(f"{runner.path}: the file holds a {runner.precision} model but {MANIFEST_FILE} lists "
                             f"it as {fmt.key} ({fmt.precision}); re-export it")
    if runner.input_dtype.name != spec.dtype:
        raise EdgeMnistError(f"{runner.path}: input type {runner.input_dtype.name}, {MANIFEST_FILE} says {spec.dtype}")
    if spec.dtype != "float32" and not (math.isclose(runner.input_scale, spec.scale, rel_tol=1e-6)
                                        and runner.input_zero_point == spec.zero_point):
        raise EdgeMnistError(f"{runner.path}: input quantization (scale {runner.input_scale:.6g}, zero point "
                             f"{runner.input_zero_point}) differs from {MANIFEST_FILE} ({spec.scale:.6g}, "
                             f"{spec.zero_point})")


def open_artifact(out: Path, manifest: Manifest, key: str, threads: int = 1) -> Runner:
    """Open one artifact of DIR after checking bytes and claims against the manifest: `key` is a format
    key (its own runtime) or a run key such as tflite_int8@tflm (formats.RUNS)."""
    run = RUNS[key]
    artifact = manifest.artifacts[run.fmt.key]
    path = Path(out) / artifact.file
    content = read_verified(path, artifact.sha256, artifact.size_bytes)
    runtime = run.runtime
    runner = open_model(path, threads, task=manifest.task, runtime=runtime,
                        content=None if RUNTIMES[runtime].needs_tensorflow else content)
    check_claims(runner, artifact)
    return runner


def open_qat_source(out: Path, manifest: Manifest, threads: int = 1) -> Runner:
    """The QAT fine-tuned Keras model the QAT artifacts were converted from (needs TensorFlow and a QAT record)."""
    path = Path(out) / manifest.qat.keras_file
    read_verified(path, manifest.qat.keras_sha256)
    return open_model(path, threads, task=manifest.task, runtime=BY_KEY["keras_float32"].runtime)


__all__ = ["read_verified", "open_artifact", "open_qat_source", "check_claims", "refuse_unlisted"]

