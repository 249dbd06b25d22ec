"""Presentation: plain tables for the terminal, Markdown for CI summaries, JUnit XML and JSON for CI UIs."""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from .files import atomic_write_bytes, atomic_write_json


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned fixed-width text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*["-" * w for w in widths])]
    return "\n".join(lines + [fmt.format(*map(str, r)) for r in rows])


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


BENCH_HEADERS = ["artifact", "format", "precision", "size", "accuracy", "agreement", "p50 us", "p90 us", "p99 us",
                 "batch256 img/s"]


MIXED = "int8+float"


def mixed_note(float_layers: dict[str, str]) -> str:
    """The line saying which files are mixed int8/float and which layers they keep float ('' for none)."""
    from .formats import BY_KEY

    by_layers: dict[str, list[str]] = {}
    for key, layers in float_layers.items():
        if BY_KEY[key].runnable:  # the C++ files are the .tflite's bytes
            by_layers.setdefault(layers, []).append(BY_KEY[key].file)
    return "\n".join(f"{MIXED} (export --fallback): {', '.join(files)} keep {layers} in float"
                     for layers, files in by_layers.items())


def bench_rows(result, float_layers: dict[str, str] | None = None) -> list[list[str]]:
    """One display row per artifact of a BenchResult; artifacts in `float_layers` (format key -> layers)
    show as mixed."""
    rows, mixed = [], float_layers or {}
    for r in result.rows:
        lat = r.latency_us
        agree = "-" if r.agreement is None else f"{r.agreement * 100:.2f}%"
        timing = (["not timed", "-", "-", "-"] if lat is None else
                  [f"{lat['p50']:.0f}", f"{lat['p90']:.0f}", f"{lat['p99']:.0f}", f"{r.throughput_ips:.0f}"])
        rows.append([r.file, r.runtime, MIXED if r.fmt.key in mixed else r.fmt.precision, f"{r.size_bytes / 1e6:.2f} MB",
                     f"{r.accuracy * 100:.2f}%", agree, *timing])
    return rows


UNTIMED_NOTE = ("not timed: TFLM's reference kernels on this host say nothing about a microcontroller's speed; "
                "its row proves accuracy and parity")


CHECK_HEADERS = ["artifact", "criterion", "value", "limit", "result", "detail"]


def check_rows(results) -> list[list[str]]:
    """One display row per evaluated criterion."""
    return [[r.artifact, r.criterion, f"{r.value:.4g}", f"{r.limit:.4g}", "PASS" if r.passed else "FAIL", r.detail]
            for r in results]


EMULATE_HEADERS = ["device", "artifact", "top-1 agreement", "images", "top-1 differ", "max abs diff", "time"]


def emulate_rows(result) -> list[list[str]]:
    """One display row per emulated CPU and artifact of an Emulation."""
    rows = []
    for r in result.rows:
        diff = f"{r.max_abs_diff:.3g}"
        if r.max_abs_diff > 0:
            steps = "" if r.max_steps is None else f"{r.max_steps:.3g} int8 step{'' if r.max_steps == 1 else 's'}; "
            diff += f" ({steps}{r.outputs_differ} image{'' if r.outputs_differ == 1 else 's'})"
        rows.append([f"{r.board} ({r.cpu})", r.file, f"{r.agreement * 100:.2f}%", str(r.n_samples), str(r.top1_differ),
                     diff, f"{r.seconds:.1f} s"])
    return rows


def summary(verdict) -> str:
    """The closing line of `check`."""
    word = "PASS" if verdict.passed else "FAIL"
    skipped = "".join(f"\nskipped: {s}" for s in verdict.skipped)
    mixed = mixed_note(verdict.float_layers)
    return (f"{word}: {len(verdict.results) - len(verdict.failed)}/{len(verdict.results)} criteria passed on "
            f"{verdict.n_samples} images; reference {verdict.reference} = {verdict.reference_accuracy:.4f}"
            f"{skipped}" + (f"\n{mixed}" if mixed else ""))


def protected_files() -> set[str]:
    """Files of an artifact folder a report must never overwrite: every artifact and record."""
    from .formats import FORMATS, QAT_KERAS_FILE
    from .records import BENCH_FILE, EMULATE_FILE, MANIFEST_FILE
    from .train import CURVES_FILE, HISTORY_FILE

    return {f.file for f in FORMATS} | {QAT_KERAS_FILE, BENCH_FILE, EMULATE_FILE, MANIFEST_FILE, HISTORY_FILE,
                                        CURVES_FILE}


def prepare_report_path(path: Path | None, out: Path, say) -> Path | None:
    """Check a report path before any work: not one of DIR's artifacts or records, not a folder;
    its parent folders are created (and said so)."""
    from .errors import EdgeMnistError

    if path is None:
        return None
    path = Path(path)
    if path.name in protected_files() and path.absolute().parent.resolve() == Path(out).absolute().resolve():
        raise EdgeMnistError(f"{path}: is one of the artifact folder's own files; write the report elsewhere")
    if path.is_dir():
        raise EdgeMnistError(f"{path}: is a folder; give a file name for the report")
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        say(f"created folder {path.parent} for {path.name}")
    return path


def write_reports(verdict, json_path: Path | None = None, junit_path: Path | None = None,
                  md_path: Path | None = None) -> None:
    """The gate's reports: JSON, JUnit XML, and a Markdown section appended (e.g. to a CI step summary)."""
    if json_path:
        atomic_write_json(Path(json_path), verdict.to_json())
    if junit_path:
        junit(verdict.results, Path(junit_path))
    if md_path:
        with open(md_path, "a") as handle:
            handle.write(f"### edge-mnist check: {'PASS' if verdict.passed else 'FAIL'}\n\n"
                         f"{markdown(CHECK_HEADERS, check_rows(verdict.results))}\n\n")


def junit(results, path: Path) -> None:
    """JUnit XML: one testcase per criterion and artifact, failures for failed criteria."""
    failures = sum(not r.passed for r in results)
    cases = []
    for r in results:
        name = quoteattr(f"{r.artifact}: {r.criterion}")
        body = "" if r.passed else f"<failure message={quoteattr(f'{r.value:.4g} exceeds limit {r.limit:.4g} {r.detail}')}/>"
        cases.append(f"  <testcase classname=\"edge_mnist.check\" name={name}>{body}</testcase>")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="edge-mnist check" tests="{len(results)}" '
           f'failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")
    atomic_write_bytes(Path(path), xml.encode())
