"""Presentation: plain tables for the terminal, Markdown for CI summaries, JUnit XML and JSON for CI UIs."""
from __future__ import annotations

import functools
import re
import textwrap
from pathlib import Path
from xml.sax.saxutils import quoteattr

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_bytes, atomic_write_json
from edge_mnist.folder.layout import WRITTEN_FILES
from edge_mnist.gate import BASELINE, CLASS_DROP, DISAGREEMENT, DROP, EMBEDS, EPS, MINIMUM, PARITY, RELATIVE
from edge_mnist.registry.formats import BY_KEY, RUNS


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


def markdown_text(text: str) -> str:
    """User text (a class name in a check's sentence) for a Markdown table cell: the characters GitHub would
    read as markup, HTML, math or a cell border backslash-escaped, so the cell shows the text as written. An
    underscore inside a word (model_int8) is left alone: GitHub never reads it as emphasis."""

    def escaped(found: re.Match) -> str:
        at, char = found.start(), found.group()
        inside = char == "_" and 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum()
        return char if inside else "\\" + char

    return re.sub(r"[\\`*_\[\]<>|&~$]", escaped, text)


BENCH_HEADERS = ["artifact", "format", "precision", "size", "accuracy", "agreement", "p50 us", "p90 us", "p99 us",
                 "batch256 img/s"]


MIXED = "int8+float"


def mixed_note(float_layers: dict[str, str]) -> str:
    """The line saying which files are mixed int8/float and which layers they keep float ('' for none)."""

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
        precision = MIXED if r.fmt.key in mixed else r.fmt.precision
        images = "" if r.indices is None else f" ({r.n_samples:,} img)"
        rows.append([r.file, r.runtime, precision, f"{r.size_bytes / 1e6:.2f} MB",
                     f"{r.accuracy * 100:.2f}%{images}", agree, *timing])
    return rows


def subset_phrase(n: int, total: int) -> str:
    """'500 of 10,000 images, stratified by class': what a `subset` runtime (TFLM) ran on."""
    return f"{n:,} of {total:,} images, stratified by class"


def subset_lines(sizes: dict[str, int], total: int, what: str) -> list[str]:
    """One line per subset size for the files run on a subset of the test set (file label -> images):
    '<files>: <what> on 500 of 10,000 images, stratified by class; --tflm-images 0 for all'."""
    by_size: dict[int, list[str]] = {}
    for name, n in sizes.items():
        by_size.setdefault(n, []).append(name)
    return [f"{', '.join(names)}: {what} on {subset_phrase(n, total)}; --tflm-images 0 for all"
            for n, names in by_size.items()]


def bench_subset_lines(result) -> list[str]:
    """The bench rows measured on a subset of the test set, said under the table."""
    sizes = {RUNS[r.key].label: r.n_samples for r in result.rows if r.indices is not None}
    return subset_lines(sizes, result.n_samples, "accuracy and agreement")


UNTIMED_NOTE = ("not timed: TFLM's reference kernels on this host say nothing about a microcontroller's speed; "
                "its row proves accuracy and parity")


WIDTH = 100  # columns of the gate's text: a CI log or an 80-100 column terminal
CHECK_HEADERS = ["file", "result", "check"]


def plural(count: int, word: str) -> str:
    """'1 check', '5 checks'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def fit(line: str, indent: int = 2) -> str:
    """`line` wrapped to WIDTH columns; continuation lines indented by `indent` spaces. A word longer than
    a line (a long class name) is kept whole, so the terminal shows the user's text exactly."""
    return textwrap.fill(line, WIDTH, subsequent_indent=" " * indent, break_on_hyphens=False, break_long_words=False)


def percent(fraction: float) -> str:
    """A fraction as a percentage with 2 decimals: 0.808 -> '80.80%'."""
    return f"{fraction * 100:.2f}%"


def apart(value: float, limit: float, places: int = 2) -> tuple[str, str]:
    """value and limit with `places` decimals, or more (up to 6) when that would print a value that is not
    its limit as the limit: a failing line never reads 'drop 0.50 pp, tolerance 0.50 pp'."""

    while True:
        shown = f"{value:.{places}f}", f"{limit:.{places}f}"
        if shown[0] != shown[1] or abs(value - limit) <= EPS or places == 6:
            return shown
        places += 1


