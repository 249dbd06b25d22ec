"""The exported web page in headless Chromium: the class it gives against `edge-mnist predict`, and its time.

    python -m benchmarks.web --out export [--images 1000] [--photos 50]

Serves DIR/web/ and the probe images from a local http.server, opens index.html in Debian's chromium
(Playwright, headless, /usr/bin/chromium), and hands each image file to the page as a script would:
fetch, createImageBitmap, an ImageData, `window.edgeMnist.predict` (onnxruntime-web, WASM, one
thread). The files are the first --images Fashion-MNIST test images as 28x28 PNGs and --photos of them
rendered as phone photos (benchmarks.photos.phone_photo: dark on paper, turned, off-centre, uneven
light, noise; 480x360 JPEG). `edge-mnist predict` (edge_mnist.predict.predict, its default model, the
PTQ .tflite) classifies the same files. Reports the agreement and the page's time per image, whole
(preprocessing and inference) and inference alone, as median and p90 over every image after one
warm-up image, in one browser tab with nothing else running. Prints a Markdown table and writes it
with a JSON beside to benchmarks/results/<date>-<HHMM>-web.md and .json.
"""
from __future__ import annotations

import argparse
import functools
import json
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
RESULTS = Path(__file__).resolve().parent / "results"
# The page's answer for each URL, as a script on a phone would get it from an image file.
CLASSIFY = """async urls => {
  const out = [];
  for (const url of urls) {
    const blob = await (await fetch(url)).blob();
    const bitmap = await createImageBitmap(blob, {colorSpaceConversion: "none", premultiplyAlpha: "none"});
    const sheet = new OffscreenCanvas(bitmap.width, bitmap.height), ctx = sheet.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const r = await window.edgeMnist.predict(ctx.getImageData(0, 0, bitmap.width, bitmap.height));
    out.push({index: r.index, label: r.label, ms: r.ms, inference: r.inferenceMs, top: r.top.map(t => t.index)});
  }
  return out;
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    """http.server without a log line per request."""

    def log_message(self, *args) -> None:
        """Say nothing."""


@contextmanager
def serving(root: Path) -> Iterator[str]:
    """http://127.0.0.1:PORT serving the folder `root` until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def opened(url: str) -> Iterator[object]:
    """The page at `url` in headless Debian chromium with its model loaded; a page error is raised."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            tab = browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto(url)
            tab.evaluate("window.edgeMnist.ready")
            if errors:
                raise RuntimeError(f"{url}: {errors[0]}")
            yield tab
        finally:
            browser.close()


def _figures(ours: list[dict], theirs: list[dict]) -> dict:
    """Agreement with predict and the page's time per image (after the first, a warm-up)."""
    whole, inference = np.array([a["ms"] for a in ours[1:]]), np.array([a["inference"] for a in ours[1:]])
    return {"images": len(ours), "agreement": float(np.mean([a["index"] == b["class"] for a, b in zip(ours, theirs)])),
            "ms_p50": float(np.median(whole)), "ms_p90": float(np.percentile(whole, 90)),
            "inference_ms_p50": float(np.median(inference)), "inference_ms_p90": float(np.percentile(inference, 90))}


def measure(out: Path, data_dir: Path | None, images: int, photos: int, seed: int = 0) -> dict:
    """Both cases' figures, with the versions and the machine."""
    from PIL import Image

    from benchmarks.photos import phone_photo
    from edge_mnist.core.machine import machine_info
    from edge_mnist.data import load_dataset
    from edge_mnist.folder.records import Manifest
    from edge_mnist.predict import predict

    x = load_dataset(Manifest.load(out).task.dataset, data_dir).x_test
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "web").symlink_to(out.resolve() / "web")
        (root / "images").mkdir()
        tests = [root / "images" / f"{i:05d}.png" for i in range(images)]
        shots = [root / "images" / f"{i:05d}.jpg" for i in range(photos)]
        for i, path in enumerate(tests):
            Image.fromarray(x[i]).save(path)
        for i, path in enumerate(shots):
            phone_photo(x[i], rng, gradient=50).save(path, quality=90)
        cases = {"test images (28x28 PNG)": tests, "phone photos (480x360 JPEG)": shots}
        with serving(root) as url, opened(f"{url}/web/index.html") as tab:
            version = tab.evaluate("ort.env.versions ? JSON.stringify(ort.env.versions) : ''")
            result = {}
            for case, files in cases.items():
                ours = tab.evaluate(CLASSIFY, [f"{url}/images/{f.name}" for f in files])
                theirs, _ = predict(out, files, top=3)
                result[case] = _figures(ours, theirs)
    return {"created": time.strftime("%Y-%m-%d %H:%M"), "folder": str(out), "onnxruntime_web": version,
            "machine": machine_info().to_json(), "cases": result}


def markdown(result: dict) -> str:
    """The figures as a Markdown table."""
    rows = ["| input | images | same class as predict | ms per image p50 (p90) | inference ms p50 (p90) |",
            "|---|---|---|---|---|"]
    for case, f in result["cases"].items():
        rows.append(f"| {case} | {f['images']} | {f['agreement']:.2%} | {f['ms_p50']:.2f} ({f['ms_p90']:.2f}) | "
                    f"{f['inference_ms_p50']:.2f} ({f['inference_ms_p90']:.2f}) |")
    return "\n".join(rows) + "\n"


def main() -> None:
    """Measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("export"), help="artifact folder with web/")
    parser.add_argument("--data-dir", type=Path, default=None, help="the dataset's files (default: its usual place)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=50)
    args = parser.parse_args()
    result = measure(args.out, args.data_dir, args.images, args.photos)
    text = markdown(result)
    print(text)
    stem = RESULTS / f"{time.strftime('%Y-%m-%d-%H%M')}-web"
    stem.with_suffix(".md").write_text(f"`python -m benchmarks.web --out {args.out} --images {args.images} --photos "
                                       f"{args.photos}` ({result['created']})\n\n{text}")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
