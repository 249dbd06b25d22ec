"""The spread of the suite's headline ratios over several runs: the table behind the speed targets.

    python -m benchmarks.spread benchmarks/results/2026-12-04-16*.json --out benchmarks/results/spread.md

Each suite run (benchmarks/suite.py) measures its headline ratios interleaved in one process; one run is
one sample of a noisy shared machine. This reads the runs' JSON files and gives, per ratio and per p50,
the median over runs with the lowest and highest run, and the number of runs, so a target is judged on
the median and the reader sees how far one run can stray. No model is opened: it only reads results.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_mnist.render.tables import markdown


def collect(paths: list[Path]) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str]]:
    """Ratios and paired p50s of every run, by name, and each run's date and time."""
    ratios: dict[str, list[float]] = {}
    p50s: dict[str, list[float]] = {}
    stamps = []
    for path in paths:
        result = json.loads(path.read_text())
        stamps.append(f"{result['date']} {result.get('time', '')}".strip())
        for key, value in result["paired"]["ratios"].items():
            ratios.setdefault(key, []).append(value)
        for key, value in result["paired"]["p50_us"].items():
            p50s.setdefault(key, []).append(value)
    return ratios, p50s, stamps


def table(rows: dict[str, list[float]], unit: str, digits: int) -> str:
    """A Markdown table: name, median, lowest, highest, runs."""
    return markdown([unit, "median", "lowest run", "highest run", "runs"],
                    [[key.replace("_", " "), *(f"{f(values):.{digits}f}" for f in (np.median, min, max)), len(values)]
                     for key, values in rows.items()])


def main() -> None:
    """Print (and with --out write) the spread of the given suite runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="suite result JSON files, one per run")
    parser.add_argument("--out", type=Path, help="write the Markdown here too")
    args = parser.parse_args()
    ratios, p50s, stamps = collect(args.runs)
    text = "\n\n".join([f"Suite runs: {len(stamps)} ({', '.join(stamps)}).", table(ratios, "ratio", 2),
                        table(p50s, "p50 µs (interleaved)", 1)]) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
