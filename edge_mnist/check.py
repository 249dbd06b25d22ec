"""The check stage, the CI accuracy-regression gate: every int8 artifact against the float model.

Each criterion is a small pure function of predictions and limits (unit-tested at its
boundary). `evaluate` derives every prediction itself: it runs each int8 artifact of the
manifest and the float reference on the test set, from bytes whose sha256 matches the
manifest and whose precision and input type are read from the file (verify.py), under every
runtime its format lists (an int8 .tflite under LiteRT and TensorFlow Lite Micro, which runs
on a stratified subset of the test set, compared with the others there); files that
embed a .tflite (the C++ source and header) must hold exactly the bytes that ran. bench.json
is a record of what was measured, never evidence. The set of criteria follows from the
artifacts present and the options; one that cannot be evaluated is an error, never a silent
omission (an optional runtime that is not installed is listed as skipped in the verdict).
Exit codes (via the CLI): 0 pass, 1 a check failed, 2 bad input. Each check's value and limit
are in its UNITS entry; tables.py phrases them for people. The accuracy drops vs the float model and
vs a baseline are paired per image with the reference's (the baseline's) predictions, and weighed
against the number of test images (gate.drop_rule: the interval, and when a set is too small).
"""
from __future__ import annotations

import importlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_mnist.config import GateConfig
from edge_mnist.core.errors import EdgeMnistError, MissingDependency
from edge_mnist.data import stratified_indices, to_float
from edge_mnist.folder.layout import MANIFEST_FILE
from edge_mnist.folder.opener import Folder
from edge_mnist.folder.records import BenchResult, Manifest
from edge_mnist.folder.verify import open_artifact, open_qat_source, read_verified
from edge_mnist.gate import EMBEDS, EPS, Criteria, Measured, Result, Verdict, on_images, parity_results, run_results
from edge_mnist.registry.formats import (
    FORMATS,
    REFERENCE_ORDER,
    RUNS,
    RUNTIMES,
    Run,
    chosen_runs,
    left_out,
)
from edge_mnist.registry.methods import FLOAT_KERAS, QAT_KERAS


def _run(runner, key: str, images: np.ndarray, labels: np.ndarray, indices: np.ndarray | None = None) -> Measured:
    """Top-1 predictions and accuracy of an opened model on the test images, or on those at `indices`
    (key: a run key)."""
    preds = runner.predict(on_images(images, indices)).argmax(1).astype(np.int64)
    return Measured(key, RUNS[key].label if key in RUNS else runner.path.name, preds,
                    float((preds == on_images(labels, indices)).mean()), indices)


def _open_runs(out: Path, manifest: Manifest, runs: list[Run], threads: int) -> tuple[dict, list[str]]:
    """Open every run; an optional runtime that is not installed (TFLM) is skipped with a note, any
    other failure is an error."""
    runners, skipped = {}, []
    for run in runs:
        try:
            runners[run.key] = open_artifact(out, manifest, run.key, threads)
        except MissingDependency:
            if not RUNTIMES[run.runtime].optional:
                raise
            skipped.append(f"{run.label}: the {run.runtime} runtime is not installed ({RUNTIMES[run.runtime].install})")
    return runners, skipped


