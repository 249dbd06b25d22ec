"""What the commands print to the terminal beyond the shared tables: the training line, the bench table
with its notes, and the debug table."""
from __future__ import annotations

from pathlib import Path

import click

from edge_mnist.core.progress import say
from edge_mnist.folder.layout import BENCH_FILE
from edge_mnist.folder.records import Manifest
from edge_mnist.render.tables import BENCH_HEADERS, UNTIMED_NOTE, bench_rows, bench_subset_lines, mixed_note, table


def report_training(history: dict, out: Path) -> None:
    """One line on where and how well training went (or where an imported model came from)."""
    if "source_model" in history:
        say(f"imported {history['source_model']['path']} (Keras {history['source_model']['keras_version']}): "
             f"{history['parameters']:,} parameters, test accuracy {history['test_accuracy']:.4f}")
        return
    dev = history["device"]
    if not history.get("chief", True):
        say(f"worker done (test accuracy {history['test_accuracy']:.4f}); the chief worker writes the model")
        return
    if dev["note"]:
        say(dev["note"])
    ips = history["history"]["images_per_second"]
    batchnorm = history.get("batchnorm")
    if batchnorm:
        say(f"BatchNorm statistics recomputed with the trained weights from {batchnorm['recomputed_from_images']:,} "
            f"training images (test accuracy with Keras' moving statistics: "
            f"{batchnorm['test_accuracy_with_moving_statistics']:.4f})")
    say(f"trained on {dev['device']} ({dev['policy']}): test accuracy {history['test_accuracy']:.4f}, "
         f"{ips[-1]:.0f} images/s in the last epoch; wrote model, history.json and training_curves.png to {out}")


def print_bench(result, manifest: Manifest, out: Path) -> None:
    """The bench table of DIR (whose `manifest` says which files keep float layers) and how it was measured."""

    float_layers = manifest.float_layers()
    click.echo(table(BENCH_HEADERS, bench_rows(result, float_layers)))
    if any(row.latency_us is None for row in result.rows):
        click.echo(UNTIMED_NOTE)
    for line in bench_subset_lines(result):
        click.echo(line)
    if float_layers:
        click.echo(mixed_note(float_layers))
    click.echo(f"{result.n_samples} test images, {result.threads} thread(s), {result.timing.runs} timed runs "
               f"after {result.timing.warmup} warm-up; wrote {out / BENCH_FILE}")


def debug_table(result) -> str:
    """One artifact's layers as text, worst first (fits 100 columns)."""
    number = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    lines = [f"{result.file} ({result.runtime}): accuracy {result.accuracy:.4f}; worst layer first",
             f"  {'layer':<18} {'weights dB':>10} {'input dB':>9} {'output dB':>9} {'end-to-end dB':>13} "
             f"{'accuracy if float':>17} {'gain pp':>8}"]
    for r in result.layers:
        lines.append(f"  {r.layer[:18]:<18} {number(r.weight_sqnr_db, '.1f'):>10} {number(r.input_sqnr_db, '.1f'):>9} "
                     f"{number(r.output_sqnr_db, '.1f'):>9} {number(r.end_to_end_sqnr_db, '.1f'):>13} "
                     f"{number(r.accuracy_if_float, '.4f'):>17} {number(r.accuracy_gain_pp, '+.2f'):>8}")
    return "\n".join(lines)



def doctor_text(diagnosis) -> str:
    """`edge-mnist doctor`'s screen: the device, its runtimes, and a folder's files (doctor.Diagnosis)."""
    d = diagnosis
    memory = (f"{d.memory_available_mb:,} MB available of {d.memory_total_mb:,} MB" if d.memory_total_mb is not None
              else "unknown")
    features = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in d.cpu_features.items())
    lines = [f"os: {d.os} (kernel {d.kernel}), {d.architecture}", f"python: {d.python}; edge-mnist {d.edge_mnist}",
             f"cpu: {d.cpu}; {features}", f"memory: {memory}", "runtimes:"]
    width = max((len(r.name) for r in d.runtimes), default=0)
    for r in d.runtimes:
        lines.append(f"  {r.name:<{width}} {r.package:<15} " + (r.version if r.available else
                                                                f"does not import: {r.error}; {r.install}"))
    lines.append("tools: " + ", ".join(f"{tool} {'yes' if found else 'no'}" for tool, found in d.tools.items()))
    if d.folder is not None:
        models = [f for f in d.files if f.runtimes]
        sources = [f.file for f in d.files if not f.runtimes]
        lines.append(f"{d.folder}: {sum(f.runs_here for f in models)} of {len(models)} model files run here")
        for f in models:
            verdict = f"runs ({', '.join(f.runtimes)})" if f.runs_here else "does not run here"
            lines.append(f"  {f.file:<32} {verdict}" + (f"; {f.note}" if f.note else ""))
        if sources:
            lines.append(f"  and {len(sources)} source files for microcontrollers and app builds (no runtime): "
                         + ", ".join(sorted({Path(name).suffix for name in sources})))
    return "\n".join(lines)
