"""The check stage, the CI accuracy-regression gate: every int8 artifact against the float model.

Each criterion is a small pure function of predictions and limits (unit-tested at its
boundary). `evaluate` gathers the measurements from DIR/bench.json after checking that they
belong to the files now in DIR (sha256), that every int8 artifact of the manifest was
measured, and that each accuracy follows from its stored predictions. Exit codes (via the
CLI): 0 pass, 1 a criterion failed, 2 bad input.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import EdgeMnistError
from .files import sha256_file
from .formats import QAT_KERAS, parity_groups
from .records import BENCH_FILE, MANIFEST_FILE, BenchResult, BenchRow, Manifest

EPS = 1e-9  # accuracies are ratios of counts; this absorbs float rounding at a limit


@dataclass
class Criteria:
    """Limits of the gate (the one place their defaults are defined); None disables a criterion."""

    tolerance_pp: float | None = 0.5
    relative_pct: float | None = None
    min_accuracy: float | None = None
    max_disagreement_pct: float | None = 2.0
    max_class_drop_pp: float | None = 3.0
    parity: float | None = 0.99
    baseline: Path | None = None

    def validate(self) -> "Criteria":
        """Refuse NaN, negative or out-of-range limits before any work is done."""
        ranges = {"tolerance_pp": (0, 100), "relative_pct": (0, 100), "min_accuracy": (0, 1),
                  "max_disagreement_pct": (0, 100), "max_class_drop_pp": (0, 100), "parity": (0, 1)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or not low <= value <= high):
                raise EdgeMnistError(f"check: {name} must be a number in [{low}, {high}], not {value}")
        return self


@dataclass
class Result:
    """One criterion evaluated on one artifact (or one pair, for parity)."""

    artifact: str
    criterion: str
    value: float
    limit: float
    passed: bool
    detail: str = ""

    def __post_init__(self):
        """Plain Python types, so results serialize to JSON whatever numpy handed us."""
        self.value, self.limit, self.passed = float(self.value), float(self.limit), bool(self.passed)


def accuracy_drop(name: str, accuracy: float, reference: float, tolerance_pp: float) -> Result:
    """Pass when accuracy is at most `tolerance_pp` percentage points below the reference."""
    drop = (reference - accuracy) * 100
    return Result(name, "accuracy drop vs float (pp)", drop, tolerance_pp, drop <= tolerance_pp + EPS,
                  f"{accuracy:.4f} vs {reference:.4f}")


def relative_drop(name: str, accuracy: float, reference: float, max_pct: float) -> Result:
    """Pass when the drop is at most `max_pct` percent of the reference accuracy."""
    rel = (reference - accuracy) / reference * 100 if reference > 0 else math.inf
    return Result(name, "relative accuracy drop (%)", rel, max_pct, rel <= max_pct + EPS)


def minimum_accuracy(name: str, accuracy: float, minimum: float) -> Result:
    """Pass when accuracy is at least `minimum` (a fraction)."""
    return Result(name, "accuracy (min)", accuracy, minimum, accuracy >= minimum - EPS)


def disagreement(name: str, preds: np.ndarray, source: np.ndarray, max_pct: float) -> Result:
    """Pass when at most `max_pct` % of the images get another class than from the source model."""
    pct = float((preds != source).mean() * 100)
    return Result(name, "disagreement with source model (%)", pct, max_pct, pct <= max_pct + EPS)


def class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy per class (NaN for a class with no samples)."""
    return np.array([(preds[labels == c] == c).mean() if (labels == c).any() else np.nan
                     for c in range(num_classes)])


def class_drop(name: str, preds: np.ndarray, source: np.ndarray, labels: np.ndarray,
               class_names: tuple[str, ...], max_pp: float) -> Result:
    """Pass when no class loses more than `max_pp` points of accuracy against the source model."""
    drops = (class_accuracy(source, labels, len(class_names)) - class_accuracy(preds, labels, len(class_names))) * 100
    worst = int(np.nanargmax(drops))
    return Result(name, "worst per-class drop vs source (pp)", drops[worst], max_pp, drops[worst] <= max_pp + EPS,
                  f"class {class_names[worst]}")


def baseline_drop(name: str, accuracy: float, baseline: float, tolerance_pp: float) -> Result:
    """Pass when accuracy is at most `tolerance_pp` points below the same artifact in an earlier release."""
    drop = (baseline - accuracy) * 100
    return Result(name, "accuracy drop vs baseline (pp)", drop, tolerance_pp, drop <= tolerance_pp + EPS,
                  f"baseline {baseline:.4f}")


def parity(name: str, a: np.ndarray, b: np.ndarray, minimum: float) -> Result:
    """Pass when two artifacts of one parity group predict the same class on at least `minimum` of the images."""
    agree = float((a == b).mean())
    bad = np.flatnonzero(a != b)
    shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
    return Result(name, "parity (same class)", agree, minimum, agree >= minimum - EPS,
                  f"disagree on {len(bad)}: {shown}" if len(bad) else "")


@dataclass
class Verdict:
    """Everything `check` decided, for the terminal and the reports."""

    results: list[Result]
    reference: str
    reference_accuracy: float
    n_samples: int
    dataset: str
    criteria: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[Result]:
        """The criteria that did not pass."""
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        """True when every criterion passed."""
        return not self.failed

    def to_json(self) -> dict:
        """JSON object for --json."""
        return {"verdict": "PASS" if self.passed else "FAIL", "reference": self.reference,
                "reference_accuracy": self.reference_accuracy, "n_samples": self.n_samples, "dataset": self.dataset,
                "criteria": self.criteria, "results": [asdict(r) for r in self.results]}


