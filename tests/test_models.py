"""models.py: the reference architecture and the exact BatchNorm fold used for QAT."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def test_reference_cnn_layout_and_parameters():
    from edge_mnist.models import REFERENCE_PARAMS, build

    model = build("reference_cnn")
    assert model.count_params() == REFERENCE_PARAMS == 845_706
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense",
                     "BatchNormalization", "Dropout", "Dense"]


def test_fold_batchnorm_is_exact_and_leaves_original_untouched():
    from edge_mnist.models import build, fold_batchnorm

    model = build()
    bn = model.get_layer("bn")
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = (rng.normal(size=512).astype(np.float32) for _ in range(4))
    bn.set_weights([gamma, beta, mean, np.abs(var) + 0.1])
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batchnorm(model)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=2e-6)
    assert not any("BatchNormalization" == type(layer).__name__ for layer in folded.layers)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_unknown_architecture_is_an_error():
    from edge_mnist.errors import EdgeMnistError
    from edge_mnist.models import build

    with pytest.raises(EdgeMnistError, match="unknown architecture"):
        build("resnet9000")
