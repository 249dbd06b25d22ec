"""registry/methods.py: the method registry, and that no other module spells a method's name."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import edge_mnist
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry import formats, methods

pytestmark = pytest.mark.device

PACKAGE = Path(edge_mnist.__file__).resolve().parent
HOME = PACKAGE / "registry" / "methods.py"


def literals(name: str, root: Path = PACKAGE) -> list[str]:
    """Every place under `root` but the registry where `name` is written as a string literal ("ptq" or 'ptq')."""
    pattern = re.compile(rf"""(["']){re.escape(name)}\1""")
    return [f"{path.relative_to(root)}:{number}" for path in sorted(root.rglob("*.py")) if path != HOME
            for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]


@pytest.mark.parametrize("name", [m.name for m in methods.QUANTIZED])
def test_no_module_but_the_registry_spells_a_quantized_method(name):
    assert literals(name) == []


def test_the_float_method_is_spelled_by_the_registry_where_methods_are_compared():
    compared = re.compile(r"""method[^\n]*(["'])float\1|(["'])float\2[^\n]*method""")
    found = [f"{p.relative_to(PACKAGE)}:{n}" for p in sorted(PACKAGE.rglob("*.py")) if p != HOME
             for n, line in enumerate(p.read_text().splitlines(), 1) if compared.search(line)]
    assert found == []


def test_the_literal_finder_finds_a_literal(tmp_path):
    (tmp_path / "mod.py").write_text('METHOD = "ptq"\nOTHER = "ptqx"\nTHIRD = f"{m}_ptq"\nLAST = [\'ptq\']\n')
    assert literals("ptq", tmp_path) == ["mod.py:1", "mod.py:4"]


def test_every_quantized_method_has_its_int8_files_and_step():
    for method in methods.QUANTIZED:
        tflite = formats.BY_KEY[method.key("tflite")]
        assert tflite.file == f"{method.stem}.tflite" and tflite.method == method.name
        assert tflite.source == method.source
        assert set(formats.rebuilt(method)) == {"tflite", "onnx"}
        assert method.planner.startswith("edge_mnist.quantize.plan:")


def test_file_names_are_those_of_earlier_exports():
    assert [f.file for f in formats.rebuilt(methods.PTQ).values()] == ["model_int8.tflite", "model_int8.onnx"]
    assert [f.file for f in formats.rebuilt(methods.QAT).values()] == ["model_qat_int8.tflite",
                                                                        "model_qat_int8.onnx"]


def test_method_values_and_choices():
    assert methods.chosen(methods.ALL) == ("ptq", "qat")
    assert methods.chosen("qat") == ("qat",)
    assert methods.CHOICES == ("ptq", "qat", "both")
    assert not methods.FLOAT.quantized and methods.PTQ.quantized
    assert methods.by_source(methods.QAT_KERAS) is methods.QAT


def test_an_unknown_method_is_one_line_naming_the_known_ones():
    with pytest.raises(EdgeMnistError, match="unknown method 'int4'; choose from float, ptq, qat"):
        methods.get("int4")
    with pytest.raises(EdgeMnistError, match="unknown method"):
        formats.for_methods(("int4",))
