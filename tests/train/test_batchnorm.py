"""train/batchnorm.py: BatchNorm statistics recomputed with the trained weights, exactly the mean of the batch
statistics, and what it does for a short real run (scikit-learn's 8x8 digits)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras():
    from edge_mnist.core.tfenv import import_tf

    return import_tf()[1]


def test_the_statistics_become_the_mean_of_the_batch_statistics(keras):
    from edge_mnist.train.batchnorm import recalibrate

    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(momentum=0.99)])
    rng = np.random.default_rng(0)
    batches = [(rng.normal(loc, 2.0, (32, 3)).astype(np.float32), None) for loc in (1.0, 5.0, -3.0)]
    assert recalibrate(model, keras, batches) == 96
    layer = model.layers[0]
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean([b.mean(0) for b, _ in batches], 0), rtol=1e-5)
    # tf-keras keeps the biased batch variance (divided by the batch size) as its moving statistic
    np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean([b.var(0) for b, _ in batches], 0),
                               rtol=1e-4)
    assert layer.momentum == 0.99


def test_a_model_without_batchnorm_is_untouched(keras):
    from edge_mnist.train.batchnorm import recalibrate

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    weights = [w.copy() for w in model.get_weights()]
    assert recalibrate(model, keras, [(np.ones((4, 3), np.float32), None)]) == 0
    for kept, now in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(kept, now)


def test_a_short_run_on_small_data_scores_what_it_learned_once_recomputed(keras):
    """compact (BatchNorm before each ReLU) trained 5 epochs on 1,500 real digits is 60 steps: its moving
    statistics still hold mostly the initial ones and the weights moved on, so the inference model scores far
    below what it learned until the statistics are recomputed."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from edge_mnist.data import Dataset
    from edge_mnist.registry.datasets import Task
    from edge_mnist.registry.models import build
    from edge_mnist.train import evaluate_keras, fit, make_pipeline
    from edge_mnist.train.batchnorm import recalibrate

    bunch = sklearn_datasets.load_digits()
    x, y = np.round(bunch.images * (255 / 16)).astype(np.uint8), bunch.target.astype(np.uint8)
    task = Task("digits", (8, 8, 1), tuple(str(i) for i in range(10)), fit_box=8)
    digits = Dataset(task, x[:1500], y[:1500], x[1500:], y[1500:], source="sklearn")
    keras.utils.set_random_seed(0)
    model = build("compact", task)
    fit(model, digits, 5, 128, 0, 1e-3, label="test")
    moving = evaluate_keras(model, digits)
    assert recalibrate(model, keras, make_pipeline(digits.x_train, digits.y_train, 128, 0, shuffle=True)) == 1500
    recomputed = evaluate_keras(model, digits)
    assert recomputed >= 0.9 and recomputed - moving >= 0.3, (moving, recomputed)
