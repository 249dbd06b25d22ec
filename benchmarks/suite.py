"""Reproducible performance suite: every artifact in an export folder, plus Keras float, in one run.

    python benchmarks/suite.py --out export --threads 1 --runs 2000

Each artifact is measured in its own child process (so peak resident memory is per runtime),
with the same timing code as `edge-mnist bench` (edge_mnist.timing). Writes
benchmarks/results/<date>.json and .md and a latency plot (log scale).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge_mnist.bench import machine_info
from edge_mnist.convert.manifest import Manifest, tool_versions
from edge_mnist.data import load_dataset, to_float
from edge_mnist.formats import FORMATS
from edge_mnist.runtime import open_model
from edge_mnist.timing import latency_us, load_seconds, throughput_ips

# Multiply-accumulates of the reference CNN per image: conv1 26*26*32*9, conv2 11*11*64*9*32,
# dense1 1600*512, dense2 512*10.
MACS = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 512 + 512 * 10
HERE = Path(__file__).parent


def measure_one(path: Path, dataset: str, threads: int, runs: int, warmup: int) -> dict:
    """All figures for one artifact, in this (child) process."""
    runner = open_model(path, threads)
    x = to_float(load_dataset(dataset).x_test[:256])
    row = {"load_s": load_seconds(lambda: open_model(path, threads)),
           "latency_us": latency_us(runner.bound_call(x[:1]), runs=runs, warmup=warmup),
           "throughput_ips": {str(b): throughput_ips(runner.bound_call(x[:b]), b) for b in (1, 32, 256)}}
    if runner.runtime == "keras":
        model = runner.model
        row["keras_predict_latency_us"] = latency_us(lambda: model.predict(x[:1], verbose=0),
                                                     runs=max(50, runs // 20), warmup=10)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def cpu_flags() -> list[str]:
    """The SIMD flags that matter for int8 and float kernels."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4", "amx")))


def run_suite(out: Path, threads: int, runs: int, warmup: int) -> dict:
    """Measure every artifact listed in the manifest, each in a child process."""
    manifest = Manifest.load(out)
    rows = []
    for fmt in (f for f in FORMATS if f.key in manifest.artifacts):
        path = manifest.verify(fmt.key)
        print(f"measuring {fmt.file}", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--one", str(path), "--dataset", manifest.dataset,
                               "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup)],
                              capture_output=True, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(artifact=fmt.file, key=fmt.key, runtime=fmt.runtime, precision=fmt.precision, method=fmt.method,
                   size_bytes=manifest.artifacts[fmt.key]["size_bytes"])
        row["gmacs_per_s"] = MACS / row["latency_us"]["p50"] / 1e3
        rows.append(row)
    history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else {}
    return {"date": dt.date.today().isoformat(), "machine": {**machine_info(), "flags": cpu_flags()},
            "versions": tool_versions(), "threads": threads, "runs": runs, "warmup": warmup, "macs_per_image": MACS,
            "training_images_per_second": history.get("history", {}).get("images_per_second"),
            "rows": rows, "ratios": ratios(rows)}


def ratios(rows: list[dict]) -> dict:
    """The headline ratios, all from this one run."""
    by = {r["key"]: r for r in rows}
    p50 = {k: r["latency_us"]["p50"] for k, r in by.items()}
    out = {}
    if {"onnx_int8", "tflite_int8"} <= p50.keys():
        out["onnx_int8_p50_over_tflite_int8"] = p50["onnx_int8"] / p50["tflite_int8"]
    if {"keras_float32", "tflite_int8"} <= p50.keys():
        out["keras_direct_p50_over_tflite_int8"] = p50["keras_float32"] / p50["tflite_int8"]
    if {"tflite_int8", "tflite_float32"} <= by.keys():
        out["tflite_int8_size_over_float"] = by["tflite_int8"]["size_bytes"] / by["tflite_float32"]["size_bytes"]
    return out


def markdown(result: dict) -> str:
    """The committed results table."""
    head = ("| artifact | size MB | load ms | p50 us | p90 us | p99 us | p99.9 us | mean ± std us | img/s b1 | b32 | b256 "
            "| peak RSS MB | GMAC/s |\n|" + "---|" * 13)
    lines = [f"# Results {result['date']}", "", f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
             f"flags {' '.join(result['machine']['flags'])}; threads {result['threads']}; {result['runs']} timed runs "
             f"after {result['warmup']} warm-up.", "", head]
    for r in result["rows"]:
        lat, tp = r["latency_us"], r["throughput_ips"]
        lines.append(f"| {r['artifact']} | {r['size_bytes'] / 1e6:.2f} | {r['load_s'] * 1e3:.1f} | {lat['p50']:.1f} | "
                     f"{lat['p90']:.1f} | {lat['p99']:.1f} | {lat['p999']:.1f} | {lat['mean']:.1f} ± {lat['std']:.1f} | "
                     f"{tp['1']:.0f} | {tp['32']:.0f} | {tp['256']:.0f} | {r['peak_rss_mb']:.0f} | {r['gmacs_per_s']:.2f} |")
        if "keras_predict_latency_us" in r:
            lines.append(f"| {r['artifact']} via model.predict | | | {r['keras_predict_latency_us']['p50']:.1f} | | | | | | | | | |")
    lines += ["", "Ratios (same run): " + ", ".join(f"{k} = {v:.3g}" for k, v in result["ratios"].items())]
    if result["training_images_per_second"]:
        lines.append(f"Training (edge-mnist train, from history.json): "
                     f"{', '.join(f'{v:.0f}' for v in result['training_images_per_second'])} images/s per epoch.")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """p50 latency per artifact with p90/p99 whiskers, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["artifact"] for r in result["rows"]]
    p50 = np.array([r["latency_us"]["p50"] for r in result["rows"]])
    p99 = np.array([r["latency_us"]["p99"] for r in result["rows"]])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(names, p50, xerr=[np.zeros_like(p50), p99 - p50], color="tab:blue", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("single-image latency, us (bar p50, whisker p99)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    """CLI of the suite (and of its per-artifact child processes)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("export"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dataset", default="fashion-mnist", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.dataset, args.threads, args.runs, args.warmup)))
        return
    result = run_suite(args.out, args.threads, args.runs, args.warmup)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stem = results / result["date"]
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    plot(result, stem.with_suffix(".png"))
    print(markdown(result))


if __name__ == "__main__":
    main()
