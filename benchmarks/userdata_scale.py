"""A 100,000-image folder of your own data: what indexing, fingerprinting and one training epoch cost.

    python -m benchmarks.userdata_scale --dir /work/scale-data

Writes (or reuses) an image folder of real Fashion-MNIST items under --dir, outside the repository: the 60,000
training images and the first 40,000 again mirrored left-right (100,000 train), and the 10,000 test images,
each padded to 32x32 and tinted with its class's colour (tinted), saved as RGB PNG in class folders. Then, in
a child process each (so the peak resident memory is that run's alone; benchmarks/suite.py's peak_rss_mb):

- streamed: index the folder and fingerprint it, with the files' pages evicted first (posix_fadvise
  DONTNEED; "cold") and again at once ("warm"), then `edge-mnist train`'s library call (compact, one epoch)
  on load_folder's Dataset, whose train split is read from its files (userdata.FileImages);
- streamed, a tenth: the same on 10,000 of the train images (1,000 a class, hard links in a sibling folder)
  and the same test split: the peak RSS that does not depend on the train split's size;
- arrays (unless --no-arrays): the same training with the train split decoded into one array first, the way
  image folders were read before they were streamed, for comparison.

Writes DATE-userdata-scale.json and .md under benchmarks/results/. Timings depend on the machine and on who
else uses it; the results say which.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.suite import peak_rss_mb
from edge_mnist.render.tables import markdown

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_IMAGES, MIRRORED = 100_000, 40_000
DONE = ".complete"  # written last: a folder without it was cut short and is written again
PALETTE = np.array([[255, 64, 64], [64, 255, 64], [64, 64, 255], [255, 255, 64], [255, 64, 255],
                    [64, 255, 255], [255, 160, 64], [160, 64, 255], [128, 255, 128], [255, 255, 255]], np.uint32)


def tinted(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fashion-MNIST items padded to 32x32 and tinted with one colour per class: (N, 32, 32, 3) uint8."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype(np.uint32)
    return (padded[..., None] * PALETTE[labels][:, None, None, :] // 255).astype(np.uint8)


def safe_names(names) -> list[str]:
    """Class names as index-prefixed folder names that sort in class order and hold no path separator."""
    return [f"{i}_{name.replace('/', '-').replace(' ', '-')}" for i, name in enumerate(names)]


def write_scale_folder(root: Path) -> Path:
    """The 100k-train, 10k-test tinted Fashion-MNIST PNG folder at root (kept when already complete)."""
    from PIL import Image

    from edge_mnist.data import load_dataset
    from edge_mnist.registry.datasets import DEBIAN_FASHION_DIR, FASHION

    if (root / DONE).is_file():
        return root
    full = load_dataset("fashion-mnist", DEBIAN_FASHION_DIR)
    x_train = np.concatenate([full.x_train, full.x_train[:MIRRORED, :, ::-1]])
    y_train = np.concatenate([full.y_train, full.y_train[:MIRRORED]]).astype(np.int64)
    names = safe_names(FASHION)
    for split, x, y in (("train", x_train, y_train), ("test", full.x_test, full.y_test.astype(np.int64))):
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(tinted(x, y), y)):
            Image.fromarray(image).save(root / split / names[label] / f"{i:06d}.png")
    (root / DONE).write_text(f"{len(x_train)} train, {len(full.x_test)} test\n")
    return root


def subset_folder(root: Path, train_per_class: int) -> Path:
    """A sibling of root with the first `train_per_class` train images of each class and the whole test split,
    hard-linked (no copy): the streamed run at a tenth of the size, to show what does not grow with it."""
    subset = root.with_name(f"{root.name}-subset{train_per_class}")
    if (subset / DONE).is_file():
        return subset
    for source in sorted((root / "train").iterdir()) + sorted((root / "test").iterdir()):
        target = subset / source.relative_to(root)
        target.mkdir(parents=True, exist_ok=True)
        files = sorted(source.iterdir())
        for path in files[:train_per_class] if source.parent.name == "train" else files:
            if not (target / path.name).exists():
                os.link(path, target / path.name)
    (subset / DONE).write_text(f"{train_per_class} train images a class, the whole test split\n")
    return subset


def evict(root: Path) -> int:
    """Drop the image files' pages from the page cache (posix_fadvise DONTNEED; clean pages need no root):
    the next read comes from the disk. Directory and inode caches stay warm. Returns how many files."""
    count = 0
    for path in root.rglob("*.png"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        count += 1
    return count


def timed(call) -> tuple[float, object]:
    """Seconds one call takes, and what it returns."""
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def child(mode: str, root: Path, epochs: int) -> dict:
    """One measured run in this (child) process: index and fingerprint times (streamed), then training."""
    from edge_mnist import userdata
    from edge_mnist.train import TrainConfig, train

    row: dict = {"mode": mode, "folder": str(root)}
    if mode.startswith("streamed"):
        evict(root)
        row["index_cold_s"], folder = timed(lambda: userdata.index_folder(root))
        row["index_warm_s"], _ = timed(lambda: userdata.index_folder(root))
        evict(root)
        row["fingerprint_cold_s"], _ = timed(folder.fingerprint)
        row["fingerprint_warm_s"], _ = timed(folder.fingerprint)
    row["load_s"], data = timed(lambda: userdata.load_folder(root))
    if mode == "arrays":
        row["decode_train_s"], pixels = timed(lambda: data.x_train[:])
        data = replace(data, x_train=pixels)
    row["train_images"], row["test_images"] = len(data.x_train), len(data.x_test)
    row["image_shape"] = list(data.task.input_shape)
    row["train_pixel_mb"] = int(np.prod(data.x_train.shape)) / 2 ** 20
    row["peak_rss_before_training_mb"] = peak_rss_mb()
    with tempfile.TemporaryDirectory() as out:
        history = train(data, Path(out), TrainConfig(epochs=epochs, architecture="compact"))
    row["epoch_train_s"] = history["history"]["train_seconds"]
    row["images_per_second"] = history["history"]["images_per_second"]
    row["test_accuracy"] = history["test_accuracy"]
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def run_child(mode: str, root: Path, epochs: int) -> dict:
    """child() on the folder at root in a fresh interpreter; its JSON is the last line it prints."""
    cmd = [sys.executable, "-m", "benchmarks.userdata_scale", "--dir", str(root), "--epochs", str(epochs),
           "--child", mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """One row per run: the figures docs/your-own-data.md quotes."""
    def cell(row, key, fmt):
        return fmt.format(row[key]) if key in row else "-"

    return markdown(
        ["train split", "images", "pixels if decoded", "index cold / warm", "fingerprint cold / warm",
         "epoch (train pass)", "images/s", "peak RSS before training", "peak RSS"],
        [[r["mode"], f"{r['train_images']:,} x {'x'.join(map(str, r['image_shape']))}",
          f"{r['train_pixel_mb']:.0f} MB",
          f"{cell(r, 'index_cold_s', '{:.1f}')} / {cell(r, 'index_warm_s', '{:.1f}')} s",
          f"{cell(r, 'fingerprint_cold_s', '{:.2f}')} / {cell(r, 'fingerprint_warm_s', '{:.2f}')} s",
          f"{r['epoch_train_s'][0]:.0f} s", f"{r['images_per_second'][0]:,.0f}",
          f"{r['peak_rss_before_training_mb']:.0f} MB", f"{r['peak_rss_mb']:.0f} MB"] for r in rows])


def main() -> None:
    """Write or reuse the folder, measure each mode in its own child, write the results."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True, help="where the image folder is written (or reused)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-arrays", action="store_true", help="skip the decoded-arrays comparison run")
    ap.add_argument("--child", choices=("streamed", "streamed, a tenth", "arrays"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # --dir is then the image folder itself
        print(json.dumps(child(args.child, args.dir, args.epochs)))
        return
    from edge_mnist.core.machine import machine_info

    root = args.dir / "fashion-tinted-100k"
    write_seconds, _ = timed(lambda: write_scale_folder(root))
    runs = [("streamed", root), ("streamed, a tenth", subset_folder(root, TRAIN_IMAGES // 100))]
    runs += [] if args.no_arrays else [("arrays", root)]
    rows = [run_child(mode, folder, args.epochs) for mode, folder in runs]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
    note = ("Timings taken on a shared machine (2 cores, other engineers' jobs running): compare the rows with each "
            "other, not with another machine. Cold = the files' pages evicted with posix_fadvise DONTNEED (directory "
            "and inode caches stay warm).")
    result = {"folder": str(root), "epochs": args.epochs, "architecture": "compact", "write_or_reuse_s": write_seconds,
              "machine": machine_info().to_json(), "note": note, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stamp}-userdata-scale.json").write_text(json.dumps(result, indent=1))
    text = (f"# A 100k-image folder: `python -m benchmarks.userdata_scale --dir {args.dir}`\n\n{table(rows)}\n\n"
            f"{note}\n")
    (RESULTS / f"{stamp}-userdata-scale.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
