"""Phone photos of real digits through `edge-mnist predict`: the photo accuracy and preprocessing time.

    python benchmarks/photos.py

Takes the committed real MNIST test digits (tests/fixtures/mnist-digits, the first --digits of
1000) and renders each as a phone photo of dark ink on paper (phone_photo: 9x enlarged, turned
up to 5 degrees, off-centre on a 480x360 page lit with a gradient, sensor noise). The photos are
saved as JPEG in a temporary folder and classified the way a user's are, by
edge_mnist.predict.predict (what `edge-mnist predict` runs) with the committed MNIST model
(tests/fixtures/mnist_export/model_int8.tflite, verified against its manifest). Cases: the 28x28
digits themselves (PNG, lossless), photos in even light (gradient 0), photos with 50 grey levels
of light fall-off across the page, and with --harsh a harsher case (gradient 80, JPEG quality 50;
about 25 s more on a busy 2-core machine). Every photo case draws the same turns, placements and
noise from --seed, so the cases differ only in light and JPEG quality. The target is photo / 28x28
accuracy >= 0.90.

Then the preprocessing time per photo: `preprocess(load_image(file))`, what predict does to each
file before the model (JPEG decoding included), each photo timed once with time.perf_counter after
one warm-up photo, garbage collector paused; median and p90. For the first --timed gradient-50
photos of 480x360, and for --large photos of a 2048x1536 page with the digit 40x its size (those
are classified too: the accuracy table's last row, against the 28x28 top-1 of the same digits).

Prints Markdown tables and writes them, with a JSON of every figure beside, to
benchmarks/results/<date>-<HHMM>-photos.md and .json (--out names the .md). Needs numpy,
Pillow and the device runtimes only, no TensorFlow. The cases are rendered and classified --jobs
at a time (default: the core count, at most 4); the timing runs after them, alone.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DIGITS = ROOT / "tests" / "fixtures" / "mnist-digits"
MODEL_DIR = ROOT / "tests" / "fixtures" / "mnist_export"
SMALL_PAGE, SMALL_SCALE = (360, 480), 9  # (rows, columns): a 480x360 photo, the digit 252 pixels tall
LARGE_PAGE, LARGE_SCALE = (1536, 2048), 40  # a 2048x1536 photo (predict's reduction cap), the digit 1120 pixels
CASES = (  # name, light gradient (grey levels), JPEG quality
    ("photos, even light", 0, 75),
    ("photos, gradient 50", 50, 75),
)
HARSH = ("photos, gradient 80, JPEG 50 (harsh)", 80, 50)  # with --harsh
TARGET = 0.90  # photo accuracy / 28x28 accuracy


def phone_photo(digit: np.ndarray, rng, gradient: float = 50, page: tuple[int, int] = SMALL_PAGE,
                scale: int = SMALL_SCALE) -> Image.Image:
    """A white-on-black 28x28 digit as a phone would photograph it written on paper: dark ink,
    `scale` times larger, turned up to 5 degrees, somewhere off-centre on a page whose light falls
    off by `gradient` grey levels from one corner to the other, with sensor noise (sigma 6 levels)."""
    size = 28 * scale
    big = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    big = big.rotate(rng.uniform(-5, 5), Image.Resampling.BILINEAR)
    ink = np.zeros(page, np.float32)
    top, left = rng.integers(4, page[0] - size - 4), rng.integers(4, page[1] - size - 4)
    ink[top:top + size, left:left + size] = np.asarray(big, np.float32) / 255
    ys, xs = np.indices(page)
    ramp = (xs / page[1] + ys / page[0]) / 2
    pixels = (230 - gradient * ramp) * (1 - 0.8 * ink) + rng.normal(0, 6, page)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_photos(folder: Path, digits: np.ndarray, seed: int, gradient: float, quality: int,
                 page: tuple[int, int] = SMALL_PAGE, scale: int = SMALL_SCALE) -> list[Path]:
    """Each digit as a phone photo, saved as JPEG at `quality`; the file paths in digit order."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, digit in enumerate(digits):
        paths.append(folder / f"{i:04d}.jpg")
        phone_photo(digit, rng, gradient, page, scale).save(paths[-1], quality=quality)
    return paths