def _bounded(value: float, limit: float, unit: str, bound: str, of: str = "") -> str:
    """'2.00% of images, maximum 3.00%' for a value and its limit, both in `unit` (' pp' or '%')."""
    shown, limit_shown = apart(value, limit)
    return f"{shown}{unit}{of}, {bound} {limit_shown}{unit}"


def _drop(value: float, limit: float, unit: str, bound: str = "tolerance", name: str = "drop") -> str:
    """'drop 1.20 pp, tolerance 0.50 pp', or 'no drop (+0.20 pp), tolerance 0.50 pp' when it rose."""
    if value > 0:
        return f"{name} {_bounded(value, limit, unit, bound)}"
    rise = f" (+{-value:.2f}{unit})" if value < 0 else ""
    return f"no {name}{rise}, {bound} {apart(value, limit)[1]}{unit}"


def _interval(r) -> str:
    """'; 500 images, 95% interval -0.45 to +1.38 pp' for a check stated with its interval (gate.interval_rule:
    an accuracy drop paired per image, the disagreement, a class's drop), and when the images are too few to
    resolve the limit, that and what it did to the verdict; '' for a value known without one."""
    if "interval" not in r.context:
        return ""
    low, high = r.context["interval"]
    unit = " pp" if r.unit == "pp" else "%"
    sign = "+" if r.unit == "pp" else ""
    joint = f" (joint over {r.context['classes']} classes)" if "classes" in r.context else ""
    text = f"; {r.context['images']:,} images, 95% interval{joint} {low:{sign}.2f} to {high:{sign}.2f}{unit}"
    if r.context["resolved"]:
        return text
    drop = r.criterion in (DROP, BASELINE)
    if not r.passed:
        outcome = (", but the drop is real (its interval lies above 0)" if drop
                   else ", but the excess is real (its interval lies above the limit)")
    elif r.value > r.limit + EPS:
        outcome = (", and its interval includes 0" if drop else ", and its interval reaches the limit") + \
            ": passed as noise"
    else:
        outcome = ""
    return f"{text}: too few images to resolve {r.limit:.2f}{unit}{outcome}"


def _compared(r, other: str, what: str) -> str:
    """'accuracy 81.00% vs float 80.80%' from a result's context."""
    return f"accuracy {percent(r.context['accuracy'])} vs {what} {percent(r.context[other])}"


def _class_drop(r) -> str:
    """The class that lost most accuracy against the source model, named, or that none did."""
    if r.value <= 0:
        return f"no class drops vs its source model, maximum {apart(r.value, r.limit)[1]} pp{_interval(r)}"
    return (f"worst class {r.context['class']} vs its source model: {_drop(r.value, r.limit, ' pp', 'maximum')}"
            f"{_interval(r)}")


def _embeds(r) -> str:
    """What the gate found comparing a C++ file with the .tflite it embeds."""
    if r.passed:
        return f"embeds {r.context['embeds']} byte for byte and describes it correctly"
    return f"{plural(int(r.value), 'problem')} with the {r.context['embeds']} it embeds"


@functools.cache
def _sentences() -> dict:
    """Each check id -> the sentence for one of its results. One unit per kind (stated in `check --help`):
    accuracies and shares of images in %, accuracy differences in percentage points."""

    images = " of images"
    return {
        DROP: lambda r: f"{_compared(r, 'reference', 'float')}: {_drop(r.value, r.limit, ' pp')}{_interval(r)}",
        RELATIVE: lambda r: (f"{_compared(r, 'reference', 'float')}: "
                             f"{_drop(r.value, r.limit, '%', 'maximum', 'relative drop')}"),
        MINIMUM: lambda r: f"accuracy {_bounded(r.value * 100, r.limit * 100, '%', 'minimum')}",
        DISAGREEMENT: lambda r: "differs from its source model on "
                                f"{_bounded(r.value, r.limit, '%', 'maximum', images)}{_interval(r)}",
        CLASS_DROP: _class_drop,
        BASELINE: lambda r: (f"{_compared(r, 'baseline', 'baseline')}: {_drop(r.value, r.limit, ' pp')}"
                             f"{_interval(r)}"),
        PARITY: lambda r: (f"same class as {r.pair[0]} on "
                           f"{_bounded(r.value * 100, r.limit * 100, '%', 'minimum', images)}"),
        EMBEDS: _embeds,
    }


