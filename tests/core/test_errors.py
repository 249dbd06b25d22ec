"""core/errors.py: the exit code each kind of failure maps to, and an optional dependency that is missing named
with the extra that installs it."""
from __future__ import annotations

import pytest

from edge_mnist.core.errors import EdgeMnistError, GateFailed, MissingDependency, require

pytestmark = pytest.mark.device


def test_bad_input_exits_2_and_a_failed_gate_1_with_its_label():
    assert EdgeMnistError("x").exit_code == 2 and MissingDependency("x").exit_code == 2
    assert GateFailed("drop 3 pp").exit_code == 1 and GateFailed("drop 3 pp").label == "check failed"
    assert GateFailed("no fallback passes", label="fallback failed").label == "fallback failed"
    assert not issubclass(GateFailed, EdgeMnistError)  # a failed gate is a verdict, not bad input


def test_require_imports_a_present_module_and_names_the_extra_of_a_missing_one():
    assert require("json", "runtime").dumps([1]) == "[1]"
    with pytest.raises(MissingDependency) as info:
        require("edge_mnist_no_such_module", "report")
    message = str(info.value)
    assert message.startswith("edge_mnist_no_such_module is not installed (No module named 'edge_mnist_no_such_module')")
    assert message.endswith("install the 'report' extra: pip install 'edge-mnist[report]'") and "\n" not in message
