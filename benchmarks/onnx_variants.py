"""Every onnxruntime int8 option we tried for the PTQ ONNX model, measured against TFLite int8.

    python benchmarks/onnx_variants.py --out export

Rebuilds the int8 ONNX model from the export folder's float Keras model in each variant
(quantize_static options, graph shape, session options), then measures test accuracy and
single-image p50 interleaved with the folder's model_int8.tflite in one process, so each
ratio is immune to the machine getting slower between variants. Needs the train extra
(TensorFlow, tf2onnx). Prints a Markdown table; docs/2026-11-21-benchmark-experiments.md records one run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_mnist.check import class_accuracy
from edge_mnist.export.onnx import keras_to_onnx
from edge_mnist.data import load_dataset, to_float
from edge_mnist.formats import BY_KEY
from edge_mnist.keras_io import load_keras
from edge_mnist.quantize.batchnorm import fold_batchnorm
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.quantize.onnx_static import quantize_qdq
from edge_mnist.runtime.onnx import OnnxRunner, session_options
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.records import Manifest
from edge_mnist.timing import interleaved_p50
from edge_mnist.train import KERAS_FILE

# fold: how BatchNorm leaves the graph (None: it stays as Mul+Add; "next": into Dense10;
# "relu": into Dense512 through its ReLU, quantize.batchnorm.fold_batchnorm(through_relu=True)).
SHIPPED = dict(fold="relu", quant={}, float_first=True, binding=True)  # the runner: a default session
# onnxruntime's QDQPropagationTransformer turns the float first-stage MaxPool into a uint8 one;
# an application would have to turn it off itself, so bench does not (runtime/onnx.py).
SESSION_RUN = dict(SHIPPED, binding=False, disabled=["QDQPropagationTransformer"])
VARIANTS = {
    "all int8, BatchNorm as Mul+Add (previous release)": dict(fold=None, quant={}, float_first=False),
    "all int8, BatchNorm folded into Dense10": dict(fold="next", quant={}, float_first=False),
    "all int8, BatchNorm folded into Dense512 through ReLU": dict(fold="relu", quant={}, float_first=False),
    "  + per-channel weights": dict(fold="relu", quant={"per_channel": True}, float_first=False),
    "  + int8 (signed) activations": dict(fold="relu", quant={"activation_type": "QInt8"}, float_first=False),
    "  + reduce_range (7-bit weights)": dict(fold="relu", quant={"reduce_range": True}, float_first=False),
    "  + QOperator format instead of QDQ": dict(fold="relu", quant={"quant_format": "QOperator"}, float_first=False),
    "first conv+pool float, default session": dict(fold="relu", quant={}, float_first=True),
    "first conv+pool float, QDQPropagationTransformer off": SESSION_RUN,
    "  + graph optimization EXTENDED (no layout transforms)": dict(SESSION_RUN, level="EXTENDED"),
    "  + per-channel weights, first stage float": dict(SESSION_RUN, quant={"per_channel": True}),
    "  + BatchNorm as Mul+Add, first stage float": dict(SESSION_RUN, fold=None),
    "  + BatchNorm folded into Dense10, first stage float": dict(SESSION_RUN, fold="next"),
    "first conv+pool float, default session, IOBinding (shipped; what `bench` times)": SHIPPED,
}


def single_image_call(path: Path, variant: dict, x1: np.ndarray):
    """The timed call: the shipped runner's IOBinding call, or session.run with the variant's options."""
    import onnxruntime as ort

    if variant.get("binding"):
        runner = OnnxRunner(path)
        return runner.bound_call(x1), runner.predict
    opts = session_options(ort, 1)
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{variant.get('level', 'ALL')}")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=variant.get("disabled", []))
    name = session.get_inputs()[0].name
    return (lambda: session.run(None, {name: x1})), (lambda x: session.run(None, {name: x})[0])


def worst_class_drop(preds: np.ndarray, reference: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Largest per-class accuracy loss against the float model in pp (the gate's criterion)."""
    return float(np.nanmax(class_accuracy(reference, labels, classes) - class_accuracy(preds, labels, classes)) * 100)


def main() -> None:
    """Build, measure and print every variant."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("export"))
    ap.add_argument("--dataset", default=None, help="default: the folder's (manifest.json)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=400)
    args = ap.parse_args()
    data = load_dataset(args.dataset or Manifest.load(args.out).task.dataset)
    model = load_keras(args.out / KERAS_FILE)
    shape = data.task.input_shape
    protos = {None: keras_to_onnx(model, shape), "next": keras_to_onnx(fold_batchnorm(model), shape),
              "relu": keras_to_onnx(fold_batchnorm(model, through_relu=True), shape)}
    calib = calibration_images(data, 500, 0)
    x_test = to_float(data.x_test)
    tflite = TFLiteRunner(args.out / BY_KEY["tflite_int8"].file).bound_call(x_test[:1])
    reference = model.predict(x_test, batch_size=1000, verbose=0).argmax(1)
    print("| variant | accuracy | agreement with float | worst class drop pp | ONNX p50 µs | TFLite int8 p50 µs | ratio |"
          "\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, variant) in enumerate(VARIANTS.items()):
            path = Path(tmp) / f"v{i}.onnx"
            proto, _ = quantize_qdq(protos[variant["fold"]], calib, float_first=variant["float_first"], **variant["quant"])
            path.write_bytes(proto.SerializeToString())
            call, predict = single_image_call(path, variant, x_test[:1])
            preds = np.concatenate([predict(x_test[j:j + 1000]) for j in range(0, len(x_test), 1000)]).argmax(1)
            blocks = interleaved_p50({"onnx": call, "tflite": tflite}, args.rounds, {"onnx": args.runs, "tflite": args.runs})
            onnx_p50, tflite_p50 = (float(np.median(blocks[k])) for k in ("onnx", "tflite"))
            print(f"| {name} | {(preds == data.y_test).mean():.2%} | {(preds == reference).mean():.2%} | "
                  f"{worst_class_drop(preds, reference, data.y_test, data.task.num_classes):.1f} | {onnx_p50:.1f} | {tflite_p50:.1f} | "
                  f"{onnx_p50 / tflite_p50:.2f}× |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