def _embedded_results(out: Path, manifest: Manifest, runners: dict) -> tuple[list[Result], list[str]]:
    """Each file that embeds an int8 model (the C++ source and header: the .tflite; the web page: the .onnx) must
    hold exactly the bytes the gate ran and describe them truly: what a board flashes or a browser runs is what
    passed. Every file of a format that spans a folder (web/) must be the one the manifest lists.
    (results, skipped): a device without ai-edge-litert's flatbuffer schema (tflite-runtime on 32-bit Pi OS)
    cannot regenerate the C, and says so as skipped (its sha256 is still verified)."""
    results, skipped = [], []
    for fmt in (f for f in FORMATS if f.verifier and f.key in manifest.artifacts):
        artifact, tflite = manifest.artifacts[fmt.key], manifest.artifacts[fmt.built_from]
        read_verified(out / artifact.file, artifact.sha256, artifact.size_bytes)
        for part, sha256 in artifact.parts.items():
            read_verified(out / part, sha256)
        content = read_verified(out / tflite.file, tflite.sha256, tflite.size_bytes)
        if fmt.built_from not in runners:  # its source's runtime is not here (the .onnx on 32-bit Pi OS)
            skipped.append(f"{fmt.file}: not compared here ({tflite.file} does not run on this machine)")
            continue
        module, func = fmt.verifier.split(":")
        try:
            problems = getattr(importlib.import_module(module), func)(out / artifact.file, content, manifest.task,
                                                                     runners[fmt.built_from])
        except MissingDependency as exc:
            skipped.append(f"{fmt.file}: not regenerated and compared here ({exc})")
            continue
        results.append(Result(fmt.file, EMBEDS, len(problems), 0, not problems, "; ".join(problems),
                              {"embeds": tflite.file}))
    return results, skipped


def _reference(out: Path, manifest: Manifest, images, labels, threads: int) -> Measured:
    """The float model, run here: Keras when TensorFlow is installed, else the float ONNX or TFLite file."""
    unavailable = []
    for fmt in REFERENCE_ORDER:
        if fmt.key not in manifest.artifacts:
            continue
        try:
            return _run(open_artifact(out, manifest, fmt.key, threads), fmt.key, images, labels)
        except MissingDependency as exc:
            unavailable.append(f"{fmt.file} ({exc})")
    raise EdgeMnistError(f"{out / MANIFEST_FILE}: no float model can be run as the reference"
                         + (f": {'; '.join(unavailable)}" if unavailable else " (none is listed)"))


def _qat_source(out: Path, manifest: Manifest, images, labels, threads: int, skip: bool) -> Measured | None:
    """The QAT Keras model's predictions, or None when the user chose to skip them (--skip-qat-source)."""
    if manifest.qat is None:
        raise EdgeMnistError(f"{out / MANIFEST_FILE}: qat: QAT artifacts are listed but the QAT record is missing; "
                             "re-export with --method qat")
    if skip:
        return None
    try:
        return _run(open_qat_source(out, manifest, threads), QAT_KERAS, images, labels)
    except MissingDependency as exc:
        raise EdgeMnistError(f"disagreement and per-class drop of the QAT artifacts need their source model "
                             f"{manifest.qat.keras_file}, which needs TensorFlow ({exc}); install it, or pass "
                             "--skip-qat-source to leave those two checks out for QAT artifacts") from exc


def _baseline(path: Path, manifest: Manifest, keys: list[str], labels: np.ndarray) -> dict[str, Measured]:
    """Accuracy per int8 run checked on the whole test set, from an earlier bench.json of the same dataset;
    every such run needs a row measured on the whole test set too. Its predictions pair the baseline drop per
    image (gate.drop_rule) when that bench ran on these very test images (same labels in the same order) and
    its accuracy is theirs, and are None otherwise."""
    baseline = BenchResult.load(path, manifest.task.num_classes)
    if baseline.dataset != manifest.task.dataset:
        raise EdgeMnistError(f"{path}: baseline measured on {baseline.dataset}, not {manifest.task.dataset}")
    found = {row.key: row for row in baseline.rows if row.key in keys}
    missing = [RUNS[k].label for k in keys if k not in found]
    if missing:
        raise EdgeMnistError(f"{path}: the baseline has no row for {', '.join(missing)}, so the baseline check "
                             "cannot be evaluated for it")
    partial = [RUNS[k].label for k, row in found.items() if row.indices is not None]
    if partial:
        raise EdgeMnistError(f"{path}: {', '.join(partial)}: measured on a subset of the test images only; bench "
                             "the baseline with --tflm-images 0 to compare on the whole test set")
    same_images = np.array_equal(baseline.labels, labels)
    return {key: Measured(key, row.file, row.predictions if same_images and _consistent(row, labels) else None,
                          row.accuracy) for key, row in found.items()}


