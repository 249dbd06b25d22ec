"""What `--augment` gains in accuracy and costs in training speed, on the full dataset.

    python benchmarks/augment.py --dataset fashion-mnist --arch reference_cnn --epochs 2 6 --out /tmp/augment

For each epoch count, `edge-mnist train` runs twice in its own process, one after the other
(same seed, same architecture), without and with `--augment`, and the test accuracy and the
training pass's seconds per epoch are read back from each history.json. Prints a Markdown table
with the accuracy difference and the time ratio of each pair, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def train(arch: str, epochs: int, dataset: str, out: Path, augment: bool) -> dict:
    """One `edge-mnist train`; its history.json."""
    cmd = [str(Path(sys.executable).with_name("edge-mnist")), "train", "--arch", arch, "--epochs", str(epochs),
           "--dataset", dataset, "--out", str(out)] + (["--augment"] if augment else [])
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads((out / "history.json").read_text())


def main() -> None:
    """Both runs per epoch count, then the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--arch", default="reference_cnn")
    ap.add_argument("--epochs", type=int, nargs="+", default=[2])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    print("| epochs | plain | --augment | difference | s/epoch plain | s/epoch --augment | time ratio |")
    print("|---|---|---|---|---|---|---|")
    for epochs in args.epochs:
        plain, augmented = (train(args.arch, epochs, args.dataset, args.out / f"{flag}{epochs}", flag == "augment")
                            for flag in ("plain", "augment"))
        per_epoch = [sum(h["history"]["train_seconds"]) / epochs for h in (plain, augmented)]
        print(f"| {epochs} | {plain['test_accuracy']:.2%} | {augmented['test_accuracy']:.2%} | "
              f"{(augmented['test_accuracy'] - plain['test_accuracy']) * 100:+.2f} pp | {per_epoch[0]:.1f} | "
              f"{per_epoch[1]:.1f} | {per_epoch[1] / per_epoch[0]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
