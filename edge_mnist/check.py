"""The CI accuracy-regression gate: compare every int8 artifact with the float model.

Reads DIR/bench.json and refuses results that do not belong to the files now in DIR
(sha256), zero samples, or accuracies that do not follow from the stored predictions.
Exit codes (via the CLI): 0 pass, 1 a criterion failed, 2 bad input.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .bench import BENCH_FILE, SCHEMA, decode_labels, reference_row, source_predictions
from .convert.manifest import Manifest
from .errors import EdgeMnistError
from .files import read_json, sha256_file


@dataclass
class Criteria:
    """Limits of the gate; None disables a criterion."""

    tolerance_pp: float | None = 0.5
    relative_pct: float | None = None
    min_accuracy: float | None = None
    max_disagreement_pct: float | None = 2.0
    max_class_drop_pp: float | None = 3.0
    parity: float | None = 0.99
    baseline: Path | None = None


@dataclass
class Result:
    """One criterion evaluated on one artifact."""

    artifact: str
    criterion: str
    value: float
    limit: float
    passed: bool
    detail: str = ""

    def __post_init__(self):
        """Plain Python types, so results serialize to JSON whatever numpy handed us."""
        self.value, self.limit, self.passed = float(self.value), float(self.limit), bool(self.passed)


def load_bench(out: Path) -> dict:
    """Read bench.json and check it is complete, non-empty and matches the files now in DIR."""
    path = Path(out) / BENCH_FILE
    bench = read_json(path, "bench results (run `edge-mnist bench` first)")
    try:
        if bench["schema"] != SCHEMA:
            raise EdgeMnistError(f"{path}: schema {bench['schema']} is not {SCHEMA}")
        n = int(bench["n_samples"])
        labels = decode_labels(bench["labels"], f"{path} labels") if n > 0 else np.empty(0)
        rows = bench["rows"]
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeMnistError(f"{path}: malformed bench results ({exc})") from exc
    if n <= 0 or len(labels) != n or not rows:
        raise EdgeMnistError(f"{path}: zero evaluated samples or no rows; refusing to pass")
    for row in rows:
        _verify_row(path, Path(out), row, labels)
    bench["_labels"] = labels
    return bench


def _verify_row(path: Path, out: Path, row: dict, labels: np.ndarray) -> None:
    """The row's file must be unchanged since bench and its accuracy must follow from its predictions."""
    try:
        artifact, sha, acc = row["artifact"], row["sha256"], float(row["accuracy"])
        preds = decode_labels(row["predictions"], f"{path} {row['artifact']}")
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeMnistError(f"{path}: malformed row ({exc})") from exc
    file = out / artifact
    if not file.is_file():
        raise EdgeMnistError(f"{file}: measured in {BENCH_FILE} but missing now")
    if sha256_file(file) != sha:
        raise EdgeMnistError(f"{file}: changed since bench (sha256 differs); re-run `edge-mnist bench`")
    if len(preds) != len(labels):
        raise EdgeMnistError(f"{path}: {artifact} has {len(preds)} predictions for {len(labels)} labels")
    if abs(float((preds == labels).mean()) - acc) > 1e-9:
        raise EdgeMnistError(f"{path}: {artifact} accuracy {acc} does not match its predictions; results edited?")
    row["_preds"] = preds