def accuracy(paths: list[Path], labels: np.ndarray) -> dict:
    """Top-1 of the committed MNIST model on these files through edge_mnist.predict.predict; a file
    predict could not read (an "error" entry) counts as wrong."""
    from edge_mnist.predict import predict

    entries, verified = predict(MODEL_DIR, [str(p) for p in paths])
    assert verified and [e["file"] for e in entries] == [str(p) for p in paths]
    hits = np.array([e.get("class", -1) for e in entries]) == labels
    return {"images": len(paths), "correct": int(hits.sum()), "top1": float(hits.mean()),
            "errors": sum("error" in e for e in entries), "hits": hits}


def preprocess_ms(paths: list[Path]) -> dict:
    """Milliseconds per photo of predict's per-file step, preprocess(load_image(file)): one
    warm-up call, then each photo timed once, garbage collector paused."""
    from edge_mnist.predict.preprocess import load_image, preprocess
    from edge_mnist.registry.datasets import DATASETS

    task = DATASETS["mnist"].task
    preprocess(load_image(paths[0]), task, str(paths[0]))
    samples = np.empty(len(paths))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, path in enumerate(paths):
            start = time.perf_counter()
            preprocess(load_image(path), task, str(path))
            samples[i] = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    samples *= 1e3
    return {"photos": len(paths), "p50_ms": float(np.median(samples)), "p90_ms": float(np.percentile(samples, 90)),
            "mean_ms": float(samples.mean()), "max_ms": float(samples.max())}


def run_case(folder: Path, digits: np.ndarray, labels: np.ndarray, seed: int, gradient: float | None,
             quality: int | None, page: tuple[int, int] = SMALL_PAGE, scale: int = SMALL_SCALE) -> tuple[list, dict]:
    """Write one case's files (gradient None: the 28x28 digits as PNG) and classify them: (paths, accuracy)."""
    if gradient is None:
        folder.mkdir(parents=True)
        paths = [folder / f"{i:04d}.png" for i in range(len(digits))]
        for digit, path in zip(digits, paths):
            Image.fromarray(digit).save(path)
    else:
        paths = write_photos(folder, digits, seed, gradient, quality, page, scale)
    return paths, accuracy(paths, labels)


def measure(args) -> dict:
    """Every case (rendered and classified --jobs at a time), then both timings alone, in one temporary folder."""
    from concurrent.futures import ProcessPoolExecutor

    from edge_mnist.core.machine import machine_info
    from edge_mnist.data import load_dataset
    from edge_mnist.folder.records import tool_versions

    data = load_dataset("mnist", DIGITS)
    digits, labels = data.x_test[:args.digits], data.y_test[:args.digits]
    cases = [("28x28 digits (PNG)", "28x28", None, None, len(digits), SMALL_PAGE, SMALL_SCALE)]
    cases += [(name, "480x360", gradient, quality, len(digits), SMALL_PAGE, SMALL_SCALE)
              for name, gradient, quality in CASES + ((HARSH,) if args.harsh else ())]
    timed_case = next(case for case in cases if case[1:4] == ("480x360", 50, 75))
    cases.append(("photos, gradient 50, large page", "2048x1536", 50, 75, args.large, LARGE_PAGE, LARGE_SCALE))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="photos-") as tmp:
        print(f"rendering and classifying {len(cases)} cases, {args.jobs} at a time", file=sys.stderr, flush=True)
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_case, Path(tmp) / f"case{i}", digits[:n], labels[:n], args.seed, gradient,
                                   quality, page, scale)
                       for i, (_, _, gradient, quality, n, page, scale) in enumerate(cases)]
            done = [future.result() for future in futures]
        rows = [{"case": name, "size": size, "gradient": gradient, "quality": quality, **result}
                for (name, size, gradient, quality, *_), (_, result) in zip(cases, done)]
        print("timing preprocessing, one photo at a time", file=sys.stderr, flush=True)
        small = done[cases.index(timed_case)][0][:args.timed]
        timed = [{"size": "480x360", "digit_px": 28 * SMALL_SCALE, **preprocess_ms(small)},
                 {"size": "2048x1536", "digit_px": 28 * LARGE_SCALE, **preprocess_ms(done[-1][0])}]
    base = rows[0]["hits"]
    for row in rows:  # against the 28x28 top-1 of the same digits
        row["digits_top1"] = float(base[:row["images"]].mean())
        row["ratio"] = row["top1"] / row["digits_top1"]
    for row in rows:
        del row["hits"]
    now = dt.datetime.now()
    return {"date": now.date().isoformat(), "time": now.strftime("%H:%M"), "machine": machine_info().to_json(),
            "versions": tool_versions(), "model": str(MODEL_DIR.relative_to(ROOT) / "model_int8.tflite"),
            "digits": len(digits), "seed": args.seed, "timed": args.timed, "large": args.large, "harsh": args.harsh,
            "jobs": args.jobs, "target_ratio": TARGET, "rows": rows, "timing": timed,
            "wall_seconds": time.perf_counter() - start}


