"""The CPU build of each int8 .tflite (quantize.cpu_build) against the all-integer file.

    python -m benchmarks.cpu_build --out export

For each int8 .tflite in the folder's manifest: top-1 on the test set of both files and their
agreement, then single-image p50 in LiteRT's default interpreter on one thread, the two files
interleaved in one process (blocks of --runs, --rounds rounds, repeated --repeats times), and the
ratio CPU build / all-integer per repeat, so the spread over repeats is shown. No TensorFlow needed.
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from edge_mnist.core.timing import interleaved_p50
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.records import Manifest
from edge_mnist.quantize.cpu_build import cpu_build
from edge_mnist.runtime.tflite import TFLiteRunner


def measure(path: Path, images: np.ndarray, labels: np.ndarray, rounds: int, runs: int, repeats: int) -> dict:
    """Accuracy of both files, and p50 of each with their ratio per repeat (interleaved)."""
    built, note = cpu_build(path.read_bytes(), path)
    runners = {"int8": TFLiteRunner(path, threads=1),
               "cpu": TFLiteRunner(path.with_name(path.stem + "_cpu.tflite"), content=built, threads=1)}
    top1 = {name: r.predict(images).argmax(1) for name, r in runners.items()}
    calls = {name: r.bound_call(images[:1]) for name, r in runners.items()}
    p50s = []
    for _ in range(repeats):
        blocks = interleaved_p50(calls, rounds, {name: runs for name in calls})
        p50s.append({name: float(np.median(v)) for name, v in blocks.items()})
    ratios = [p["cpu"] / p["int8"] for p in p50s]
    return {"file": path.name, "note": note, "accuracy": {k: float((v == labels).mean()) for k, v in top1.items()},
            "agreement": float((top1["int8"] == top1["cpu"]).mean()), "p50_us": p50s,
            "ratio_median": float(np.median(ratios)), "ratio_range": (min(ratios), max(ratios))}


def main() -> None:
    """Measure every int8 .tflite of the folder and print one block per file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("export"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    manifest = Manifest.load(args.out)
    data = load_dataset(manifest.task.dataset)
    images, labels = to_float(data.x_test), data.y_test
    print(f"{platform.processor() or platform.machine()}; {len(images):,} test images; one thread")
    for artifact in manifest.artifacts.values():
        if artifact.file.endswith("int8.tflite"):
            r = measure(args.out / artifact.file, images, labels, args.rounds, args.runs, args.repeats)
            p50 = "; ".join(f"{p['int8']:.1f} -> {p['cpu']:.1f}" for p in r["p50_us"])
            print(f"{r['file']}: {r['note']}\n  accuracy all-integer {r['accuracy']['int8']:.2%}, CPU build "
                  f"{r['accuracy']['cpu']:.2%}, top-1 agreement {r['agreement']:.2%}\n  p50 us per repeat: {p50}\n"
                  f"  ratio CPU build / all-integer: median {r['ratio_median']:.2f} "
                  f"(range {r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f} over {args.repeats} repeats)")


if __name__ == "__main__":
    main()
