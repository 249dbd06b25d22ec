"""The int8 .onnx and .ort against the all-integer .tflite, interleaved, with the spread over repeats.

    python -m benchmarks.onnx_ratio --out export
    PYTHONPATH=/tmp/ort131 python -m benchmarks.onnx_ratio --out export   # another onnxruntime, e.g. 1.31.1

For each method's int8 files: single-image p50 of the .tflite (LiteRT's default interpreter), the
.onnx and the .ort (onnxruntime's default session), one thread each, taking turns in blocks of
--runs for --rounds rounds, --repeats times; prints each repeat's p50s and the ratios' median and
range. The issue's targets: .onnx <= 1.1x and .ort <= 1.3x the .tflite. No TensorFlow needed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge_mnist.core.timing import interleaved_repeats
from edge_mnist.runtime.onnx import OnnxRunner
from edge_mnist.runtime.tflite import TFLiteRunner


def main() -> None:
    """Measure each method's three int8 files present in the folder and print the ratios."""
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("export"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"onnxruntime {onnxruntime.__version__}; one thread; {args.repeats} repeats of {args.rounds} rounds "
          f"x {args.runs} runs")
    for stem in ("model_int8", "model_qat_int8"):
        if not (args.out / f"{stem}.tflite").exists():
            continue
        runners = {"tflite": TFLiteRunner(args.out / f"{stem}.tflite"), "onnx": OnnxRunner(args.out / f"{stem}.onnx"),
                   "ort": OnnxRunner(args.out / f"{stem}.ort")}
        image = np.zeros((1, *runners["tflite"].input_shape), np.float32)
        rows = interleaved_repeats({k: r.bound_call(image) for k, r in runners.items()}, args.rounds, args.runs,
                                   args.repeats)
        for kind in ("onnx", "ort"):
            ratios = [row[kind] / row["tflite"] for row in rows]
            spread = f"median {np.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
            print(f"{stem}.{kind} / .tflite: {spread}; "
                  f"p50 us {[round(row[kind], 1) for row in rows]} vs {[round(row['tflite'], 1) for row in rows]}")


if __name__ == "__main__":
    main()