def markdown(result: dict) -> str:
    """The committed results tables."""
    m = result["machine"]
    lines = [f"# Photo accuracy {result['date']} {result['time']}", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
             f"`python benchmarks/photos.py --digits {result['digits']} --seed {result['seed']} --timed "
             f"{result['timed']} --large {result['large']}{' --harsh' if result['harsh'] else ''}`: "
             f"{result['digits']} real MNIST test digits (tests/fixtures/mnist-digits), {result['model']} "
             f"through edge_mnist.predict.predict; {result['wall_seconds']:.0f} s in all.", "",
             "| case | image | light gradient | JPEG quality | images | correct | top-1 | 28x28 top-1, same digits "
             "| photo / 28x28 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        errors = f" ({r['errors']} unreadable)" if r["errors"] else ""
        lines.append(f"| {r['case']} | {r['size']} | {'' if r['gradient'] is None else r['gradient']} | "
                     f"{r['quality'] or ''} | {r['images']} | {r['correct']}{errors} | {r['top1']:.1%} | "
                     f"{r['digits_top1']:.1%} | {r['ratio']:.3f} |")
    worst = min(r["ratio"] for r in result["rows"] if r["size"] == "480x360" and r["gradient"] in (0, 50))
    verdict = "met" if worst >= result["target_ratio"] else "MISSED"
    lines += ["", f"Photos / 28x28 in even light and at gradient 50: worst {worst:.3f} "
                  f"(target >= {result['target_ratio']:.2f}: {verdict}).",
              "", "Preprocessing per photo, `preprocess(load_image(file))` (JPEG decoding included), each photo "
                  "timed once after one warm-up, gradient 50, JPEG 75:", "",
              "| photo | digit px | photos | median ms | p90 ms |", "|---|---|---|---|---|"]
    for t in result["timing"]:
        lines.append(f"| {t['size']} | {t['digit_px']} | {t['photos']} | {t['p50_ms']:.1f} | {t['p90_ms']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    """Measure, print the tables, write the .md and .json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", type=int, default=1000, help="test digits per case (the fixture has 1000)")
    ap.add_argument("--seed", type=int, default=0, help="turns, placements and noise of the photos")
    ap.add_argument("--harsh", action="store_true", help="add photos at gradient 80, JPEG quality 50")
    ap.add_argument("--timed", type=int, default=200, help="480x360 photos timed (of the gradient-50 case)")
    ap.add_argument("--large", type=int, default=12, help="2048x1536 photos rendered, timed and classified")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                    help="cases rendered and classified at once (the timing runs alone afterwards)")
    ap.add_argument("--out", type=Path, help="the results .md; a .json beside it "
                                              "(default benchmarks/results/<date>-<HHMM>-photos.md)")
    args = ap.parse_args()
    if not 1 <= args.digits <= 1000 or args.timed < 1 or not 1 <= args.large <= args.digits or args.jobs < 1:
        ap.error("--digits must be 1..1000, --timed and --jobs >= 1 and --large 1..--digits")
    result = measure(args)
    text = markdown(result)
    print(text)
    out = args.out or RESULTS / f"{result['date']}-{result['time'].replace(':', '')}-photos.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json').name}", file=sys.stderr)


if __name__ == "__main__":
    main()
