"""report.py and plots.py: `edge-mnist report` writes one self-contained report.html and the PNGs beside it."""
from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from edge_mnist.config import GateConfig
from edge_mnist.folder.layout import PLOT_FILES
from edge_mnist.folder.opener import read_folder
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.render.plots import confusion_counts
from tests.cli.test_commands import LOOSE, NO_TFLM, run_cli

pytestmark = pytest.mark.tf


def _embedded_pngs(page: str) -> list[Image.Image]:
    """Every image embedded as a data: URI, decoded."""
    import io

    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _not_blank(img: Image.Image) -> bool:
    """More than a sliver of the picture is drawn (not one flat colour)."""
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    return float((gray < 200).mean()) > 0.02 and float(gray.std()) > 20


def test_confusion_counts_put_true_classes_on_rows():
    counts = confusion_counts(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


@pytest.fixture(scope="module")
def reported(tiny_export, small_fashion_dir, tmp_path_factory):
    """A copy of the tiny export with its report written (once for the module)."""
    folder = tmp_path_factory.mktemp("reported") / "export"
    shutil.copytree(tiny_export, folder)
    code, out, err = run_cli(["report", "--out", str(folder), "--data-dir", str(small_fashion_dir), *LOOSE,
                              *NO_TFLM])
    assert code == 0 and "gate PASS; wrote" in out, err
    return folder


def test_report_embeds_every_picture_and_the_gate_verdict(reported):
    export_copy = reported
    page = (export_copy / "report.html").read_text()
    assert re.search(r'<section id="verdict" class="pass"><h2>Gate: <span id="verdict-word">PASS</span>', page)
    images = _embedded_pngs(page)
    assert len(images) == len(PLOT_FILES) and all(_not_blank(img) for img in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # self-contained: nothing loaded from elsewhere
    for name in PLOT_FILES:
        assert (export_copy / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bench = json.loads((export_copy / "bench.json").read_text())
    for row in bench["rows"]:  # the bench table shows what bench measured, artifact by artifact
        shown = f"{row['accuracy'] * 100:.2f}%" + ("" if row["test_indices"] is None else f" ({row['n_samples']:,} img)")
        assert f"<td>{row['file']}</td>" in page and f"<td>{shown}</td>" in page
    class_names = DATASETS["fashion-mnist"].task.class_names
    names = "|".join(re.escape(html.escape(n)) for n in class_names)
    # class names, not numbers, in the checks (a class that dropped is named) and in the class table
    assert re.search(f"worst class ({names}) ", page) or "no class drops" in page
    for index, name in enumerate(class_names):
        assert f"<tr><td>{index}</td><td>{html.escape(name)}</td>" in page, name


def test_the_page_shows_the_verdict_it_re_derives_not_the_one_recorded(reported, small_fashion_dir):
    """The same folder and bench record, stricter limits: the gate run for the page fails, and so does the page."""
    from edge_mnist.check import evaluate
    from edge_mnist.data import load_dataset
    from edge_mnist.folder.records import Manifest
    from edge_mnist.gate import Criteria
    from edge_mnist.report import load_bench, render

    manifest = Manifest.load(reported)
    data = load_dataset("fashion-mnist", small_fashion_dir)
    verdict = evaluate(read_folder(reported, data),
                       GateConfig(Criteria(tolerance_pp=0.0, max_disagreement_pct=0.0, min_accuracy=0.99),
                                  skip_runtimes=("tflm",)))
    page = render(manifest, data, load_bench(reported, manifest), verdict, [], {})
    assert '<span id="verdict-word">FAIL</span>' in page and 'class="fail"' in page
    assert "accuracy" in page and "minimum 99.00%" in page


def test_report_refuses_a_bench_record_of_other_files(export_copy, small_fashion_dir):
    record = json.loads((export_copy / "bench.json").read_text())
    record["rows"][1]["sha256"] = "0" * 64
    (export_copy / "bench.json").write_text(json.dumps(record))
    (export_copy / "report.html").write_text("an earlier report")
    code, _, err = run_cli(["report", "--out", str(export_copy), "--data-dir", str(small_fashion_dir)])
    assert code == 2 and "bench.json" in err and "run bench again" in err and len(err.strip().splitlines()) == 1
    assert (export_copy / "report.html").read_text() == "an earlier report"  # nothing written on bad input
    (export_copy / "bench.json").unlink()
    code, _, err = run_cli(["report", "--out", str(export_copy), "--data-dir", str(small_fashion_dir)])
    assert code == 2 and "edge-mnist bench" in err


@pytest.mark.slow
def test_report_renders_in_headless_chromium(reported, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url = (reported / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", url], check=True,
                   capture_output=True, timeout=120)
    dom = subprocess.run([browser, *flags, "--dump-dom", url], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert '<span id="verdict-word">PASS</span>' in dom
    with Image.open(shot) as img:
        assert img.size == (1200, 1600) and _not_blank(img)
        rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    box = (np.abs(rgb - np.array([0xE6, 0xF4, 0xEA])) <= 4).all(-1)  # the PASS box's light green was painted
    assert box.mean() > 0.01
