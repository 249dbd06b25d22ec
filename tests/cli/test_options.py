"""cli/options.py: every option of every command reaches a config field of its name (none is dropped on the way),
and the shared options convert their values."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from edge_mnist.cli import cli
from edge_mnist.cli.options import configs
from edge_mnist.config import BenchConfig, DataConfig
from edge_mnist.core.errors import EdgeMnistError

pytestmark = pytest.mark.tf  # train, export and run import TensorFlow before they read data


def test_an_option_no_config_takes_is_refused_as_our_bug():
    with pytest.raises(RuntimeError, match="options no config takes: typo"):
        configs({"runs": 3, "typo": 1}, DataConfig, BenchConfig)
    data, bench = configs({"runs": 3, "dataset": "mnist"}, DataConfig, BenchConfig)
    assert (data.dataset, bench.runs) == ("mnist", 3)


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "./no-such-data"],
    ["export", "--int8", "--method", "both", "--fallback"],
    ["bench"], ["check"], ["report"], ["debug"], ["emulate", "--target", "cortex-m4"],
    ["run", "--model", "no-such-model.keras", "--method", "both", "--fallback"],
])
def test_every_option_of_a_command_is_taken_by_its_configs(tmp_path, argv):
    """Each command builds its configs from all its options before it touches the folder or the data: a missing
    folder, dataset or model is then a one-line library error, never the RuntimeError of a dropped option."""
    result = CliRunner().invoke(cli, [*argv, "--out", str(tmp_path / "missing")])
    assert isinstance(result.exception, EdgeMnistError), result.exception
    assert "options no config takes" not in str(result.exception)


def test_method_takes_the_registry_s_choices():
    result = CliRunner().invoke(cli, ["run", "--method", "int4"])
    assert result.exit_code == 2 and "'int4' is not one of 'ptq', 'qat', 'both'" in result.output
