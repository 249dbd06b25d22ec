"""quantize.mixed: fused TFLite tensor names back to Keras layers, and which operators stay float."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from edge_mnist.quantize.mixed import candidates, denylist, followers, layer_label, op_layers

pytestmark = pytest.mark.device

LAYERS = ["conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "bn", "dropout", "probs"]


def graph():
    """The reference CNN's operators as the TF converter names them (tensor i is operator i-1's output)."""
    names = ["serving_default_image:0",
             "m/m/conv1/Relu;m/m/conv1/BiasAdd;m/m/conv1/Conv2D", "m/m/pool1/MaxPool",
             "m/m/conv2/Relu;m/m/conv2/BiasAdd;m/m/conv2/Conv2D", "m/m/pool2/MaxPool", "m/m/flatten/Reshape",
             "m/m/dense1/MatMul;m/m/dense1/Relu", "m/m/bn/batchnorm/mul_1;m/m/probs/MatMul", "StatefulPartitionedCall:0"]
    kinds = ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED",
             "SOFTMAX"]
    return SimpleNamespace(names=names, ops=[(k, [i], [i + 1], None) for i, k in enumerate(kinds)])


def test_fused_names_map_to_keras_layers_in_model_order():
    assert layer_label("m/m/conv1/Relu;m/m/conv1/BiasAdd", LAYERS) == "conv1"
    assert layer_label("m/m/bn/batchnorm/mul_1;m/m/probs/MatMul", LAYERS) == "bn+probs"
    assert layer_label("m/m/conv10/Relu", LAYERS) == ""  # a prefix is not a match


def test_an_unnamed_operator_belongs_to_the_layer_before_it():
    ops = op_layers(graph(), LAYERS)
    assert [op.layer for op in ops] == ["conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "bn+probs",
                                        "bn+probs"]
    assert candidates(ops) == ["conv1", "conv2", "dense1", "bn+probs"]  # pooling and reshape never on their own


def test_pooling_and_reshape_follow_a_float_layer_and_nothing_else():
    ops = op_layers(graph(), LAYERS)
    assert followers(ops, ("conv1",)) == ["pool1"]
    assert followers(ops, ("conv1", "conv2")) == ["pool1", "pool2", "flatten"]
    assert followers(ops, ("dense1",)) == []
    names = denylist(ops, ("conv2",))
    assert names == [graph().names[3], graph().names[4], graph().names[5]]


def test_a_label_map_names_tfmot_wrappers_by_their_keras_layer():
    names = {"quantize_layer": "quantize_layer", "quant_conv1": "conv1", "conv2": "conv2"}
    assert layer_label("m/m/quant_conv1/Relu;m/m/quant_conv1/BiasAdd", names) == "conv1"
    assert layer_label("m/m/conv2/Relu", names) == "conv2"  # an unannotated layer keeps its own name
    assert layer_label("m/m/conv1/Relu", names) == ""
