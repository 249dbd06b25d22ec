"""benchmarks/spread.py: the median, lowest and highest run of each headline ratio over suite runs."""
from __future__ import annotations

import json

import pytest

from benchmarks.spread import collect, table

pytestmark = pytest.mark.device


def test_the_spread_is_taken_per_ratio_over_the_runs_given(tmp_path):
    paths = []
    for i, ratio in enumerate((1.30, 1.10, 1.20)):
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps({"date": "2026-12-04", "time": f"16:0{i}", "paired": {
            "ratios": {"onnx_int8_over_tflite_int8": ratio}, "p50_us": {"tflite_int8": 50.0 + i}}}))
        paths.append(path)
    ratios, p50s, stamps = collect(paths)
    assert ratios == {"onnx_int8_over_tflite_int8": [1.30, 1.10, 1.20]} and stamps[2] == "2026-12-04 16:02"
    assert table(ratios, "ratio", 2).splitlines()[2] == "| onnx int8 over tflite int8 | 1.20 | 1.10 | 1.30 | 3 |"
    assert table(p50s, "p50", 1).splitlines()[2] == "| tflite int8 | 51.0 | 50.0 | 52.0 | 3 |"
