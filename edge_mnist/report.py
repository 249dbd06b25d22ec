"""The report stage: one self-contained DIR/report.html (pictures embedded) and the PNGs beside it.

The gate's verdict on the page is re-derived from the artifacts (check.evaluate runs every int8
file and the float model); its predictions also draw the confusion matrix, the disagreement
matrices and the misclassified images. Latency and size come from DIR/bench.json, a record of
what `bench` timed, accepted only when it measured the files DIR holds now.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from edge_mnist.check import evaluate
from edge_mnist.config import GateConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.core.jsonio import now
from edge_mnist.data import Dataset
from edge_mnist.folder.layout import (
    BENCH_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    DISAGREEMENT_FILE,
    LATENCY_FILE,
    MISCLASSIFIED_FILE,
    REPORT_FILE,
    SAMPLES_FILE,
)
from edge_mnist.folder.opener import Folder
from edge_mnist.folder.records import BenchResult, History, Manifest
from edge_mnist.render import plots
from edge_mnist.render.tables import (
    BENCH_HEADERS,
    CHECK_HEADERS,
    UNTIMED_NOTE,
    bench_rows,
    bench_subset_lines,
    check_rows,
    mixed_note,
    percent,
    summary,
)


def load_bench(out: Path, manifest: Manifest) -> BenchResult:
    """DIR/bench.json, refused when it measured other files or other test data than DIR holds now."""
    path = Path(out) / BENCH_FILE
    if not path.is_file():
        raise EdgeMnistError(f"{path}: not found; run `edge-mnist bench --out {out}` first")
    result = BenchResult.load(path, manifest.task.num_classes)
    if result.dataset_fingerprint != manifest.dataset_fingerprint:
        raise EdgeMnistError(f"{path}: measured other test data than the folder was exported with; run bench again")
    for row in result.rows:
        artifact = manifest.artifacts.get(row.fmt.key)
        if artifact is None or artifact.sha256 != row.sha256:
            raise EdgeMnistError(f"{path}: {row.file} was measured before the current file was written; "
                                 "run bench again")
    return result


def draw(out: Path, manifest: Manifest, dataset: Dataset, bench: BenchResult, verdict) -> list[tuple[str, Path]]:
    """Write every picture into DIR; returns (caption, path) in page order."""
    out = Path(out)
    names, labels = list(dataset.task.class_names), dataset.y_test.astype(np.int64)
    history = History.load(out)
    reference = verdict.predictions[verdict.reference]
    int8 = {k: v for k, v in verdict.predictions.items() if k != verdict.reference}
    drawn = []
    metrics = history.metrics if history else {}
    if metrics.get("loss"):
        qat = manifest.qat.history if manifest.qat else None
        title = plots.curves_title(dataset.name, history.model_name, manifest.float_accuracy)
        drawn.append(("Training curves (float training, then the QAT fine-tune when exported with QAT)",
                      plots.training_curves(metrics, out / CURVES_FILE, title, qat)))
    drawn += [
        ("Confusion matrix of the float model", plots.confusion(labels, reference, names, out / CONFUSION_FILE,
                                                                verdict.reference)),
        ("Where each int8 artifact disagrees with the float model",
         plots.disagreement(reference, int8, names, out / DISAGREEMENT_FILE, verdict.reference,
                            verdict.subsets)),
        ("Latency against size", plots.latency_vs_size(_latency_points(bench), out / LATENCY_FILE,
                                                       _timing_note(bench))),
        ("Misclassified test images (float model)",
         plots.misclassified(dataset.x_test, labels, reference, names, out / MISCLASSIFIED_FILE,
                             verdict.reference)),
        ("The dataset", plots.samples(dataset.x_test, labels, names, out / SAMPLES_FILE,
                                      f"{dataset.name} test images, {len(names)} classes")),
    ]
    return drawn


def _latency_points(bench: BenchResult) -> list[dict]:
    """Every timed bench row as a point for plots.latency_vs_size."""
    return [{"name": f"{r.file} ({r.runtime})", "size_bytes": r.size_bytes, "p50": r.latency_us["p50"],
             "p99": r.latency_us["p99"], "int8": r.fmt.is_int8} for r in bench.rows if r.latency_us]


def _timing_note(bench: BenchResult) -> str:
    """How and where bench timed the artifacts."""
    return (f"{bench.machine.cpu}, {bench.threads} thread(s), {bench.timing.runs} runs "
            f"after {bench.timing.warmup} warm-up (bench.json, {bench.created})")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def class_rows(class_names: tuple[str, ...], labels: np.ndarray, verdict) -> list[list[str]]:
    """One row per class: its number (what a picture shows when it cannot draw the name: plots.class_labels),
    its name exactly as given, its test images, the reference's accuracy on them and the lowest accuracy of
    an int8 file run on every test image, with that file."""
    whole = [k for k in verdict.predictions if k != verdict.reference and k not in verdict.subsets]
    rows = []
    for c, name in enumerate(class_names):
        images = labels == c
        accuracy = {k: float((verdict.predictions[k][images] == c).mean()) for k in [verdict.reference, *whole]}
        worst = min(whole, key=accuracy.get, default=None)
        rows.append([str(c), name, f"{int(images.sum()):,}", percent(accuracy[verdict.reference]),
                     *([f"{percent(accuracy[worst])} ({worst})"] if worst else [])])
    return rows


def _figure(caption: str, path: Path) -> str:
    """A PNG embedded as a data: URI, so the page needs no other file."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}#verdict{padding:.8em 1.2em;border-radius:6px;margin:1em 0}