def class_accuracy(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Accuracy per class (NaN for a class with no samples)."""
    return np.array([(preds[labels == c] == c).mean() if (labels == c).any() else np.nan for c in range(10)])


def _reference(out: Path, bench: dict, manifest: Manifest) -> tuple[float, str]:
    """Float accuracy to gate against: the Keras row, else the manifest's recorded float accuracy."""
    keras = next((r for r in bench["rows"] if r.get("key") == "keras_float32"), None)
    if keras is not None:
        return float(keras["accuracy"]), "keras_float32 (measured)"
    if manifest.float_accuracy is None:
        raise EdgeMnistError(f"{out}: no Keras row in {BENCH_FILE} and no float accuracy in manifest.json")
    return float(manifest.float_accuracy), "float accuracy recorded in manifest.json"


def _int8_rows(out: Path, bench: dict, manifest: Manifest) -> list[dict]:
    """int8 rows; every int8 artifact of the manifest must have been measured in its current form.

    The rows' files were already hashed by load_bench, so comparing hashes suffices here.
    """
    rows = [r for r in bench["rows"] if r.get("precision") == "int8"]
    measured = {r["key"]: r["sha256"] for r in rows}
    for key, entry in manifest.artifacts.items():
        if entry["precision"] != "int8":
            continue
        if key not in measured:
            raise EdgeMnistError(f"{out / entry['file']}: int8 artifact not in {BENCH_FILE}; re-run `edge-mnist bench`")
        if measured[key] != entry["sha256"]:
            raise EdgeMnistError(f"{out / entry['file']}: sha256 differs between manifest.json and {BENCH_FILE}; "
                                 "re-export or re-run bench")
    if not rows:
        raise EdgeMnistError(f"{out}: no int8 artifact to check (run `edge-mnist export --int8`)")
    return rows


def _baseline_accuracy(path: Path) -> dict[str, float]:
    """Accuracy per artifact key from an earlier bench.json (e.g. the last release's)."""
    base = read_json(path, "baseline bench results")
    try:
        return {r["key"]: float(r["accuracy"]) for r in base["rows"] if r.get("precision") == "int8"}
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeMnistError(f"{path}: malformed baseline ({exc})") from exc


def evaluate(out: Path, criteria: Criteria) -> tuple[list[Result], dict]:
    """Evaluate every criterion on every int8 artifact; returns results and context for reports."""
    out = Path(out)
    bench = load_bench(out)
    manifest = Manifest.load(out)
    labels = bench["_labels"]
    ref_acc, ref_name = _reference(out, bench, manifest)
    ref = reference_row(bench["rows"])
    ref_preds = ref["_preds"] if ref else None
    baseline = _baseline_accuracy(criteria.baseline) if criteria.baseline else {}
    results: list[Result] = []
    rows = _int8_rows(out, bench, manifest)
    for row in rows:
        src_preds = source_predictions(row, ref_preds, manifest.qat)
        results += _row_results(row, labels, ref_acc, src_preds, criteria, baseline)
    if criteria.parity is not None:
        results += _parity(rows, criteria.parity)
    context = {"reference": ref_name, "reference_accuracy": ref_acc, "n_samples": len(labels),
               "dataset": bench.get("dataset"), "criteria": {k: (str(v) if isinstance(v, Path) else v)
                                                            for k, v in asdict(criteria).items()}}
    return results, context


def _row_results(row, labels, ref_acc, src_preds, c: Criteria, baseline) -> list[Result]:
    """Criteria for one int8 artifact: accuracy against the float reference; disagreement and
    per-class drop against the float model it was quantized from (`src_preds`)."""
    name, acc, preds = row["artifact"], float(row["accuracy"]), row["_preds"]
    drop_pp = (ref_acc - acc) * 100
    out = []
    if c.tolerance_pp is not None:
        out.append(Result(name, "accuracy drop vs float (pp)", drop_pp, c.tolerance_pp, drop_pp <= c.tolerance_pp,
                          f"{acc:.4f} vs {ref_acc:.4f}"))
    if c.relative_pct is not None:
        rel = drop_pp / ref_acc if ref_acc else float("inf")
        out.append(Result(name, "relative accuracy drop (%)", rel, c.relative_pct, rel <= c.relative_pct))
    if c.min_accuracy is not None:
        out.append(Result(name, "accuracy (min)", acc, c.min_accuracy, acc >= c.min_accuracy))
    if src_preds is not None and c.max_disagreement_pct is not None:
        dis = float((preds != src_preds).mean() * 100)
        out.append(Result(name, "disagreement with source float (%)", dis, c.max_disagreement_pct, dis <= c.max_disagreement_pct))
    if src_preds is not None and c.max_class_drop_pp is not None:
        drops = (class_accuracy(src_preds, labels) - class_accuracy(preds, labels)) * 100
        worst = int(np.nanargmax(drops))
        out.append(Result(name, "worst per-class drop vs source (pp)", float(drops[worst]), c.max_class_drop_pp,
                          drops[worst] <= c.max_class_drop_pp, f"class {worst}"))
    if row["key"] in baseline and c.tolerance_pp is not None:
        base_drop = (baseline[row["key"]] - acc) * 100
        out.append(Result(name, "accuracy drop vs baseline (pp)", base_drop, c.tolerance_pp,
                          base_drop <= c.tolerance_pp, f"baseline {baseline[row['key']]:.4f}"))
    return out


def _parity(rows: list[dict], minimum: float) -> list[Result]:
    """TFLite and ONNX int8 artifacts of one export method must predict the same classes."""
    out = []
    for method in sorted({r["method"] for r in rows}):
        pair = {r["format"]: r for r in rows if r["method"] == method}
        if {"tflite", "onnx"} <= pair.keys():
            a, b = pair["tflite"]["_preds"], pair["onnx"]["_preds"]
            agree = float((a == b).mean())
            bad = np.flatnonzero(a != b)
            shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
            out.append(Result(f"{pair['tflite']['artifact']} ~ {pair['onnx']['artifact']}", "tflite/onnx parity",
                              agree, minimum, agree >= minimum, f"disagree on {len(bad)}: {shown}" if len(bad) else ""))
    return out
