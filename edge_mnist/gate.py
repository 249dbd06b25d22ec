"""The gate's rules: limits (Criteria), one Result per check, and the pure functions that decide each.

Each criterion is a small pure function of predictions and limits (unit-tested at its boundary); check.py
runs the artifacts and feeds them here. Each check's value and limit are in its UNITS entry; render.tables
phrases them for people.

The two accuracy-drop checks (vs the float model, vs a baseline) also weigh the drop against the number of test
images when both models' predictions on the same images are known (PairedDrop, drop_rule): on 50 images one
image is 2 pp, so a fixed 0.5 pp tolerance alone cannot tell noise from a regression. The disagreement with
the source model and the per-class drop are weighed the same way (interval_rule), with the exact interval of
the share of images that differ and the paired interval of each class's drop.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.jsonio import now
from edge_mnist.registry.formats import parity_groups

EPS = 1e-9  # accuracies are ratios of counts; this absorbs float rounding at a limit


# Each check's id in the JSON report (stable, for CI scripts) and the unit of its value and limit there.
DROP = "accuracy drop vs float (pp)"
RELATIVE = "relative accuracy drop (%)"
MINIMUM = "accuracy (min)"
DISAGREEMENT = "disagreement with source model (%)"
CLASS_DROP = "worst per-class drop vs source (pp)"
BASELINE = "accuracy drop vs baseline (pp)"
PARITY = "parity (same class)"
EMBEDS = "describes the .tflite it embeds (problems)"
UNITS = {DROP: "pp", RELATIVE: "%", MINIMUM: "fraction", DISAGREEMENT: "%", CLASS_DROP: "pp", BASELINE: "pp",
         PARITY: "fraction", EMBEDS: "problems"}


PAIR = " ~ "  # joins the two files of a parity result's artifact


@dataclass(frozen=True)
class Criteria:
    """Limits of the gate (the one place their defaults are defined); None disables a criterion."""

    tolerance_pp: float | None = 0.5
    relative_pct: float | None = None
    min_accuracy: float | None = None
    max_disagreement_pct: float | None = 2.0
    max_class_drop_pp: float | None = 3.0
    parity: float | None = 0.99
    baseline: Path | None = None
    strict_drop: bool = False  # interval_rule: fail beyond the limit even where the set cannot resolve it

    def validate(self) -> "Criteria":
        """Refuse NaN, negative or out-of-range limits before any work is done."""
        ranges = {"tolerance_pp": (0, 100), "relative_pct": (0, 100), "min_accuracy": (0, 1),
                  "max_disagreement_pct": (0, 100), "max_class_drop_pp": (0, 100), "parity": (0, 1)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or not low <= value <= high):
                raise EdgeMnistError(f"check: {name} must be a number in [{low}, {high}], not {value}")
        if self.baseline is not None and self.tolerance_pp is None:
            raise EdgeMnistError("check: --baseline compares with --tolerance, which is turned off")
        return self


@dataclass
class Result:
    """One check on one artifact (or on a pair, "a ~ b", for parity). `criterion` is its id in the JSON
    report, value and limit are in UNITS[criterion]; `context` holds the other figures its sentence shows
    (tables.describe: the accuracies compared, the class, the embedded file) and `detail` a note for the
    end of that sentence (the images two files disagree on, a C++ file's problems)."""

    artifact: str
    criterion: str
    value: float
    limit: float
    passed: bool
    detail: str = ""
    context: dict = field(default_factory=dict)

    def __post_init__(self):
        """Plain Python types, so results serialize to JSON whatever numpy handed us."""
        self.value, self.limit, self.passed = float(self.value), float(self.limit), bool(self.passed)

    @property
    def unit(self) -> str:
        """What value and limit are measured in: pp, %, fraction or problems."""
        return UNITS[self.criterion]

    @property
    def pair(self) -> tuple[str, str] | None:
        """The two files a parity result compares, else None."""
        first, _, second = self.artifact.partition(PAIR)
        return (first, second) if second else None

    def to_json(self) -> dict:
        """JSON object: the fields and the unit."""
        return {**asdict(self), "unit": self.unit}


LEVEL = 0.95  # confidence of the interval each accuracy drop is stated with


@functools.lru_cache(maxsize=8)
def _log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n (cached: one test set asks for the same n many times)."""
    return np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space (exact to float rounding for any n)."""
    log_f, i = _log_factorials(n), np.arange(k, n + 1)
    log_pmf = log_f[n] - log_f[i] - log_f[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
    return float(np.exp(np.logaddexp.reduce(log_pmf)))


def _lowest_p(k: int, n: int, tail: float) -> float:
    """The p at which P(X >= k) = `tail` (k >= 1), by bisection: the tail rises with p."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if binomial_tail(k, n, middle) < tail else (low, middle)
    return low


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided 1 - alpha interval of a proportion seen k times in n trials: its
    coverage is at least 1 - alpha for every true proportion and every n, small n included, which is why it is
    used rather than a normal approximation. n = 0 says nothing: (0, 1)."""
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if k == 0 else _lowest_p(k, n, alpha / 2)
    high = 1.0 if k == n else 1.0 - _lowest_p(n - k, n, alpha / 2)
    return low, high


@dataclass(frozen=True)
class PairedDrop:
    """A model against a reference on the same `n` test images, paired per image: `lost` images the reference
    classifies right and the model wrong, `gained` the reverse. Only these discordant images move the drop,
    (lost - gained) / n; images both get right or both get wrong carry no information about it."""

    n: int
    lost: int
    gained: int

    @classmethod
    def of(cls, predictions: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> "PairedDrop":
        """Count the discordant images of two models' top-1 predictions on the same labelled images."""
        if not len(labels) or not len(predictions) == len(reference) == len(labels):
            raise EdgeMnistError(f"check: paired predictions need the same images: {len(predictions)} predictions, "
                                 f"{len(reference)} reference predictions, {len(labels)} labels")
        ours, theirs = predictions == labels, reference == labels
        return cls(len(labels), int((theirs & ~ours).sum()), int((ours & ~theirs).sum()))

    @property
    def drop_pp(self) -> float:
        """The drop on these images, in percentage points."""
        return (self.lost - self.gained) / self.n * 100

    def interval_pp(self, level: float = LEVEL) -> tuple[float, float]:
        """The `level` interval of the drop (pp), exact and paired over images (McNemar's setting).

        The drop is d = r (2s - 1): r the share of discordant images, s the share of those the model lost.
        s gets the exact Clopper-Pearson interval of `lost` in the discordant images (conditionally on them,
        lost ~ Binomial(lost + gained, s): the exact McNemar test), r that of the discordant count in n; each
        at 1 - (1 - level) / 2, so both hold together with probability >= level (Bonferroni), and d's interval
        is the image of that rectangle. The r factor is what a McNemar interval alone lacks: with no
        discordant image it would give [0, 0] on 50 images, claiming a precision 50 images do not have (they
        cannot rule out a discordance of 8%). Why not a bootstrap: it collapses there too, and is random.
        The interval contains the observed drop, and excludes 0 exactly when the exact one-sided binomial test
        of lost vs gained rejects "no drop" at (1 - level) / 4."""
        alpha = (1 - level) / 2
        rate = clopper_pearson(self.lost + self.gained, self.n, alpha)
        share = clopper_pearson(self.lost, self.lost + self.gained, alpha)
        low, high = 2 * share[0] - 1, 2 * share[1] - 1
        return (100 * low * (rate[0] if low >= 0 else rate[1]),
                100 * high * (rate[1] if high >= 0 else rate[0]))


def interval_rule(value: float, limit: float, interval: tuple[float, float], strict: bool,
                  floor: float) -> tuple[bool, bool]:
    """(passed, resolved) of a value against its limit when the value comes with a 95% interval (the one rule of
    the accuracy drops, the disagreement and the per-class drop; drop_rule says why).

    The set resolves the limit when the interval's half-width is at most the limit: then the point rule
    decides. Otherwise a value beyond the limit fails only when the interval lies above `floor` (0 for an
    accuracy drop: the drop is real; the limit itself for a share of images or a class's drop: the excess is
    real), unless `strict` (--strict-drop) keeps the point rule."""
    low, high = interval
    resolved = (high - low) / 2 <= limit + EPS
    beyond = value > limit + EPS
    return not beyond or (not strict and not resolved and low <= floor + EPS), resolved


def drop_rule(drop: float, tolerance_pp: float, paired: PairedDrop | None,
              strict: bool = False) -> tuple[bool, dict]:
    """(passed, the figures the result's sentence shows) for an accuracy drop of `drop` pp against a tolerance.

    Without paired predictions: pass when drop <= tolerance (the rule of earlier releases). With them the
    95% interval of the drop decides how far the point drop can be trusted (interval_rule, floor 0):
    - the set resolves the tolerance when the interval's half-width is at most the tolerance; then the rule
      is exactly the point rule (10,000 images at 0.5 pp: unchanged, unless the models disagree on several %
      of the images);
    - on a set too small to resolve it, a drop beyond the tolerance fails only when the interval excludes
      zero (the regression is real, not one or two images flipping); otherwise it passes, and the result says
      it is unresolved (context `resolved` False; Verdict.unresolved) so the verdict warns. A point rule there
      fails an unchanged model whenever one image flips (flaky); failing every unresolved check would fail
      every small set (a gate nobody can pass); this rule fails what is demonstrably worse and says plainly
      what it cannot see. `strict` (--strict-drop) keeps the point rule there too, the interval still shown:
      for a tolerance of 0, which no set resolves, or a CI that prefers flaky to lenient."""
    if paired is None:
        return drop <= tolerance_pp + EPS, {}
    interval = paired.interval_pp()
    passed, resolved = interval_rule(drop, tolerance_pp, interval, strict, 0.0)
    return passed, {"images": paired.n, "lost": paired.lost, "gained": paired.gained, "interval": list(interval),
                    "resolved": resolved}


def paired_drop(predictions: np.ndarray | None, reference: np.ndarray | None,
                labels: np.ndarray) -> PairedDrop | None:
    """The paired counts of two models on the test images, or None when either's predictions are unknown."""
    return None if predictions is None or reference is None else PairedDrop.of(predictions, reference, labels)


def accuracy_drop(name: str, accuracy: float, reference: float, tolerance_pp: float,
                  paired: PairedDrop | None = None, strict: bool = False) -> Result:
    """Pass when accuracy is at most `tolerance_pp` percentage points below the reference; with the paired
    predictions, as drop_rule weighs it against the number of images."""
    drop = (reference - accuracy) * 100
    passed, figures = drop_rule(drop, tolerance_pp, paired, strict)
    return Result(name, DROP, drop, tolerance_pp, passed,
                  context={"accuracy": accuracy, "reference": reference, **figures})


def relative_drop(name: str, accuracy: float, reference: float, max_pct: float) -> Result:
    """Pass when the drop is at most `max_pct` percent of the reference accuracy."""
    rel = (reference - accuracy) / reference * 100 if reference > 0 else math.inf
    return Result(name, RELATIVE, rel, max_pct, rel <= max_pct + EPS,
                  context={"accuracy": accuracy, "reference": reference})


def minimum_accuracy(name: str, accuracy: float, minimum: float) -> Result:
    """Pass when accuracy is at least `minimum` (a fraction)."""
    return Result(name, MINIMUM, accuracy, minimum, accuracy >= minimum - EPS)


def disagreement(name: str, preds: np.ndarray, source: np.ndarray, max_pct: float, strict: bool = False) -> Result:
    """Pass when at most `max_pct` % of the images get another class than from the source model, as
    interval_rule weighs it: with the exact (Clopper-Pearson) 95% interval of that share, so that on a set
    too small to resolve the limit (50 images: one image is 2%) a share beyond it fails only when its interval
    lies above the limit."""
    differ, n = int((preds != source).sum()), len(preds)
    pct = differ / n * 100
    interval = tuple(100 * x for x in clopper_pearson(differ, n, 1 - LEVEL))
    passed, resolved = interval_rule(pct, max_pct, interval, strict, max_pct)
    return Result(name, DISAGREEMENT, pct, max_pct, passed,
                  context={"images": n, "differ": differ, "interval": list(interval), "resolved": resolved})


def class_drop(name: str, preds: np.ndarray, source: np.ndarray, labels: np.ndarray,
               class_names: tuple[str, ...], max_pp: float, strict: bool = False) -> Result:
    """Pass when no class loses more than `max_pp` points of accuracy against the source model, each class's
    drop weighed by interval_rule with its paired interval (PairedDrop on that class's images) at
    1 - 5% / classes, so that the intervals of all classes hold together at 95% (Bonferroni): on 5 images per
    class one image is 20 pp, and a drop beyond the limit there fails only when its interval lies above it.
    The result names the worst failing class, else the class with the largest drop; `resolved` is whether
    every class resolves the limit (a class that does not cannot show a regression smaller than its interval)."""
    present = [c for c in range(len(class_names)) if (labels == c).any()]
    level = 1 - (1 - LEVEL) / len(present)
    judged = []
    for c in present:
        images = labels == c
        paired = PairedDrop.of(preds[images], source[images], labels[images])
        interval = paired.interval_pp(level)
        judged.append((c, paired, interval, *interval_rule(paired.drop_pp, max_pp, interval, strict, max_pp)))
    c, paired, interval, passed, _ = max(judged, key=lambda j: (not j[3], j[1].drop_pp))
    return Result(name, CLASS_DROP, paired.drop_pp, max_pp, passed,
                  context={"class": class_names[c], "images": paired.n, "lost": paired.lost, "gained": paired.gained,
                           "interval": list(interval), "classes": len(present),
                           "resolved": all(j[4] for j in judged)})


def baseline_drop(name: str, accuracy: float, baseline: float, tolerance_pp: float,
                  paired: PairedDrop | None = None, strict: bool = False) -> Result:
    """Pass when accuracy is at most `tolerance_pp` points below the same artifact in an earlier release; with
    the paired predictions (the baseline's, on the same test images), as drop_rule weighs it."""
    drop = (baseline - accuracy) * 100
    passed, figures = drop_rule(drop, tolerance_pp, paired, strict)
    return Result(name, BASELINE, drop, tolerance_pp, passed,
                  context={"accuracy": accuracy, "baseline": baseline, **figures})


def on_images(full: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
    """A per-test-image array (labels, predictions on the whole test set) on the images `indices` (None: all)."""
    return full if indices is None else full[indices]


def parity(name: str, a: np.ndarray, b: np.ndarray, minimum: float, indices: np.ndarray | None = None) -> Result:
    """Pass when two artifacts of one parity group predict the same class on at least `minimum` of the images;
    the images they disagree on are named by test-set index (`indices`: the test images a and b are of)."""
    agree = float((a == b).mean())
    bad = np.flatnonzero(a != b)
    bad = bad if indices is None else indices[bad]
    shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
    return Result(name, PARITY, agree, minimum, agree >= minimum - EPS,
                  f"they disagree on {len(bad)} image{'' if len(bad) == 1 else 's'}: {shown}" if len(bad) else "")


@dataclass
class Verdict:
    """Everything `check` decided, for the terminal and the reports."""

    results: list[Result]
    reference: str
    reference_accuracy: float
    n_samples: int
    dataset: str
    criteria: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    float_layers: dict[str, str] = field(default_factory=dict)  # mixed artifacts (format key -> float layers)
    predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # file label -> test-set classes
    accuracies: dict[str, float] = field(default_factory=dict)  # file label -> accuracy, the reference's too
    subsets: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # file label -> test images it ran on
    created: str = field(default_factory=now)

    @property
    def failed(self) -> list[Result]:
        """The checks that did not pass."""
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return not self.failed

    @property
    def unresolved(self) -> list[Result]:
        """The checks whose test images are too few to resolve their limit (interval_rule)."""
        return [r for r in self.results if r.context.get("resolved") is False]

    def to_json(self) -> dict:
        """JSON object for --json (full precision; tables.verdict_json rounds it for the reports)."""
        return {"verdict": "PASS" if self.passed else "FAIL", "created": self.created, "reference": self.reference,
                "reference_accuracy": self.reference_accuracy, "n_samples": self.n_samples, "dataset": self.dataset,
                "criteria": self.criteria, "skipped": self.skipped, "float_layers": self.float_layers,
                "accuracies": self.accuracies, "subsets": {k: len(v) for k, v in self.subsets.items()},
                "unresolved": [f"{r.artifact}: {r.criterion}" for r in self.unresolved],
                "results": [r.to_json() for r in self.results]}


@dataclass
class Measured:
    """One model run by the gate on the test set, or on the test images `indices` (a `subset` runtime's); for a
    baseline from an earlier bench.json, predictions are None when that was measured on other test images."""

    key: str
    file: str
    predictions: np.ndarray | None
    accuracy: float
    indices: np.ndarray | None = None

    def at(self, indices: np.ndarray | None) -> np.ndarray:
        """Its predictions on the test images `indices` (None: all); it must have run on each of them."""
        if self.indices is None:
            return on_images(self.predictions, indices)
        if indices is None or not np.isin(indices, self.indices).all():
            raise EdgeMnistError(f"{self.file} ran on {len(self.indices)} test images, not on all of those asked for")
        return self.predictions[np.searchsorted(self.indices, indices)]


def artifact_results(m: Measured, reference: float, source: np.ndarray | None, labels: np.ndarray,
                     class_names: tuple[str, ...], c: Criteria, baseline: dict[str, Measured],
                     reference_predictions: np.ndarray | None = None) -> list[Result]:
    """Every enabled check for one int8 artifact. `baseline`: the same run in an earlier release (its predictions
    None where they are not of these test images); `reference_predictions`: the reference's, which pair the
    accuracy drop per image (drop_rule)."""
    name, acc = m.file, m.accuracy
    out = []
    if c.tolerance_pp is not None:
        out.append(accuracy_drop(name, acc, reference, c.tolerance_pp,
                                 paired_drop(m.predictions, reference_predictions, labels), c.strict_drop))
    if c.relative_pct is not None:
        out.append(relative_drop(name, acc, reference, c.relative_pct))
    if c.min_accuracy is not None:
        out.append(minimum_accuracy(name, acc, c.min_accuracy))
    if source is not None and c.max_disagreement_pct is not None:
        out.append(disagreement(name, m.predictions, source, c.max_disagreement_pct, c.strict_drop))
    if source is not None and c.max_class_drop_pp is not None:
        out.append(class_drop(name, m.predictions, source, labels, class_names, c.max_class_drop_pp,
                              c.strict_drop))
    if baseline:
        earlier = baseline[m.key]
        out.append(baseline_drop(name, acc, earlier.accuracy, c.tolerance_pp,
                                 paired_drop(m.predictions, earlier.predictions, labels), c.strict_drop))
    return out


def run_results(m: Measured, reference: float, source: np.ndarray | None, labels: np.ndarray,
                class_names: tuple[str, ...], c: Criteria, baseline: dict[str, Measured],
                reference_predictions: np.ndarray | None = None) -> list[Result]:
    """Every enabled accuracy check for one run of an int8 artifact on the whole test set. A run on a subset
    (TFLM's stratified images) has none: on a few hundred images a drop's sampling error (about 0.6 pp on 500
    images at a 2% disagreement) is larger than the tolerances, so such a run is held to parity with the same
    file's run on every image, whose accuracy checks then stand for it."""
    if m.indices is not None:
        return []
    return artifact_results(m, reference, source, labels, class_names, c, baseline, reference_predictions)


def parity_results(measured: dict[str, Measured], minimum: float) -> list[Result]:
    """Each parity group's first artifact against every other member, on the images both ran on (a run on
    a subset is compared there)."""
    results = []
    for members in parity_groups(list(measured)).values():
        first = measured[members[0].key]
        for other in (measured[m.key] for m in members[1:]):
            images = other.indices if other.indices is not None else first.indices
            results.append(parity(f"{first.file} ~ {other.file}", first.at(images), other.at(images), minimum,
                                  images))
    return results
