"""Every architecture through the main job on the full dataset: the README's architecture table.

    python benchmarks/architectures.py --dataset fashion-mnist --epochs 2 --out /tmp/archs

For each architecture this runs the real command, `edge-mnist run --arch A --epochs E --method
both`, in its own process, one after another (never two at once: the timings share the cores),
and reads the figures back from the folder it wrote: parameters and seconds per training epoch
(history.json: the training pass alone), float, PTQ and QAT int8 accuracy on the whole test set
and the single-image p50 of the int8 .tflite and .onnx (bench.json: 1 thread, 1000 runs after
100 warm-up), the int8 .tflite size (manifest.json), and whether the gate passed (the command's
exit code). `--epochs-for A=N` gives one architecture other epochs (the deep ones cost minutes
per epoch on 2 cores). Writes DATE-archs.json and DATE-archs.md under benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from edge_mnist.registry.models import ARCHITECTURES

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("architecture", "parameters", "epochs", "float", "PTQ int8", "QAT int8", "int8 size",
           "TFLite int8 p50 µs", "ONNX int8 p50 µs", "train s/epoch", "gate")


def run_one(arch: str, epochs: int, dataset: str, out: Path) -> dict:
    """`edge-mnist run` for one architecture; its figures read back from the folder it wrote."""
    folder = out / arch
    cmd = [str(Path(sys.executable).with_name("edge-mnist")), "run", "--arch", arch, "--epochs", str(epochs), "--method", "both",
           "--dataset", dataset, "--out", str(folder)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        lines = proc.stderr.strip().splitlines() or ["no output"]
        return {"architecture": arch, "epochs": epochs, "error": f"exit {proc.returncode}: {lines[-1]}"}
    history = json.loads((folder / "history.json").read_text())
    bench = {row["key"]: row for row in json.loads((folder / "bench.json").read_text())["rows"]}
    train_seconds = history["history"]["train_seconds"]
    return {
        "architecture": arch, "parameters": history["parameters"], "epochs": epochs,
        "float": bench["keras_float32"]["accuracy"], "ptq_int8": bench["tflite_int8"]["accuracy"],
        "qat_int8": bench["tflite_qat_int8"]["accuracy"], "ptq_onnx": bench["onnx_int8"]["accuracy"],
        "qat_onnx": bench["onnx_qat_int8"]["accuracy"], "int8_bytes": bench["tflite_int8"]["size_bytes"],
        "tflite_int8_p50_us": bench["tflite_int8"]["latency_us"]["p50"],
        "onnx_int8_p50_us": bench["onnx_int8"]["latency_us"]["p50"],
        "train_seconds_per_epoch": sum(train_seconds) / len(train_seconds),
        "gate_passed": proc.returncode == 0, "wall_seconds": wall,
        "gate_output": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "",
    }


def markdown(rows: list[dict]) -> str:
    """The README table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['architecture']} | | {r['epochs']} | {r['error']} |")
            continue
        lines.append(
            f"| {r['architecture']} | {r['parameters']:,} | {r['epochs']} | {r['float']:.2%} | {r['ptq_int8']:.2%} | "
            f"{r['qat_int8']:.2%} | {r['int8_bytes'] / 1024:.0f} KB | {r['tflite_int8_p50_us']:.0f} | "
            f"{r['onnx_int8_p50_us']:.0f} | {r['train_seconds_per_epoch']:.0f} | "
            f"{'pass' if r['gate_passed'] else 'FAIL'} |")
    return "\n".join(lines)


def main() -> None:
    """Run every (or the chosen) architecture and write the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--epochs-for", action="append", default=[], metavar="ARCH=N")
    ap.add_argument("--arch", action="append", choices=list(ARCHITECTURES), help="default: all")
    ap.add_argument("--out", type=Path, required=True, help="folder for the export folders")
    args = ap.parse_args()
    epochs = {a: args.epochs for a in ARCHITECTURES} | {k: int(v) for k, v in (e.split("=") for e in args.epochs_for)}
    rows = []
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
    for arch in args.arch or list(ARCHITECTURES):
        rows.append(run_one(arch, epochs[arch], args.dataset, args.out))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{stamp}-archs.json").write_text(json.dumps({"dataset": args.dataset, "rows": rows}, indent=1))
        (RESULTS / f"{stamp}-archs.md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
