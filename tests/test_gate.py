"""gate.py's drop statistics: the exact interval of a paired accuracy drop and drop_rule, which weighs a drop
against the number of test images.

The rule is shown over 20 seeds each: on 50 images an unchanged model never fails (the point rule of earlier
releases fails it whenever an image flips) and a real regression fails; on 10,000 images the verdict is the
point rule's. Synthetic paired predictions for the statistics, and the committed tiny export's real
predictions (500 Fashion-MNIST test images, subsampled to 50) for the models.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge_mnist.check import evaluate
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import load_dataset
from edge_mnist.gate import (
    EPS,
    Criteria,
    PairedDrop,
    accuracy_drop,
    baseline_drop,
    binomial_tail,
    clopper_pearson,
    drop_rule,
)
from tests.test_check import SKIP, rehash, zero_largest_tflite_buffer

pytestmark = pytest.mark.device

SEEDS = range(20)
TOLERANCE = 0.5


def test_binomial_tail_equals_the_sum_of_its_terms():
    for n, k, p in [(10, 0, 0.3), (10, 4, 0.3), (37, 20, 0.55), (50, 50, 0.9)]:
        exact = sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-9)


def test_clopper_pearson_matches_its_closed_forms_and_tables():
    assert clopper_pearson(0, 50, 0.05) == pytest.approx((0.0, 1 - 0.025 ** (1 / 50)))
    assert clopper_pearson(50, 50, 0.05) == pytest.approx((0.025 ** (1 / 50), 1.0))
    assert clopper_pearson(5, 10, 0.05) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    assert clopper_pearson(0, 0, 0.05) == (0.0, 1.0)


def test_no_discordant_image_is_not_mistaken_for_precision():
    low, high = PairedDrop(50, 0, 0).interval_pp()
    assert low == pytest.approx(-high) and 8 < high < 9  # 50 images cannot rule out an 8% discordance
    low, high = PairedDrop(10_000, 0, 0).interval_pp()
    assert 0 < high < 0.05 and low == pytest.approx(-high)


def test_the_interval_holds_the_observed_drop_and_covers_the_true_one():
    rng = np.random.default_rng(0)
    cells = np.array([0.06, 0.02, 0.92])  # lost, gained, concordant: a true drop of 4 pp
    covered = []
    for lost, gained, _ in rng.multinomial(50, cells, size=300):
        paired = PairedDrop(50, int(lost), int(gained))
        low, high = paired.interval_pp()
        assert low - EPS <= paired.drop_pp <= high + EPS
        covered.append(low <= 4.0 <= high)
    assert np.mean(covered) >= 0.95


def test_paired_counts_and_mismatched_predictions():
    labels = np.array([0, 1, 2, 3, 4])
    paired = PairedDrop.of(np.array([0, 9, 9, 3, 4]), np.array([0, 1, 9, 9, 4]), labels)
    assert (paired.n, paired.lost, paired.gained) == (5, 1, 1) and paired.drop_pp == 0
    with pytest.raises(EdgeMnistError, match="same images: 4 predictions, 5 reference predictions, 5 labels"):
        PairedDrop.of(labels[:4], labels, labels)


def synthetic(seed: int, n: int, lost: float, gained: float) -> PairedDrop:
    """Paired predictions of a reference and a model on n images: each image lost (the reference right, the
    model wrong) with probability `lost`, gained with `gained`, otherwise both right or both wrong."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    cell = rng.choice(4, n, p=[lost, gained, 0.8 - lost, 0.2 - gained])  # lost, gained, both right, both wrong
    reference = np.where((cell == 1) | (cell == 3), (labels + 1) % 10, labels)
    model = np.where((cell == 0) | (cell == 3), (labels + 2) % 10, labels)
    return PairedDrop.of(model, reference, labels)


def verdicts(pairs: list[PairedDrop]) -> tuple[list[bool], list[bool]]:
    """(passed under drop_rule, passed under the point rule) of each paired drop at TOLERANCE."""
    return ([drop_rule(p.drop_pp, TOLERANCE, p)[0] for p in pairs],
            [drop_rule(p.drop_pp, TOLERANCE, None)[0] for p in pairs])


def test_on_50_images_noise_never_fails_where_the_point_rule_is_flaky():
    pairs = [synthetic(seed, 50, 0.02, 0.02) for seed in SEEDS]  # no true drop; about one image flips
    new, point = verdicts(pairs)
    assert all(new)
    assert point.count(False) >= 3  # the point rule fails an unchanged model on some seeds
    assert not any(drop_rule(p.drop_pp, TOLERANCE, p)[1]["resolved"] for p in pairs)


