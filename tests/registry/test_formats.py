"""formats.py: the registries say what each format can do, so callers never re-derive it."""
from __future__ import annotations

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.formats import (
    BY_KEY,
    FORMATS,
    REFERENCE_ORDER,
    RUNS,
    chosen_runs,
    for_methods,
    left_out,
    parity_groups,
    runtime_for,
)
from edge_mnist.registry.methods import FLOAT_KERAS, QAT_KERAS

pytestmark = pytest.mark.device


def test_every_format_is_built_from_something_known_and_named_by_its_suffix():
    for fmt in FORMATS:
        assert fmt.built_from in (None, FLOAT_KERAS, QAT_KERAS) or fmt.built_from in BY_KEY, fmt.key
        if fmt.runnable:
            assert fmt.suffix in runtime_for(fmt.file).suffixes
        assert (fmt.exporter == "") == (fmt.built_from is None)


def test_export_order_puts_each_format_after_what_it_is_built_from():
    keys = [f.key for f in for_methods(("qat",))]
    assert keys.index("tflite_qat_int8") < keys.index("onnx_qat_int8") < keys.index("ort_qat_int8") < keys.index(
        "ort_qat_int8_ops")
    assert {"tflite_float32", "onnx_float32"} <= set(keys) and "tflite_int8" not in keys
    assert [f.key for f in for_methods(("ptq", "qat"))][-1] == "ort_qat_int8_ops"
    assert keys.index("tflite_qat_int8") < min(keys.index("c_qat_int8"), keys.index("c_qat_int8_h"))
    with pytest.raises(EdgeMnistError, match="unknown method 'fp16'"):
        for_methods(("fp16",))


def test_source_model_follows_the_built_from_chain():
    assert BY_KEY["onnx_qat_int8"].source == QAT_KERAS  # built from the QAT .tflite, which comes from QAT Keras
    assert BY_KEY["onnx_int8"].source == FLOAT_KERAS
    assert BY_KEY["keras_float32"].source == FLOAT_KERAS


def test_parity_groups_pair_only_present_members():
    groups = parity_groups(["tflite_int8", "onnx_int8", "tflite_qat_int8"])
    assert {name: [f.key for f in members] for name, members in groups.items()} == {
        "ptq-int8": ["tflite_int8", "onnx_int8"]}


def test_parity_groups_put_tflm_after_the_files_own_runtimes():
    groups = parity_groups(["tflite_int8@tflm", "onnx_int8", "tflite_int8"])
    assert [r.key for r in groups["ptq-int8"]] == ["tflite_int8", "onnx_int8", "tflite_int8@tflm"]
    assert [r.label for r in groups["ptq-int8"]][-1] == "model_int8.tflite@tflm"


def test_every_int8_tflite_also_runs_under_tflm_and_c_files_not_at_all():
    for method in ("", "_qat"):
        tflite = BY_KEY[f"tflite{method}_int8"]
        assert [r.runtime for r in tflite.runs] == ["tflite", "tflm", "openvino"]
        assert [r.runtime for r in BY_KEY[f"onnx{method}_int8"].runs] == ["onnx", "openvino"]
        assert [r.runtime for r in BY_KEY[f"ort{method}_int8"].runs] == ["onnx"]
        for key in (f"c{method}_int8", f"c{method}_int8_h"):
            c_file = BY_KEY[key]
            assert not c_file.runnable and c_file.runs == () and c_file.built_from == tflite.key and c_file.verifier
    assert all(len(f.runs) == 1 for f in FORMATS if f.runnable and f.suffix not in (".tflite", ".onnx")
               or not f.is_int8 and f.runnable)
    assert set(RUNS) >= {"tflite_int8@tflm", "tflite_qat_int8@tflm", "onnx_int8@openvino", "tflite_int8@openvino"}
    assert [r.runtime for r in chosen_runs(BY_KEY["tflite_int8"], ("tflm", "openvino"))] == ["tflite"]
    with pytest.raises(EdgeMnistError, match="onnx cannot be left out"):
        chosen_runs(BY_KEY["tflite_int8"], ("onnx",))


def test_reference_order_prefers_keras_then_onnx():
    assert [f.key for f in REFERENCE_ORDER] == ["keras_float32", "onnx_float32", "tflite_float32"]
    assert all(not f.is_int8 for f in REFERENCE_ORDER)


def test_unknown_suffix_is_a_one_line_error():
    with pytest.raises(EdgeMnistError, match="m.pt: unknown model format '.pt'"):
        runtime_for("m.pt")


def test_on_32_bit_arm_the_onnx_files_are_left_out_saying_why(monkeypatch):
    import platform

    int8 = [f for f in FORMATS if f.is_int8 and f.runnable]
    monkeypatch.setattr(platform, "machine", lambda: "armv7l")
    assert all(run.runtime != "onnx" for fmt in int8 for run in chosen_runs(fmt))
    out = {run.label: why for run, why in left_out(int8, ("tflm",))}
    assert out["model_int8.onnx"] == "not runnable on armv7l (PyPI has no onnx runtime for it)"
    assert out["model_int8.tflite@tflm"] == "--skip-runtime tflm"
    assert "model_int8.tflite" not in out
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert "onnx" in {run.runtime for run in chosen_runs(BY_KEY["onnx_int8"])} and left_out(int8, ()) == []