def _consistent(row, labels: np.ndarray) -> bool:
    """Whether a baseline row's accuracy is that of its predictions: only then do they pair its drop (an edited
    accuracy keeps the point rule on the recorded accuracy, as before pairing existed)."""
    return abs(float((row.predictions == labels).mean()) - row.accuracy) <= EPS


def evaluate(folder: Folder, config: GateConfig = GateConfig()) -> Verdict:
    """Run every int8 artifact of DIR and the float reference on the test set, and evaluate every criterion.
    config.skip_runtimes leaves optional runtimes (tflm) out; the verdict lists what that left out. A `subset`
    runtime (TFLM) runs on config.tflm_images test images stratified by class (0: all) and is then held to parity
    with its parity group on those images only (gate.run_results says why; Verdict.subsets says which)."""
    out, dataset, manifest = folder.path, folder.dataset, folder.exported
    criteria, threads, skip_runtimes = config.validate().criteria, config.threads, config.skip_runtimes
    subset = stratified_indices(dataset.y_test, config.tflm_images)
    present = [fmt for fmt in FORMATS if fmt.key in manifest.artifacts and fmt.is_int8]
    runs = [run for fmt in present for run in chosen_runs(fmt, skip_runtimes)]
    if not runs:
        raise EdgeMnistError(f"{out}: no int8 artifact to check (run `edge-mnist export --int8`)")
    runners, skipped = _open_runs(out, manifest, runs, threads)
    skipped += [f"{run.label}: {why}" for run, why in left_out(present, skip_runtimes)]
    keys = list(runners)
    whole = [k for k in keys if subset is None or not RUNTIMES[RUNS[k].runtime].subset]
    images, labels = to_float(dataset.x_test), dataset.y_test.astype(np.int64)
    baseline = _baseline(criteria.baseline, manifest, whole, labels) if criteria.baseline else {}
    reference = _reference(out, manifest, images, labels, threads)
    measured = {k: _run(runner, k, images, labels, subset if RUNTIMES[RUNS[k].runtime].subset else None)
                for k, runner in runners.items()}
    needs_qat = any(RUNS[k].fmt.source == QAT_KERAS for k in keys)
    qat = _qat_source(out, manifest, images, labels, threads, config.skip_qat_source) if needs_qat else None
    sources = {FLOAT_KERAS: reference.predictions, QAT_KERAS: None if qat is None else qat.predictions}
    results: list[Result] = []
    for key, m in measured.items():
        results += run_results(m, reference.accuracy, sources[RUNS[key].fmt.source], labels,
                               manifest.task.class_names, criteria, baseline, reference.predictions)
    if criteria.parity is not None:
        results += parity_results(measured, criteria.parity)
    embedded, not_verified = _embedded_results(out, manifest, runners)
    results, skipped = results + embedded, skipped + not_verified
    skipped += [f"disagreement and per-class drop of {RUNS[k].label} vs its QAT source (--skip-qat-source)"
                for k in keys if qat is None and RUNS[k].fmt.source == QAT_KERAS]
    skipped += [f"every check of {m.file}: on its subset only parity applies, and parity is off "
                "(--tflm-images 0 checks it on every image)"
                for m in measured.values() if m.indices is not None and criteria.parity is None]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(criteria).items()}
    predictions = {reference.file: reference.predictions, **{m.file: m.predictions for m in measured.values()}}
    return Verdict(results, reference.file, reference.accuracy, len(labels), dataset.name, settings, skipped,
                   manifest.float_layers(), predictions,
                   accuracies={m.file: m.accuracy for m in (reference, *measured.values())},
                   subsets={m.file: m.indices for m in measured.values() if m.indices is not None})


__all__ = ["Criteria", "Result", "Verdict", "evaluate"]
