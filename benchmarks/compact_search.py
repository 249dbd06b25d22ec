"""The search behind the `compact` architecture (issue 27): candidate small CNNs for Cortex-M boards,
each trained 20 epochs on the full Fashion-MNIST training set and scored once on the test set.

Every candidate uses the same recipe, the one the search was about: BatchNorm between each
convolution and its ReLU (folded into the convolution by the TFLite converter), random horizontal
flips and shifts of up to 2 pixels (clothes are left-right symmetric; the digit notebooks' rotations
and zooms are not), Adam with a cosine learning-rate decay. Results are appended to
benchmarks/results/compact_search.jsonl with the parameter count and the wall time.

    TF_USE_LEGACY_KERAS=1 python benchmarks/compact_search.py --candidate B --epochs 20
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from edge_mnist.core.tfenv import import_tf  # noqa: E402
from edge_mnist.data import load_dataset, to_float  # noqa: E402

# Each candidate: (filters, kernel, stride, pool after) per convolution, then the dense width.
CANDIDATES = {
    "A": ([(32, 4, 2, True), (64, 3, 1, True)], 32),  # today's compact, with the recipe
    "B": ([(16, 3, 1, True), (32, 3, 1, True), (64, 3, 1, True)], 32),
    "C": ([(16, 3, 1, True), (32, 3, 1, True), (48, 3, 1, True)], 48),
    "D": ([(24, 3, 1, True), (48, 3, 1, True), (64, 3, 1, True)], 24),
    "E": ([(16, 3, 1, True), (32, 3, 1, True), (48, 3, 1, True)], 32),
}


def build(keras, convs, dense: int, shape=(28, 28, 1), classes: int = 10):
    """Conv (no bias) -> BatchNorm -> ReLU [-> MaxPool] per entry, Flatten, Dense ReLU, Dense softmax."""
    layers = [keras.layers.Input(shape)]
    for i, (filters, kernel, stride, pool) in enumerate(convs, 1):
        layers += [keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                                       name=f"conv{i}"),
                   keras.layers.BatchNormalization(name=f"bn{i}"), keras.layers.ReLU(name=f"relu{i}")]
        if pool:
            layers.append(keras.layers.MaxPooling2D(name=f"pool{i}"))
    layers += [keras.layers.Flatten(), keras.layers.Dense(dense, activation="relu", name="dense1"),
               keras.layers.Dense(classes, activation="softmax", name="probs")]
    return keras.Sequential(layers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    tf, keras = import_tf()
    tf.keras.utils.set_random_seed(args.seed)
    data = load_dataset("fashion-mnist")
    x_train, x_test = to_float(data.x_train), to_float(data.x_test)
    model = build(keras, *CANDIDATES[args.candidate])
    steps = args.epochs * (len(x_train) // 128 + 1)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, steps)),
                  "sparse_categorical_crossentropy", ["accuracy"])
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=args.seed),
                                keras.layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant", seed=args.seed)])
    train = (tf.data.Dataset.from_tensor_slices((x_train, data.y_train)).shuffle(60000, seed=args.seed).batch(128)
             .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(x_test, data.y_test, verbose=0)
    row = {"candidate": args.candidate, "layers": CANDIDATES[args.candidate], "parameters": model.count_params(),
           "epochs": args.epochs, "seed": args.seed, "lr": args.lr, "test_accuracy": round(float(accuracy), 5),
           "train_seconds": round(time.perf_counter() - start, 1)}
    out = Path(__file__).parent / "results" / "compact_search.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
