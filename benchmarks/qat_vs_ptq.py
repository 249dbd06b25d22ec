"""QAT against PTQ at the same total number of training epochs, on the full dataset.

    python benchmarks/qat_vs_ptq.py --epochs 2 --qat-epochs 1

`edge-mnist run` fine-tunes QAT for --qat-epochs after the float model's --epochs, so its QAT
model has seen more training than the PTQ one. This script makes the fair comparison:
- float model trained E epochs (seed 0), as `edge-mnist train` does;
- PTQ: a model trained E + K epochs from the start (`edge-mnist train --epochs E+K`),
  then full-integer int8;
- PTQ after the E-epoch model is fine-tuned K epochs at QAT's learning rate: QAT's schedule
  without fake quantization, which separates what quantization awareness gains from what the
  lower learning rate of the fine-tuning gains;
- QAT: the E-epoch model fine-tuned K epochs with calibrated activation ranges (E + K), and
  once more with tfmot's default [-6, 6] start, to show what the calibration changes.
It prints the int8 TFLite test accuracy of each and the ReLU outputs' zero points. Needs the
train extra. About 7 minutes on 2 cores for E = 2, K = 1.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_mnist.data import load_dataset, to_float
from edge_mnist.quantize.calibration import calibration_images
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.runtime.tflite_graph import read_tflite


def int8_accuracy(model, calib: np.ndarray, data) -> tuple[float, list[int]]:
    """Test accuracy of the model's full-integer TFLite file and its ReLU outputs' zero points."""
    from edge_mnist.quantize.ptq import int8_converter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(int8_converter(model, calib).convert())
        accuracy = float((TFLiteRunner(path).predict(to_float(data.x_test)).argmax(1) == data.y_test).mean())
        graph = read_tflite(path.read_bytes(), path)
    zero_points = [int(graph.quant[outs[0]].zero_point[0]) for _, _, outs, opts in graph.ops
                   if getattr(opts, "fusedActivationFunction", 0) == 1]
    return accuracy, zero_points


def main() -> None:
    """Train, quantize both ways and print one Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--qat-epochs", type=int, default=1)
    args = ap.parse_args()
    from edge_mnist.core.keras_io import inference_copy
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.qat import LEARNING_RATE as QAT_LEARNING_RATE
    from edge_mnist.quantize.qat import qat_finetune
    from edge_mnist.registry.models import build
    from edge_mnist.train import TrainConfig, evaluate_keras, fit

    _, keras = import_tf()
    data = load_dataset(args.dataset)
    config = TrainConfig(epochs=args.epochs)
    calib = calibration_images(data, 500, config.seed)
    keras.utils.set_random_seed(config.seed)
    base = build(config.architecture, data.task)
    fit(base, data, args.epochs, config.batch_size, config.seed, config.learning_rate)
    rows = [(f"float, {args.epochs} epochs", evaluate_keras(base, data), None),
            (f"PTQ, {args.epochs} epochs (what `edge-mnist run` compares)", *int8_accuracy(base, calib, data))]
    total = args.epochs + args.qat_epochs
    keras.utils.set_random_seed(config.seed)
    longer = build(config.architecture, data.task)
    fit(longer, data, total, config.batch_size, config.seed, config.learning_rate)
    rows.append((f"float, {total} epochs", evaluate_keras(longer, data), None))
    rows.append((f"PTQ, {total} epochs", *int8_accuracy(longer, calib, data)))
    tuned = inference_copy(base)
    fit(tuned, data, args.qat_epochs, config.batch_size, config.seed, QAT_LEARNING_RATE)
    rows.append((f"float, {args.epochs} + {args.qat_epochs} epochs at QAT's learning rate", evaluate_keras(tuned, data),
                 None))
    rows.append((f"PTQ, {args.epochs} + {args.qat_epochs} epochs at QAT's learning rate (QAT's schedule without "
                 "fake quantization)", *int8_accuracy(tuned, calib, data)))
    for label, ranges in (("calibrated ranges (shipped)", calib), ("tfmot's default [-6, 6] start", None)):
        qat, _ = qat_finetune(base, data, args.qat_epochs, config.batch_size, config.seed, ranges)
        rows.append((f"QAT, {args.epochs} + {args.qat_epochs} epochs, {label}", *int8_accuracy(qat, calib, data)))
    print(f"\n{args.dataset}, 10,000 test images, int8 TFLite unless float:\n")
    print("| model | accuracy | ReLU output zero points |\n|---|---|---|")
    for label, accuracy, zero_points in rows:
        print(f"| {label} | {accuracy:.2%} | {'' if zero_points is None else zero_points} |")


if __name__ == "__main__":
    sys.exit(main())
