"""A model that really breaks post-training int8, through `debug` and `export --fallback` (README figures).

    python benchmarks/fallback.py --source export --out /tmp/fallback
    python benchmarks/fallback.py --source export --out /tmp/qat-fallback --method qat --factor 3000

Takes the trained reference CNN of --source (model_float32.keras), scales one output channel of
conv1 up by --factor and the matching input channel of conv2 down by the same factor. The float
model computes the same function (ReLU and MaxPool commute with a positive scale), but conv1's
per-tensor int8 activations now spend their 256 steps on that one channel. Then the real commands:
`export --int8 --model` (plain PTQ) and `check` (must fail), `debug` (must name conv1 first),
`export --int8 --fallback`, `bench` and `check` (must pass). Prints each command's figures. With
`--method qat` the same for the QAT files (a larger factor: one epoch of QAT recovers from 300x).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


# Each conv layer of the reference CNN and of a BatchNorm architecture with the layer that reads its output
# (the last conv's partner is the Dense after Flatten): where tests and benchmarks/equalize.py put an outlier.
OUTLIER_PAIRS = {"reference_cnn": {"conv1": "conv2", "conv2": "dense1"},
                 "compact": {"conv1": "conv2", "conv2": "conv3", "conv3": "dense1"}}


def outlier_channel(model, conv: str = "conv1", after: str = "conv2", channel: int = 3, factor: float = 300.0):
    """`model` (tf_keras) with `conv`'s output channel `channel` scaled by `factor` and `after`'s matching
    input channel by 1/factor: the same float function, ruinous for per-tensor int8 activations.

    A BatchNormalization right after `conv` takes the scale (its gamma and beta: the channel it writes is the
    outlier); a Dense `after` reading a Flatten has the channel's inputs at rows channel, channel + C, ...
    (NHWC), all scaled down."""
    layers = model.layers
    first = model.get_layer(conv)
    following = layers[layers.index(first) + 1]
    scaled = following if type(following).__name__ == "BatchNormalization" else first
    weights = scaled.get_weights()
    for index in range(min(2, len(weights))):
        weights[index][..., channel] *= factor  # kernel and bias, or gamma and beta
    scaled.set_weights(weights)
    second = model.get_layer(after)
    weights = second.get_weights()
    if weights[0].ndim == 4:
        weights[0][:, :, channel, :] /= factor
    else:
        weights[0][channel::first.get_weights()[0].shape[-1]] /= factor
    second.set_weights(weights)
    return model


def edge_mnist(*args) -> subprocess.CompletedProcess:
    """Run the real CLI; its output is shown as it is."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edge_mnist.cli", *map(str, args)], capture_output=True, text=True)
    print(f"$ edge-mnist {' '.join(map(str, args))}  (exit {proc.returncode}, {time.perf_counter() - start:.0f} s)"
          f"\n{proc.stdout}", flush=True)
    return proc


def main() -> None:
    """Make the broken model, then debug it and export it with and without --fallback."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("export"), help="Folder with a trained reference CNN.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", type=float, default=300.0)
    parser.add_argument("--method", choices=("ptq", "qat"), default="ptq")
    parser.add_argument("--data-dir", type=Path, default=None, help="The dataset's files, if not found by name.")
    parser.add_argument("--calib-samples", type=int, default=500)
    args = parser.parse_args()
    from edge_mnist.core.keras_io import load_keras, save_keras
    from edge_mnist.core.tfenv import import_tf

    import_tf()
    args.out.mkdir(parents=True, exist_ok=True)
    broken = args.out / "broken.keras"
    save_keras(outlier_channel(load_keras(args.source / "model_float32.keras"), factor=args.factor), broken)
    dataset = json.loads((args.source / "history.json").read_text())["dataset"]
    plain, mixed = args.out / "plain", args.out / "fallback"
    data = ("--dataset", dataset, *(("--data-dir", args.data_dir) if args.data_dir else ()))
    calib = ("--calib-samples", args.calib_samples)
    common = (*data, *calib, "--model", broken, "--int8", "--method", args.method)
    edge_mnist("export", "--out", plain, *common)
    edge_mnist("check", "--out", plain, "--skip-runtime", "tflm", *data)
    edge_mnist("debug", "--out", plain, *data, *calib)
    edge_mnist("export", "--fallback", "--out", mixed, *common)
    edge_mnist("bench", "--out", mixed, "--skip-runtime", "tflm", *data)
    edge_mnist("check", "--out", mixed, *data)
    manifest = json.loads((mixed / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        if artifact["details"].get("float_layers"):
            print(artifact["file"], artifact["size_bytes"], json.dumps(artifact["details"], indent=1))


if __name__ == "__main__":
    main()