def describe(result) -> str:
    """One check as a sentence: what was measured against which limit, then its note (e.g. the images)."""
    return _sentences()[result.criterion](result) + (f"; {result.detail}" if result.detail else "")


def file_of(result) -> str:
    """The file a result is listed under: its artifact, or for parity the second file of the pair."""
    return result.pair[1] if result.pair else result.artifact


def _status(result) -> str:
    """PASS or FAIL."""
    return "PASS" if result.passed else "FAIL"


def check_rows(results) -> list[list[str]]:
    """One row per check for the Markdown report: file, PASS/FAIL, the sentence."""
    return [[file_of(r), _status(r), describe(r)] for r in results]


def check_text(verdict) -> str:
    """The gate's verdict for the terminal, every line at most WIDTH columns: each file's name, its checks
    under it, then the summary."""

    mixed = {BY_KEY[key].file for key in verdict.float_layers}
    by_file: dict[str, list] = {}
    for r in verdict.results:
        by_file.setdefault(file_of(r), []).append(r)
    lines = []
    for name, results in by_file.items():
        images = verdict.subsets.get(name)
        lines.append(name + (f"  ({MIXED})" if name.split("@")[0] in mixed else "")
                     + ("" if images is None else f"  on {subset_phrase(len(images), verdict.n_samples)}"))
        lines += [fit(f"  {_status(r)}  {describe(r)}", indent=8) for r in results]
    return "\n".join(lines + [summary(verdict)])


def failure_line(verdict) -> str:
    """Why `check` exits 1, short enough for one line: how many checks failed, and where."""
    files = list(dict.fromkeys(file_of(r) for r in verdict.failed))
    others = f" and {plural(len(files) - 1, 'other file')}" if len(files) > 1 else ""
    return f"{len(verdict.failed)} of {plural(len(verdict.results), 'check')} failed, in {files[0]}{others}"


def rounded(obj, digits: int = 6):
    """A JSON-ready object with every float rounded to `digits` significant digits (80.80000000000001 -> 80.8)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def verdict_json(verdict) -> dict:
    """The verdict's JSON report: Verdict.to_json with floats rounded to 6 significant digits."""
    return rounded(verdict.to_json())


EMULATE_HEADERS = ["device", "artifact", "top-1 agreement", "images", "top-1 differ", "max abs diff", "time"]


def emulate_rows(result) -> list[list[str]]:
    """One display row per emulated CPU and artifact of an Emulation."""
    rows = []
    for r in result.rows:
        diff = f"{r.max_abs_diff:.3g}"
        if r.max_abs_diff > 0:
            steps = "" if r.max_steps is None else f"{r.max_steps:.3g} int8 step{'' if r.max_steps == 1 else 's'}; "
            diff += f" ({steps}{r.outputs_differ} image{'' if r.outputs_differ == 1 else 's'})"
        if r.measured is not None:
            diff += f"; vs {r.reference}, LiteRT top-1 {r.litert_agreement * 100:.2f}%"
        rows.append([f"{r.board} ({r.cpu})", r.file, f"{r.agreement * 100:.2f}%", str(r.n_samples), str(r.top1_differ),
                     diff, f"{r.seconds:.1f} s"])
    return rows


BOARD_HEADERS = ["board", "C file", "flash", "RAM (stack)", "instructions / image", "without DSP"]


def board_rows(result) -> list[list[str]]:
    """The Cortex-M builds' figures: flash, RAM with the painted peak stack, instructions per inference."""
    rows = []
    for r in (r for r in result.rows if r.measured):
        m = r.measured
        scalar = m.get("instructions_no_dsp")
        rows.append([r.board, r.file, f"{m['flash_bytes']:,} B", f"{m['ram_bytes']:,} B ({m['stack_bytes']:,} B)",
                     f"{m['instructions']:,}", f"{scalar:,}" if scalar else "-"])
    return rows


