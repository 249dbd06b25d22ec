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
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_mnist.core.timing import interleaved_repeats
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.records import Manifest
from edge_mnist.quantize.cpu_build import cpu_build, find_stem
from edge_mnist.render.tables import markdown
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
    model = path.read_bytes()
    built, note = cpu_build(model, path)
    runners = {"int8": TFLiteRunner(path, threads=1),
               "cpu": TFLiteRunner(path.with_name(path.stem + "_cpu.tflite"), content=built, threads=1)}
    top1 = {name: r.predict(images).argmax(1) for name, r in runners.items()}
    stem = find_stem(read_tflite(model, path))
    if stem is not None:
        cut = {"int8 stem": stem_only(model, path, stem.last + 1),
               "cpu stem": stem_only(built, path, stem.last + 3)}
    calls = {name: r.bound_call(images[:1]) for name, r in runners.items()}
    if stem is not None:
        calls.update({name: raw_call(model) for name, model in cut.items()})
    p50s = interleaved_repeats(calls, rounds, runs, repeats)
    ratios = [p["cpu"] / p["int8"] for p in p50s]
    return {"file": path.name, "note": note, "accuracy": {k: float((v == labels).mean()) for k, v in top1.items()},
            "agreement": float((top1["int8"] == top1["cpu"]).mean()), "p50_us": p50s,
            "ratio_median": float(np.median(ratios)), "ratio_range": (min(ratios), max(ratios))}


def row(folder: Path, r: dict) -> list[str]:
    """One table row: the folder (an architecture's export), the file and its figures."""
    if not r["p50_us"] or "cpu stem" not in r["p50_us"][0]:
        stems = "no stem: the CPU build is the same file"
    else:
        stems = " / ".join(f"{np.median([p[k] for p in r['p50_us']]):.1f}" for k in ("int8 stem", "cpu stem"))
    p50 = " → ".join(f"{np.median([p[k] for p in r['p50_us']]):.1f}" for k in ("int8", "cpu"))
    return [folder.name, r["file"], f"{r['accuracy']['int8']:.2%} / {r['accuracy']['cpu']:.2%}",
            f"{r['agreement']:.2%}", p50,
            f"{r['ratio_median']:.2f} ({r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f})", stems]


HEADERS = ["folder", "file", "accuracy all-int / CPU", "agreement", "p50 µs all-int → CPU", "ratio (range)",
           "stem alone µs int8 / float"]


def main() -> None:
    """Measure every int8 .tflite of each folder, print one block per file and the table (also written to
    --results as DATE-cpu-build.md and .json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, action="append", help="an export folder; repeat for several "
                        "(default: export)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=None, help="folder for DATE-cpu-build.md and .json")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}; one thread")
    rows, records = [], []
    for folder in args.out or [Path("export")]:
        manifest = Manifest.load(folder)
        data = load_dataset(manifest.task.dataset)
        images, labels = to_float(data.x_test), data.y_test
        for artifact in manifest.artifacts.values():
            if artifact.file.endswith("int8.tflite"):
                r = measure(folder / artifact.file, images, labels, args.rounds, args.runs, args.repeats)
                p50 = "; ".join(" ".join(f"{k} {v:.1f}" for k, v in p.items()) for p in r["p50_us"])
                print(f"{folder}/{r['file']}: {r['note']}\n  accuracy all-integer {r['accuracy']['int8']:.2%}, "
                      f"CPU build {r['accuracy']['cpu']:.2%}, top-1 agreement {r['agreement']:.2%}\n"
                      f"  p50 us per repeat: {p50}\n  ratio CPU build / all-integer: median "
                      f"{r['ratio_median']:.2f} (range {r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f} over "
                      f"{args.repeats} repeats)", flush=True)
                rows.append(row(folder, r))
                records.append({"folder": str(folder), **r})
    text = markdown(HEADERS, rows)
    print(text)
    if args.results is not None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / f"{stamp}-cpu-build.md").write_text(text + "\n")
        (args.results / f"{stamp}-cpu-build.json").write_text(json.dumps(
            {"machine": platform.processor() or platform.machine(), "rounds": args.rounds, "runs": args.runs,
             "repeats": args.repeats, "rows": records}, indent=1))


if __name__ == "__main__":
    main()