def verified_bench(out: Path, manifest: Manifest) -> BenchResult:
    """DIR/bench.json, refused unless it describes the files now in DIR and is self-consistent."""
    path = Path(out) / BENCH_FILE
    result = BenchResult.load(path, manifest.task.num_classes)
    if result.dataset_fingerprint != manifest.dataset_fingerprint:
        raise EdgeMnistError(f"{path}: measured on other test data than the folder was exported with; re-run bench")
    for row in result.rows:
        file = Path(out) / row.file
        if not file.is_file():
            raise EdgeMnistError(f"{file}: measured in {BENCH_FILE} but missing now")
        if sha256_file(file) != row.sha256:
            raise EdgeMnistError(f"{file}: changed since bench (sha256 differs); re-run `edge-mnist bench`")
        if abs(float((row.predictions == result.labels).mean()) - row.accuracy) > EPS:
            raise EdgeMnistError(f"{path}: {row.file} accuracy {row.accuracy} does not match its predictions; "
                                 "results edited?")
    for key, artifact in manifest.artifacts.items():
        row = result.row(key)
        if artifact.fmt.is_int8 and artifact.fmt.runnable and (row is None or row.sha256 != artifact.sha256):
            raise EdgeMnistError(f"{Path(out) / artifact.file}: int8 artifact not measured in its current form; "
                                 "re-run `edge-mnist bench`")
    _check_qat_record(out, manifest, result)
    return result


def _check_qat_record(out: Path, manifest: Manifest, result: BenchResult) -> None:
    """QAT artifacts need the QAT source model's predictions on the same test images."""
    has_qat = any(row.fmt.source == QAT_KERAS for row in result.rows)
    where = Path(out) / MANIFEST_FILE
    if has_qat and manifest.qat is None:
        raise EdgeMnistError(f"{where}: qat: QAT artifacts are listed but the QAT record is missing; re-export")
    if manifest.qat is not None and len(manifest.qat.predictions) != result.n_samples:
        raise EdgeMnistError(f"{where}: qat.predictions: {len(manifest.qat.predictions)} predictions for "
                             f"{result.n_samples} test images")


def _baseline_accuracy(path: Path, manifest: Manifest) -> dict[str, float]:
    """Accuracy per int8 artifact key from an earlier bench.json (e.g. the last release's) of the same dataset."""
    baseline = BenchResult.load(path, manifest.task.num_classes)
    if baseline.dataset != manifest.task.dataset:
        raise EdgeMnistError(f"{path}: baseline measured on {baseline.dataset}, not {manifest.task.dataset}")
    return {row.key: row.accuracy for row in baseline.rows if row.fmt.is_int8}


def _artifact_results(row: BenchRow, reference: float, source: np.ndarray | None, labels: np.ndarray,
                      class_names: tuple[str, ...], c: Criteria, baseline: dict[str, float]) -> list[Result]:
    """Every enabled criterion for one int8 artifact."""
    name, acc = row.file, row.accuracy
    out = []
    if c.tolerance_pp is not None:
        out.append(accuracy_drop(name, acc, reference, c.tolerance_pp))
    if c.relative_pct is not None:
        out.append(relative_drop(name, acc, reference, c.relative_pct))
    if c.min_accuracy is not None:
        out.append(minimum_accuracy(name, acc, c.min_accuracy))
    if source is not None and c.max_disagreement_pct is not None:
        out.append(disagreement(name, row.predictions, source, c.max_disagreement_pct))
    if source is not None and c.max_class_drop_pp is not None:
        out.append(class_drop(name, row.predictions, source, labels, class_names, c.max_class_drop_pp))
    if row.key in baseline and c.tolerance_pp is not None:
        out.append(baseline_drop(name, acc, baseline[row.key], c.tolerance_pp))
    return out


def evaluate(out: Path, criteria: Criteria) -> Verdict:
    """Evaluate every criterion on every int8 artifact of DIR."""
    out = Path(out)
    criteria.validate()
    manifest = Manifest.load(out)
    bench = verified_bench(out, manifest)
    reference = bench.reference()
    if reference is None:
        raise EdgeMnistError(f"{out / BENCH_FILE}: no float model was measured, so there is no reference")
    baseline = _baseline_accuracy(criteria.baseline, manifest) if criteria.baseline else {}
    rows = [r for r in bench.rows if r.fmt.is_int8]
    if not rows:
        raise EdgeMnistError(f"{out}: no int8 artifact to check (run `edge-mnist export --int8`)")
    results: list[Result] = []
    for row in rows:
        results += _artifact_results(row, reference.accuracy, bench.source_predictions(row, manifest), bench.labels,
                                     manifest.task.class_names, criteria, baseline)
    if criteria.parity is not None:
        for members in parity_groups([r.key for r in rows]).values():
            first = bench.row(members[0].key)
            for other in (bench.row(m.key) for m in members[1:]):
                results.append(parity(f"{first.file} ~ {other.file}", first.predictions, other.predictions,
                                      criteria.parity))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(criteria).items()}
    return Verdict(results, reference.file, reference.accuracy, bench.n_samples, bench.dataset, settings)


__all__ = ["Criteria", "Result", "Verdict", "evaluate"]