UNRESOLVED = {  # check id -> (what, limit option, what fails) in the small-set warning
    DROP: ("accuracy-drop check", "--tolerance", "a drop beyond it fails only when its interval lies above 0"),
    BASELINE: ("accuracy-drop check", "--tolerance", "a drop beyond it fails only when its interval lies above 0"),
    DISAGREEMENT: ("disagreement check", "--max-disagreement",
                   "a share beyond it fails only when its interval lies above it"),
    CLASS_DROP: ("per-class drop check", "--max-class-drop",
                 "a class's drop beyond it fails only when its interval lies above it"),
}


def unresolved_lines(verdict) -> list[str]:
    """One warning per kind of check (accuracy drop, disagreement, per-class drop) that some were checked on
    too few images to resolve their limit ([] when none): such a value fails only when its excess is real, so
    a regression smaller than the interval passes unseen."""
    kinds: dict[tuple, list] = {}
    for r in verdict.unresolved:
        kinds.setdefault(UNRESOLVED[r.criterion], []).append(r)
    lines = []
    for (what, option, rule), results in kinds.items():
        widest = max((r.context["interval"][1] - r.context["interval"][0]) / 2 for r in results)
        unit = " pp" if results[0].unit == "pp" else "%"
        limit = "the tolerance" if option == "--tolerance" else option
        lines.append(f"warning: {plural(len(results), what)} on too few images to resolve {limit} (95% intervals "
                     f"up to ±{widest:.2f}{unit}): {rule}; test on more images, or widen {option} to what the "
                     "set resolves")
    return lines


def summary_lines(verdict) -> list[str]:
    """The closing lines of `check`, unwrapped: the verdict with its counts in words, then what was skipped
    and which files are mixed int8/float."""
    failed, total = len(verdict.failed), len(verdict.results)
    head = (f"PASS: all {plural(total, 'check')} passed" if verdict.passed
            else f"FAIL: {plural(failed, 'check')} failed and {total - failed} passed")
    lines = [f"{head} on {verdict.n_samples} images; reference {verdict.reference}, "
             f"accuracy {percent(verdict.reference_accuracy)}"]
    subsets = subset_lines({k: len(v) for k, v in verdict.subsets.items()}, verdict.n_samples,
                           "parity only (too few images for the accuracy checks),")
    return (lines + unresolved_lines(verdict) + subsets + [f"skipped: {s}" for s in verdict.skipped]
            + mixed_note(verdict.float_layers).splitlines())


def summary(verdict) -> str:
    """The closing lines of `check` for the terminal, each at most WIDTH columns."""
    return "\n".join(fit(line) for line in summary_lines(verdict))


def prepare_report_path(path: Path | None, out: Path, say) -> Path | None:
    """Check a report path before any work: not one of DIR's artifacts or records, not a folder;
    its parent folders are created (and said so)."""

    if path is None:
        return None
    path = Path(path)
    if path.name in WRITTEN_FILES and path.absolute().parent.resolve() == Path(out).absolute().resolve():
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
        atomic_write_json(Path(json_path), verdict_json(verdict))
    if junit_path:
        junit(verdict.results, Path(junit_path))
    if md_path:
        rows = [[markdown_text(str(cell)) for cell in row] for row in check_rows(verdict.results)]
        with open(md_path, "a", encoding="utf-8") as handle:
            handle.write(f"### edge-mnist check: {'PASS' if verdict.passed else 'FAIL'}\n\n"
                         f"{markdown(CHECK_HEADERS, rows)}\n\n"
                         + "".join(f"- {line}\n" for line in summary_lines(verdict)) + "\n")


def junit(results, path: Path) -> None:
    """JUnit XML: one testcase per check and artifact (named by the check's JSON id, so a CI's history of a
    case survives new figures), a failure message in the words of the text output."""
    failures = sum(not r.passed for r in results)
    cases = []
    for r in results:
        name = quoteattr(f"{r.artifact}: {r.criterion}")
        body = "" if r.passed else f"<failure message={quoteattr(describe(r))}/>"
        cases.append(f"  <testcase classname=\"edge_mnist.check\" name={name}>{body}</testcase>")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="edge-mnist check" tests="{len(results)}" '
           f'failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")
    atomic_write_bytes(Path(path), xml.encode())
