"""The debug stage: where int8 loses accuracy, layer by layer, named by the Keras layers.

For each int8 artifact (the .tflite and the .onnx converted from it, post-training and QAT), the per-layer
table of quantize.layer_error: weight and activation SQNR, RMSE over the quantization step, and the
test accuracy with each layer kept float. Layers are sorted worst first by the lowest SQNR they
touch; the ranking is what `export --fallback` walks. The float values come from the calibrated
float model, whose tensor names are the int8 model's (the .onnx carries them in its nodes'
doc_string); when export equalized the post-training files (quantize.equalize; the manifest says so), the
float model is equalized the same way first. QAT artifacts are measured against their QAT model
(DIR/model_qat.h5) with its fake quantization off, calibrated the same way; their accuracy with a layer kept
float is left out, as that takes a fine-tune per layer (`export --method qat --fallback` does it for the
layers it tries).
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_mnist.config import ExportConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_output, atomic_write_json
from edge_mnist.core.keras_io import load_keras
from edge_mnist.data import to_float
from edge_mnist.folder.layout import DEBUG_FILE, DEBUG_PLOT, MANIFEST_FILE
from edge_mnist.folder.opener import Folder
from edge_mnist.folder.records import Manifest
from edge_mnist.folder.verify import open_artifact, read_verified
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.quantize.equalize import DETAILS_KEY, equalize
from edge_mnist.quantize.layer_error import DEBUG_IMAGES, ArtifactDebug, analyse, reference_for
from edge_mnist.quantize.mixed import Mixer
from edge_mnist.registry.formats import BY_KEY, rebuilt
from edge_mnist.registry.methods import FLOAT_KERAS, QUANTIZED, Method
from edge_mnist.runtime.tflite_graph import read_tflite


def _clean(value):
    """JSON-friendly rounding: 4 decimals, NaN as null."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def debug(folder: Folder, config: ExportConfig = ExportConfig(), progress=print) -> list[ArtifactDebug]:
    """The per-layer table of every int8 artifact in DIR (each quantized method's .tflite and .onnx), calibrated
    as export was (config.calib_samples and config.seed must be export's); writes DIR/debug.json and DIR/debug.png.
    The caller holds DIR's lock (folder.opener.open_folder)."""

    out, dataset, manifest, config = folder.path, folder.dataset, folder.exported, config.validate()
    present = {method: [f.key for f in rebuilt(method).values() if f.key in manifest.artifacts]
               for method in QUANTIZED}
    if not any(present.values()):
        raise EdgeMnistError(f"{out}: no int8 artifact to debug (run `edge-mnist export --int8`)")
    calib = calibration_images(dataset, config.calib_samples, config.seed)
    images, labels = to_float(dataset.x_test), dataset.y_test
    results = []
    for method, keys in present.items():
        if keys:
            mixer = _mixer(folder, method, keys[0], calib, progress)
            reference = reference_for(mixer, images[:DEBUG_IMAGES])
            results += [_debugged(out, manifest, key, mixer, reference, images, labels, progress) for key in keys]
    save_debug(out, results, manifest.float_accuracy)
    return results


def _mixer(folder: Folder, method: Method, key: str, calib: np.ndarray, progress) -> Mixer:
    """The calibration export made for `method`'s files: of the float model (equalized first when the manifest
    entry `key` says export equalized it) or of the QAT model."""
    out, manifest = folder.path, folder.exported
    if method.source == FLOAT_KERAS:
        model = load_keras(out / BY_KEY["keras_float32"].file, sha256=folder.keras_sha256)
        if DETAILS_KEY in manifest.artifacts[key].details:
            progress("equalizing the float model as export did")
            model, _ = equalize(model)
        progress("calibrating the float model as export did")
        return Mixer.for_model(model, calib)
    if manifest.qat is None:
        raise EdgeMnistError(f"{out / MANIFEST_FILE}: QAT artifacts are listed but the QAT record is missing; "
                             "re-export with --method qat")
    qat = load_keras(out / manifest.qat.keras_file, sha256=manifest.qat.keras_sha256)
    progress(f"converting {manifest.qat.keras_file} as export did")
    return Mixer.for_qat(qat, calib)


def _debugged(out: Path, manifest: Manifest, key: str, mixer: Mixer, reference, images: np.ndarray,
              labels: np.ndarray, progress) -> ArtifactDebug:
    """One artifact's table, after checking that the rebuilt int8 model is the one in the folder."""
    fmt, artifact = BY_KEY[key], manifest.artifacts[key]
    content = read_verified(out / fmt.file, artifact.sha256, artifact.size_bytes)
    if fmt.runtime == "tflite" and not artifact.details.get("float_layers"):
        _same_model(mixer, content, out / fmt.file)
    progress(f"debugging {fmt.file}")
    return analyse(mixer, content, fmt.runtime, images, labels, open_artifact(out, manifest, key), fmt.file,
                   progress, reference)


def _same_model(mixer, content: bytes, path: Path) -> None:
    """The rebuilt all-int8 model must carry the artifact's quantization, or the calibration differs from export's."""

    rebuilt, shipped = read_tflite(mixer.tflite(), path), read_tflite(content, path)
    grids = lambda g: [(g.names[i], None if q is None else np.round(q.scale, 9).tolist())  # noqa: E731
                       for i, q in enumerate(g.quant) if i not in g.data]
    if sorted(grids(rebuilt), key=str) != sorted(grids(shipped), key=str):
        raise EdgeMnistError(f"{path}: its activation ranges differ from a calibration with these settings; pass "
                             "the --calib-samples and --seed the folder was exported with")


def save_debug(out: Path, results: list[ArtifactDebug], float_accuracy: float) -> None:
    """DIR/debug.json (rounded) and DIR/debug.png, each written atomically."""
    record = {"float_accuracy": float_accuracy, "images_for_activations": DEBUG_IMAGES,
              "artifacts": [{**{k: v for k, v in asdict(a).items() if k != "layers"},
                             "ranking": a.ranking(), "layers": [asdict(r) for r in a.layers]} for a in results]}
    atomic_write_json(out / DEBUG_FILE, _clean(record))
    plot_debug(results, float_accuracy, out / DEBUG_PLOT)


def plot_debug(results: list[ArtifactDebug], float_accuracy: float, path: Path) -> None:
    """Bar chart per artifact: output-grid SQNR and end-to-end SQNR of each layer, with the accuracy if kept float."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(9, 2.2 + 0.45 * max(len(r.layers) for r in results)
                                                       * len(results)), squeeze=False)
    for ax, result in zip(axes[:, 0], results):
        rows = list(reversed(result.layers))
        y = np.arange(len(rows))
        ax.barh(y - 0.2, [r.score for r in rows], 0.4, label="lowest grid SQNR (dB)", color="tab:red")
        ax.barh(y + 0.2, [r.end_to_end_sqnr_db or 0 for r in rows], 0.4, label="end-to-end SQNR (dB)",
                color="tab:blue")
        ax.set_yticks(y, [f"{r.layer}" + (f"  (float: {r.accuracy_if_float:.2%})" if r.accuracy_if_float else "")
                          for r in rows])
        ax.set_title(f"{result.file}: accuracy {result.accuracy:.2%}, float model {float_accuracy:.2%}")
        ax.set_xlabel("SQNR (dB), higher is better")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


__all__ = ["debug", "ArtifactDebug"]
