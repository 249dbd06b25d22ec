"""A user's own Keras 3 model through `edge-mnist run --model`, on the full dataset.

    python benchmarks/user_model.py --dataset fashion-mnist --epochs 2 --out /tmp/user_model

Trains, with plain Keras 3 as a user would (`import keras`, not tf_keras), a small functional
model with a residual add, conv -> BatchNorm -> ReLU and a ReLU6 conv,
saves it as a .keras file, then runs the real command `edge-mnist run --model FILE --method both`
and prints the figures it measured: parameters, float / PTQ / QAT int8 accuracy, int8 size, p50
of the int8 .tflite and .onnx, and the gate's verdict (its exit code).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def residual_model(batchnorm_after_add: bool = False):
    """A functional model as users write them, in plain Keras 3 (tests/train/test_user_model.py uses it
    too): conv -> BatchNorm -> ReLU, a residual add, MaxPool, a ReLU6 conv, MaxPool, Flatten, a
    Dense and the softmax Dense. batchnorm_after_add puts a BatchNorm after the add, which tfmot's
    QAT cannot quantize."""
    import keras

    L = keras.layers
    image = keras.Input((28, 28, 1))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, padding="same")(image)))
    x = L.Add()([x, L.Conv2D(32, 3, padding="same", activation="relu")(x)])
    if batchnorm_after_add:
        x = L.BatchNormalization()(x)
    x = L.MaxPooling2D()(x)
    x = L.MaxPooling2D()(L.Conv2D(64, 3, activation="relu6")(x))
    x = L.Dense(64, activation="relu")(L.Flatten()(x))
    return keras.Model(image, L.Dense(10, activation="softmax")(x), name="user_resnet")


def main() -> None:
    """Train with Keras 3, save, run edge-mnist on the file, print one Markdown table row."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import keras

    from edge_mnist.data import load_dataset, to_float

    data = load_dataset(args.dataset, None)
    keras.utils.set_random_seed(0)
    model = residual_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(to_float(data.x_train), data.y_train.astype(np.int32), batch_size=128, epochs=args.epochs, verbose=2)
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / "mine.keras"
    model.save(source)
    folder = args.out / "export"
    cmd = [str(Path(sys.executable).with_name("edge-mnist")), "run", "--model", str(source), "--method", "both",
           "--dataset", args.dataset, "--out", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr[-2000:])
    rows = {row["key"]: row for row in json.loads((folder / "bench.json").read_text())["rows"]}
    print("| Keras version | parameters | float | PTQ int8 | QAT int8 | int8 size | TFLite int8 p50 µs | "
          "ONNX int8 p50 µs | gate |\n|---|---|---|---|---|---|---|---|---|")
    print(f"| {keras.__version__} | {model.count_params():,} | {rows['keras_float32']['accuracy']:.2%} | "
          f"{rows['tflite_int8']['accuracy']:.2%} | {rows['tflite_qat_int8']['accuracy']:.2%} | "
          f"{rows['tflite_int8']['size_bytes'] / 1024:.0f} KB | {rows['tflite_int8']['latency_us']['p50']:.0f} | "
          f"{rows['onnx_int8']['latency_us']['p50']:.0f} | {'pass' if proc.returncode == 0 else 'FAIL'} |")


if __name__ == "__main__":
    main()