#verdict.pass{background:#e6f4ea;border:2px solid #2e7d32}#verdict.fail{background:#fdecea;border:2px solid #c62828}
#verdict pre{white-space:pre-wrap;margin:.3em 0}figure{margin:1.5em 0}img{max-width:100%}
figcaption{color:#555;font-size:.9em}.note{color:#555;font-size:.85em}"""


def render(manifest: Manifest, dataset: Dataset, bench: BenchResult, verdict, figures: list[tuple[str, Path]],
           history: History | None) -> str:
    """The whole page as one HTML string."""
    word = "PASS" if verdict.passed else "FAIL"
    mixed = mixed_note(manifest.float_layers())
    notes = [UNTIMED_NOTE] if any(r.latency_us is None for r in bench.rows) else []
    notes += bench_subset_lines(bench)
    notes += [mixed] if mixed else []
    title = f"edge-mnist report: {dataset.name} · {history.model_name if history else 'unknown architecture'}"
    classes = class_rows(dataset.task.class_names, dataset.y_test.astype(np.int64), verdict)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Written {now()}; {verdict.n_samples} test images from '
        f"{html.escape(str(dataset.source))}.</p>",
        f'<section id="verdict" class="{word.lower()}"><h2>Gate: <span id="verdict-word">{word}</span></h2>'
        f"<pre>{html.escape(summary(verdict))}</pre></section>",
        "<h2>Benchmark</h2>", _table(BENCH_HEADERS, bench_rows(bench, manifest.float_layers())),
        f'<p class="note">{html.escape(_timing_note(bench))}</p>',
        *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
        '<h2 id="classes">Classes</h2>',
        _table(["#", "class", "test images", verdict.reference, "lowest int8 (file)"][:len(classes[0])], classes),
        "<h2>Pictures</h2>", *(_figure(caption, path) for caption, path in figures),
        "<h2>Every gate check</h2>", _table(CHECK_HEADERS, check_rows(verdict.results)),
        "</body></html>", ""])


def write_report(folder: Folder, bench: BenchResult, verdict) -> Path:
    """Draw the pictures and write DIR/report.html (atomically); returns its path. The caller holds DIR's lock
    (folder.opener.open_folder)."""
    out, manifest, dataset = folder.path, folder.exported, folder.dataset
    figures = draw(out, manifest, dataset, bench, verdict)
    page = render(manifest, dataset, bench, verdict, figures, History.load(out))
    atomic_write_bytes(out / REPORT_FILE, page.encode("utf-8"))
    return out / REPORT_FILE


def report(folder: Folder, config: GateConfig = GateConfig()):
    """Re-run the gate on DIR's artifacts (check.evaluate, by `config`) and write the report; returns (path,
    verdict). What could stop it afterwards (no matplotlib, a stale bench.json) is checked first. The caller
    holds DIR's lock (folder.opener.open_folder)."""

    plots.require_matplotlib()
    bench = load_bench(folder.path, folder.exported)
    verdict = evaluate(folder, config)
    return write_report(folder, bench, verdict), verdict


__all__ = ["REPORT_FILE", "load_bench", "report", "write_report"]
