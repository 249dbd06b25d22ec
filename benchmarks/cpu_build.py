"""The CPU build of each int8 .tflite (quantize.cpu_build) against the all-integer file.

    python -m benchmarks.cpu_build --out export

For each int8 .tflite in the folder's manifest: top-1 on the test set of both files and their
agreement, then single-image p50 in LiteRT's default interpreter on one thread, the two files
interleaved in one process (blocks of --runs, --rounds rounds, repeated --repeats times), and the
ratio CPU build / all-integer per repeat, so the spread over repeats is shown. The same is measured
for the stem alone (each file cut after the stem's int8 output), which bounds what any faster stem
can give: the all-integer time minus its stem is the floor. No TensorFlow needed.
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from edge_mnist.core.timing import interleaved_repeats
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.records import Manifest
from edge_mnist.quantize.cpu_build import cpu_build, find_stem
from edge_mnist.runtime.tflite import TFLiteRunner, interpreter_module
from edge_mnist.runtime.tflite_graph import read_tflite


def stem_only(model: bytes, path: Path, operators: int) -> bytes:
    """`model` cut after its first `operators` operators, the last one's output made the graph's output."""
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    sub = obj.subgraphs[0]
    sub.operators = sub.operators[:operators]
    sub.outputs = [sub.operators[-1].outputs[0]]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def raw_call(model: bytes):
    """One invoke of `model` on a zero int8 image in LiteRT's default interpreter, one thread (a cut graph's
    output is not a classifier's, which the runners refuse)."""
    interpreter = interpreter_module().Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    entry = interpreter.get_input_details()[0]
    image = np.zeros(entry["shape"], entry["dtype"])

    def call():
        interpreter.set_tensor(entry["index"], image)
        interpreter.invoke()
    return call


def measure(path: Path, images: np.ndarray, labels: np.ndarray, rounds: int, runs: int, repeats: int) -> dict:
    """Accuracy of both files, and p50 of each with their ratio per repeat (interleaved)."""
    built, note = cpu_build(path.read_bytes(), path)
    runners = {"int8": TFLiteRunner(path, threads=1),
               "cpu": TFLiteRunner(path.with_name(path.stem + "_cpu.tflite"), content=built, threads=1)}
    top1 = {name: r.predict(images).argmax(1) for name, r in runners.items()}
    stem = find_stem(read_tflite(path.read_bytes(), path))
    if stem is not None:
        cut = {"int8 stem": stem_only(path.read_bytes(), path, stem.last + 1),
               "cpu stem": stem_only(built, path, stem.last + 3)}
    calls = {name: r.bound_call(images[:1]) for name, r in runners.items()}
    if stem is not None:
        calls.update({name: raw_call(model) for name, model in cut.items()})
    p50s = interleaved_repeats(calls, rounds, runs, repeats)
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
            p50 = "; ".join(" ".join(f"{k} {v:.1f}" for k, v in p.items()) for p in r["p50_us"])
            print(f"{r['file']}: {r['note']}\n  accuracy all-integer {r['accuracy']['int8']:.2%}, CPU build "
                  f"{r['accuracy']['cpu']:.2%}, top-1 agreement {r['agreement']:.2%}\n  p50 us per repeat: {p50}\n"
                  f"  ratio CPU build / all-integer: median {r['ratio_median']:.2f} "
                  f"(range {r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f} over {args.repeats} repeats)")


if __name__ == "__main__":
    main()
