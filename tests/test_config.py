"""config.py: every stage's settings as frozen configs, filled from options by field name and validated."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edge_mnist.config import (
    BenchConfig,
    DataConfig,
    EmulateConfig,
    ExportConfig,
    GateConfig,
    RunConfig,
    TrainConfig,
    from_options,
)
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.gate import Criteria

pytestmark = pytest.mark.device


def test_configs_are_frozen():
    for config in (DataConfig(), TrainConfig(), ExportConfig(), BenchConfig(), GateConfig(), EmulateConfig(),
                   RunConfig(), Criteria()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, dataclasses.fields(config)[0].name, None)


def test_one_option_fills_every_config_with_a_field_of_its_name():
    used: set[str] = set()
    config = from_options(RunConfig, {"threads": 2, "seed": 7, "tolerance_pp": 1.5, "epochs": 3,
                                      "dataset": "fashion-mnist"}, used)
    assert (config.bench.threads, config.gate.threads) == (2, 2)
    assert (config.train.seed, config.export.seed) == (7, 7)
    assert config.gate.criteria.tolerance_pp == config.export.criteria.tolerance_pp == 1.5
    assert config.train.epochs == 3 and config.data.dataset == "fashion-mnist"
    assert used == {"threads", "seed", "tolerance_pp", "epochs", "dataset"}


def test_options_not_given_keep_the_defaults():
    assert from_options(RunConfig, {}) == RunConfig()
    assert RunConfig().export.methods == ("ptq",) and RunConfig().bench.runs == 1000


def test_an_option_no_field_takes_is_left_unused():
    used: set[str] = set()
    from_options(BenchConfig, {"runs": 5, "tolerance_pp": 1.0}, used)
    assert used == {"runs"}


@pytest.mark.parametrize("kind, options, message", [
    (ExportConfig, {"methods": ("int4",)}, "unknown method 'int4'"),
    (ExportConfig, {"max_float_layers": 2}, "--max-float-layers goes with --fallback"),
    (ExportConfig, {"methods": ("float",), "fallback": True}, "--fallback goes with --int8"),
    (ExportConfig, {"tolerance_pp": -1.0}, "tolerance_pp must be a number in"),
    (GateConfig, {"parity": 1.5}, "parity must be a number in"),
    (GateConfig, {"skip_runtimes": ("tflite",)}, "--skip-runtime: tflite cannot be left out"),
    (BenchConfig, {"skip_runtimes": ("onnx",)}, "--skip-runtime: onnx cannot be left out"),
    (EmulateConfig, {"parity": float("nan")}, "parity must be a number in"),
    (TrainConfig, {"strategy": "ring"}, "strategy must be one of default, mirrored, multiworker"),
    (RunConfig, {"model": Path("m.keras"), "architecture": "compact"}, "--model imports a trained model"),
])
def test_what_no_stage_can_run_is_refused_in_one_line(kind, options, message):
    with pytest.raises(EdgeMnistError, match=message):
        from_options(kind, options)


def test_an_imported_model_with_default_training_options_is_valid():
    assert from_options(RunConfig, {"model": Path("m.keras"), "epochs": 5}).model == Path("m.keras")


def test_quantized_methods_in_registry_order():
    assert [m.name for m in ExportConfig(methods=("qat", "ptq", "float")).quantized] == ["ptq", "qat"]
    assert ExportConfig(methods=("float",)).quantized == ()
