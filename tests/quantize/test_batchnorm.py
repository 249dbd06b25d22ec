"""quantize/batchnorm.py: the BatchNorm folds are exact and leave the original model untouched."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def model_with_random_batchnorm(gamma_sign: float = 1.0):
    """The reference CNN with random BatchNorm statistics (so the fold has something to do)."""
    from edge_mnist.registry.datasets import DATASETS
    from edge_mnist.registry.models import build

    model = build("reference_cnn", DATASETS["mnist"].task)
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = (rng.normal(size=512).astype(np.float32) for _ in range(4))
    model.get_layer("bn").set_weights([gamma_sign * np.abs(gamma) + 0.01 * gamma_sign, beta, mean, np.abs(var) + 0.1])
    return model


@pytest.mark.parametrize("through_relu", [False, True])
def test_fold_batchnorm_is_exact_and_leaves_original_untouched(through_relu):
    from edge_mnist.quantize.batchnorm import fold_batchnorm

    model = model_with_random_batchnorm()
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batchnorm(model, through_relu=through_relu)
    x = np.random.default_rng(1).random((16, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=2e-6)
    assert not any("BatchNormalization" == type(layer).__name__ for layer in folded.layers)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("gamma_sign, dense10_kernel_kept", [(1.0, True), (-1.0, False)])
def test_fold_through_relu_keeps_dense10_weights_only_when_every_scale_is_positive(gamma_sign, dense10_kernel_kept):
    """A negative scale does not commute with ReLU, so that BatchNorm must fold forward instead."""
    from edge_mnist.quantize.batchnorm import fold_batchnorm

    model = model_with_random_batchnorm(gamma_sign)
    folded = fold_batchnorm(model, through_relu=True)
    same = np.array_equal(folded.layers[-1].get_weights()[0], model.get_layer("probs").get_weights()[0])
    assert same == dense10_kernel_kept
    x = np.random.default_rng(2).random((8, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=2e-6)


def test_trailing_batchnorm_folds_back_only_into_a_linear_layer():
    """After a linear Dense the BatchNorm goes into it; after a ReLU Dense its shift has nowhere to go."""
    from edge_mnist.core.errors import EdgeMnistError
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.batchnorm import fold_batchnorm

    _, keras = import_tf()
    linear = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    linear.layers[-1].set_weights([np.full(3, 2.0), np.ones(3), np.full(3, 0.5), np.full(3, 4.0)])
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    folded = fold_batchnorm(linear)
    assert [type(layer).__name__ for layer in folded.layers] == ["Dense"]
    np.testing.assert_allclose(folded(x).numpy(), linear(x, training=False).numpy(), atol=1e-5)
    relu = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3, activation="relu"),
                             keras.layers.BatchNormalization()], name="tail_bn")
    with pytest.raises(EdgeMnistError, match="tail_bn: a BatchNormalization with no following Dense"):
        fold_batchnorm(relu, through_relu=True)


@pytest.mark.parametrize("arch", ["conv3_bn", "conv5x5_deep", "conv7"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_architecture_folds_exactly(arch, sign):
    """BatchNorm after a ReLU conv, after a MaxPool, before Flatten and before a 'same' conv: the
    folded model computes the same function, with positive and with negative BatchNorm scales."""
    from edge_mnist.quantize.batchnorm import fold_batchnorm
    from edge_mnist.registry.datasets import DATASETS
    from edge_mnist.registry.models import build

    model = build(arch, DATASETS["mnist"].task)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([sign * (np.abs(rng.normal(size=n)) + 0.1), rng.normal(size=n), rng.normal(size=n),
                               np.abs(rng.normal(size=n)) + 0.5])
    folded = fold_batchnorm(model, through_relu=True)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert "BatchNormalization" not in kinds
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(folded(x, training=False).numpy(), expected, atol=2e-5)
