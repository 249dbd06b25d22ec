"""Reproducible performance suite: every artifact in an export folder, plus Keras float, in one run.

    python benchmarks/suite.py --out export

Each artifact is measured in its own child process, so peak resident memory is that of one
runtime, with the same timing code as `edge-mnist bench` (edge_mnist.core.timing). The headline
ratios are measured again in one process with the candidates interleaved block by block, so
a noisy neighbour slows both sides alike. Training speed (`edge-mnist train`'s tf.data
pipeline against model.fit on in-memory arrays) is measured the same interleaved way.
Writes benchmarks/results/<date>-<HHMM>.json and .md and a latency plot (log scale).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_mnist.core.machine import machine_info
from edge_mnist.core.timing import interleaved_p50, latency_us, load_seconds, throughput_ips
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.records import Manifest, tool_versions
from edge_mnist.folder.verify import read_verified
from edge_mnist.registry.formats import FORMATS
from edge_mnist.runtime import open_model

# Multiply-accumulates of the reference CNN per image: conv1 26*26*32*9, conv2 11*11*64*9*32,
# dense1 1600*512, dense2 512*10.
MACS = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 512 + 512 * 10
HERE = Path(__file__).parent
BATCHES = (1, 32, 256)
PAIRED = ("tflite_int8", "tflite_int8_cpu", "onnx_int8", "ort_int8", "tflite_qat_int8", "tflite_qat_int8_cpu",
          "onnx_qat_int8", "ort_qat_int8", "keras_float32")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    VmHWM belongs to this process image alone; ru_maxrss is not used where VmHWM exists
    because Linux carries the parent's peak across fork+exec into it (every child would
    report at least the suite's own peak).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_one(path: Path, images: np.ndarray, threads: int, runs: int, warmup: int) -> dict:
    """All figures for one artifact, in this (child) process."""
    runner = open_model(path, threads)
    row = {"load_s": load_seconds(lambda: open_model(path, threads)),
           "latency_us": latency_us(runner.bound_call(images[:1]), runs=runs, warmup=warmup),
           "throughput_ips": {str(b): throughput_ips(runner.bound_call(images[:b]), b) for b in BATCHES}}
    if runner.runtime == "keras":
        model = runner.model
        row["keras_predict_latency_us"] = latency_us(lambda: model.predict(images[:1], verbose=0),
                                                     runs=max(50, runs // 20), warmup=10)
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def measure_paired(paths: dict[str, Path], images: np.ndarray, threads: int, runs: int, rounds: int) -> dict:
    """p50 of each model in alternating blocks in one process; median over rounds, and ratios."""
    calls = {key: open_model(path, threads).bound_call(images[:1]) for key, path in paths.items()}
    block_runs = {key: runs if key != "keras_float32" else max(20, runs // 20) for key in calls}
    blocks = interleaved_p50(calls, rounds, block_runs)
    p50 = {key: float(np.median(v)) for key, v in blocks.items()}
    return {"rounds": rounds, "runs_per_block": runs, "p50_us": p50, "block_p50s_us": blocks, "ratios": ratios(p50)}


def ratios(p50: dict[str, float]) -> dict:
    """Every int8 .onnx, .ort and CPU-build .tflite over TFLite int8 (PTQ; QAT ones over the QAT .tflite too),
    and the Keras direct call over TFLite int8, where both exist."""
    out = {}
    for key in ("tflite_int8_cpu", "onnx_int8", "ort_int8", "tflite_qat_int8_cpu", "onnx_qat_int8", "ort_qat_int8"):
        for base in ("tflite_int8", "tflite_qat_int8" if "qat" in key else None):
            if base and {key, base} <= p50.keys():
                out[f"{key}_over_{base}"] = p50[key] / p50[base]
    if {"keras_float32", "tflite_int8"} <= p50.keys():
        out["keras_direct_over_tflite_int8"] = p50["keras_float32"] / p50["tflite_int8"]
    return out


def measure_training(dataset: str, epochs: int, rounds: int, batch_size: int = 128) -> dict:
    """Seconds per 60k-image training pass, tf.data pipeline vs in-memory arrays, interleaved.

    Each fit runs `epochs` + 1 epochs and the first (graph tracing) is dropped; validation is
    excluded from the timed pass (train.epoch_timer).
    """
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.registry.models import build
    from edge_mnist.train import fit

    _, keras = import_tf()
    data = load_dataset(dataset)
    seconds: dict[str, list[float]] = {"tf.data": [], "arrays": []}
    for _ in range(rounds):
        for feed in seconds:
            keras.utils.set_random_seed(0)
            metrics = fit(build("reference_cnn", data.task), data, epochs + 1, batch_size, 0, 1e-3, feed=feed)
            seconds[feed] += metrics["train_seconds"][1:]
    median = {feed: float(np.median(s)) for feed, s in seconds.items()}
    return {"images": int(len(data.x_train)), "batch_size": batch_size, "seconds_per_epoch": seconds,
            "median_seconds": median, "images_per_second": {f: len(data.x_train) / s for f, s in median.items()},
            "pipeline_over_arrays": median["tf.data"] / median["arrays"]}


def child(*args: str) -> dict:
    """Run this script in a fresh process with `args`; its last stdout line is JSON."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"suite child {' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli_bench_p50(out: Path, tmp: Path, threads: int) -> dict:
    """`edge-mnist bench` on a copy of the folder (the user's bench.json is left alone): p50 per artifact."""
    copy = tmp / "bench_copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("bench.json"))
    cmd = [sys.executable, "-c", "from edge_mnist.cli import main; main()", "bench", "--out", str(copy),
           "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"edge-mnist bench failed:\n{proc.stderr[-2000:]}")
    rows = json.loads((copy / "bench.json").read_text())["rows"]
    return {r["key"]: r["latency_us"]["p50"] for r in rows if r["latency_us"] is not None}  # TFLM is untimed


def run_suite(args) -> dict:
    """Every artifact in its own child, then the paired ratios and the training comparison."""
    manifest = Manifest.load(args.out)
    common = ["--threads", str(args.threads), "--runs", str(args.runs), "--warmup", str(args.warmup)]
    rows, paths = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, to_float(load_dataset(manifest.task.dataset).x_test[:max(BATCHES)]))
        for fmt in (f for f in FORMATS if f.key in manifest.artifacts and f.runnable):
            artifact = manifest.artifacts[fmt.key]
            paths[fmt.key] = args.out / fmt.file
            read_verified(paths[fmt.key], artifact.sha256, artifact.size_bytes)
            print(f"measuring {fmt.file}", file=sys.stderr)
            row = child("--one", str(paths[fmt.key]), "--images", str(images), *common)
            row.update(artifact=fmt.file, key=fmt.key, runtime=fmt.runtime, precision=fmt.precision,
                       method=fmt.method, size_bytes=manifest.artifacts[fmt.key].size_bytes)
            row["gmacs_per_s"] = MACS / row["latency_us"]["p50"] / 1e3
            rows.append(row)
        print("measuring the headline ratios, interleaved", file=sys.stderr)
        pair_args = [a for key in PAIRED if key in paths for a in ("--pair", f"{key}={paths[key]}")]
        paired = child(*pair_args, "--images", str(images), "--rounds", str(args.rounds), *common)
        print("running edge-mnist bench on a copy of the folder, for comparison", file=sys.stderr)
        cli_p50 = cli_bench_p50(args.out, Path(tmp), args.threads)
        for row in rows:
            row["cli_bench_p50_us"] = cli_p50.get(row["key"])
    baseline = child("--baseline")
    training = None
    if args.train_epochs:
        print("measuring training speed (tf.data vs arrays)", file=sys.stderr)
        training = child("--train", str(args.train_epochs), "--rounds", str(args.train_rounds),
                         "--dataset", manifest.task.dataset)
    sizes = {r["key"]: r["size_bytes"] for r in rows}
    size_ratio = sizes["tflite_int8"] / sizes["tflite_float32"] if {"tflite_int8", "tflite_float32"} <= sizes.keys() else None
    now = dt.datetime.now()
    return {"date": now.date().isoformat(), "time": now.strftime("%H:%M"), "machine": machine_info().to_json(),
            "versions": tool_versions(), "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "macs_per_image": MACS, "baseline_rss_mb": baseline["peak_rss_mb"], "rows": rows,
            "ratios_separate_processes": ratios({r["key"]: r["latency_us"]["p50"] for r in rows}),
            "paired": paired, "tflite_int8_size_over_float": size_ratio, "training": training}


def markdown(result: dict) -> str:
    """The committed results table."""
    m = result["machine"]
    head = ("| artifact | size MB | load ms | p50 µs | p90 µs | p99 µs | p99.9 µs | mean ± std µs | img/s b1 | b32 | b256 "
            "| peak RSS MB | GMAC/s | `edge-mnist bench` p50 µs |\n|" + "---|" * 14)
    lines = [f"# Results {result['date']} {result.get('time', '')}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}; SIMD flags {' '.join(m['flags'])}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
             f"Threads {result['threads']} for every runtime; {result['runs']} timed single-image runs after "
             f"{result['warmup']} warm-up, each artifact in its own process; {result['macs_per_image']:,} MACs per image. "
             f"Peak RSS of a bare Python + numpy + edge_mnist.runtime process: {result['baseline_rss_mb']:.0f} MB. "
             "The last column is `edge-mnist bench` (1000 runs after 100 warm-up) on a copy of the same files, "
             "in the same suite run: the two share edge_mnist.core.timing.",
             "", head]
    for r in result["rows"]:
        lat, tp = r["latency_us"], r["throughput_ips"]
        lines.append(f"| {r['artifact']} | {r['size_bytes'] / 1e6:.2f} | {r['load_s'] * 1e3:.1f} | {lat['p50']:.1f} | "
                     f"{lat['p90']:.1f} | {lat['p99']:.1f} | {lat['p999']:.1f} | {lat['mean']:.1f} ± {lat['std']:.1f} | "
                     f"{tp['1']:.0f} | {tp['32']:.0f} | {tp['256']:.0f} | {r['peak_rss_mb']:.0f} | {r['gmacs_per_s']:.2f} | "
                     f"{r['cli_bench_p50_us']:.1f} |")
        if "keras_predict_latency_us" in r:
            lat = r["keras_predict_latency_us"]
            lines.append(f"| {r['artifact']} via model.predict | | | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} "
                         f"| {lat['p999']:.1f} | {lat['mean']:.1f} ± {lat['std']:.1f} | | | | | | |")
    p = result["paired"]
    lines += ["", f"Headline ratios, measured interleaved in one process ({p['rounds']} rounds of {p['runs_per_block']} "
              "runs per model; median of the block p50s):", ""]
    lines += [f"- {k}: p50 {v:.1f} µs" for k, v in p["p50_us"].items()]
    lines += [f"- **{k.replace('_', ' ')} = {v:.2f}×**" for k, v in p["ratios"].items()]
    if result["tflite_int8_size_over_float"]:
        lines.append(f"- **int8 / float TFLite size = {result['tflite_int8_size_over_float']:.3f}**")
    lines.append("- from the separate-process rows above: " + ", ".join(
        f"{k.replace('_', ' ')} = {v:.2f}×" for k, v in result["ratios_separate_processes"].items()))
    t = result["training"]
    if t:
        lines += ["", f"Training, {t['images']:,} images per epoch, batch {t['batch_size']}, CPU, validation excluded "
                  "(first epoch of each fit dropped; fits interleaved):", ""]
        for feed, secs in t["seconds_per_epoch"].items():
            lines.append(f"- {feed}: median {t['median_seconds'][feed]:.2f} s/epoch "
                         f"({t['images_per_second'][feed]:.0f} images/s); epochs {', '.join(f'{s:.2f}' for s in secs)}")
        lines.append(f"- tf.data / arrays time = {t['pipeline_over_arrays']:.2f}")
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
    ax.set_xlabel("single-image latency, µs (bar p50, whisker p99), log scale")
    ax.set_title(f"{result['machine']['cpu']}, {result['threads']} thread(s), {result['date']}", fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    """Options of the suite and of its child processes (the latter hidden from --help)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("export"), help="export folder with manifest.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2000, help="timed single-image runs per artifact")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds for the headline ratios")
    ap.add_argument("--train-epochs", type=int, default=2, help="timed epochs per fit; 0 skips training")
    ap.add_argument("--train-rounds", type=int, default=2)
    ap.add_argument("--results", type=Path, default=HERE / "results")
    hidden = argparse.SUPPRESS
    ap.add_argument("--one", type=Path, help=hidden)
    ap.add_argument("--pair", action="append", default=[], help=hidden)
    ap.add_argument("--images", type=Path, help=hidden)
    ap.add_argument("--baseline", action="store_true", help=hidden)
    ap.add_argument("--train", type=int, help=hidden)
    ap.add_argument("--dataset", default="fashion-mnist", help=hidden)
    return ap.parse_args()


def main() -> None:
    """Parent: run the suite and write results. Child: measure one thing and print JSON."""
    args = parse_args()
    if args.one or args.pair:
        images = np.load(args.images)
        if args.one:
            print(json.dumps(measure_one(args.one, images, args.threads, args.runs, args.warmup)))
        else:
            paths = dict(p.split("=", 1) for p in args.pair)
            print(json.dumps(measure_paired(paths, images, args.threads, max(100, args.runs // 10), args.rounds)))
        return
    if args.baseline:
        import edge_mnist.runtime  # noqa: F401  (what every runtime child imports before its model)

        print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
        return
    if args.train:
        print(json.dumps(measure_training(args.dataset, args.train, args.rounds)))
        return
    result = run_suite(args)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"{result['date']}-{result['time'].replace(':', '')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    plot(result, stem.with_suffix(".png"))
    print(markdown(result))


if __name__ == "__main__":
    main()