def test_on_50_images_a_real_regression_fails_on_every_seed():
    pairs = [synthetic(seed, 50, 0.25, 0.01) for seed in SEEDS]  # a true drop of 24 pp
    new, _ = verdicts(pairs)
    assert not any(new)


def test_on_10000_images_the_verdict_is_the_point_rule():
    rng = np.random.default_rng(1)
    pairs = [synthetic(seed, 10_000, 0.005 + rng.uniform(0, 0.01), 0.005) for seed in SEEDS]  # drops 0 to 1 pp
    new, point = verdicts(pairs)
    assert new == point and 3 <= point.count(False) <= 17  # both outcomes occur
    assert all(drop_rule(p.drop_pp, TOLERANCE, p)[1]["resolved"] for p in pairs)
    assert not drop_rule(0.6, TOLERANCE, PairedDrop(10_000, 80, 20))[0]


def test_only_an_unresolved_drop_beyond_the_tolerance_needs_to_be_real():
    noisy = PairedDrop(10_000, 530, 470)  # 10% of the images disagree: 10,000 images cannot resolve 0.5 pp
    passed, figures = drop_rule(noisy.drop_pp, TOLERANCE, noisy)
    assert passed and not figures["resolved"] and figures["interval"][0] < 0
    real = PairedDrop(50, 30, 1)
    passed, figures = drop_rule(real.drop_pp, TOLERANCE, real)
    assert not passed and not figures["resolved"] and figures["interval"][0] > TOLERANCE


def test_strict_drop_keeps_the_point_rule_on_a_set_too_small_to_resolve_the_tolerance():
    excused = accuracy_drop("m", 0.78, 0.80, TOLERANCE, PairedDrop(50, 1, 0))
    strict = accuracy_drop("m", 0.78, 0.80, TOLERANCE, PairedDrop(50, 1, 0), strict=True)
    assert excused.passed and not strict.passed and strict.context["interval"] == excused.context["interval"]
    assert accuracy_drop("m", 0.80, 0.80, TOLERANCE, PairedDrop(50, 1, 1), strict=True).passed
    assert Criteria(strict_drop=True).validate().strict_drop is True


def test_results_carry_the_images_and_interval_only_when_paired():
    paired = PairedDrop(50, 1, 0)
    result = accuracy_drop("m", 0.78, 0.80, TOLERANCE, paired)
    assert result.passed and result.context["images"] == 50 and result.context["resolved"] is False
    assert result.context["interval"] == pytest.approx(list(paired.interval_pp()))
    assert not baseline_drop("m", 0.78, 0.80, TOLERANCE).passed  # unpaired: the point rule, as before
    assert "interval" not in accuracy_drop("m", 0.78, 0.80, TOLERANCE).context


@pytest.fixture
def data(fixture_data_dir):
    """The committed real Fashion-MNIST subset the tiny export was made with (500 test images)."""
    return load_dataset("fashion-mnist", fixture_data_dir)


def drops_on_50(verdict, labels: np.ndarray, artifact: str) -> list:
    """accuracy_drop of `artifact` vs the verdict's reference on 50 of its test images, one draw per seed."""
    ours, theirs = verdict.predictions[artifact], verdict.predictions[verdict.reference]
    results = []
    for seed in SEEDS:
        images = np.random.default_rng(seed).choice(len(labels), 50, replace=False)
        o, t, y = ours[images], theirs[images], labels[images]
        results.append(accuracy_drop(artifact, (o == y).mean(), (t == y).mean(), TOLERANCE, PairedDrop.of(o, t, y)))
    return results


def test_real_models_on_50_images_unchanged_passes_and_damaged_fails(device_export, data):
    labels = data.y_test.astype(np.int64)
    fresh = evaluate(device_export, data, Criteria(), **SKIP)
    drop = next(r for r in fresh.results if r.artifact == "model_int8.tflite" and r.criterion == "accuracy drop "
                "vs float (pp)")
    assert drop.context["images"] == 500 and drop.context["interval"][0] <= drop.value <= drop.context["interval"][1]
    unchanged = drops_on_50(fresh, labels, "model_int8.tflite")
    assert all(r.passed for r in unchanged) and not any(r.context["resolved"] for r in unchanged)
    assert sum(r.value > TOLERANCE for r in unchanged) >= 2  # where the point rule failed it: one image flipped

    zero_largest_tflite_buffer(device_export / "model_int8.tflite")
    rehash(device_export, "model_int8.tflite")
    damaged = evaluate(device_export, data, Criteria(), **SKIP)
    assert damaged.accuracies[damaged.reference] - damaged.accuracies["model_int8.tflite"] > 0.2
    regressed = drops_on_50(damaged, labels, "model_int8.tflite")
    assert sum(not r.passed for r in regressed) >= 19 and min(r.value for r in regressed) > 5 * TOLERANCE
