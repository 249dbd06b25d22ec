"""info.py: what a folder's records say, a run on a subset of the test set labelled with its image count."""
from __future__ import annotations

import pytest

from edge_mnist.bench import bench
from edge_mnist.config import BenchConfig
from edge_mnist.data import load_dataset
from edge_mnist.folder.opener import read_folder
from edge_mnist.info import gather

pytestmark = pytest.mark.device


def test_recorded_accuracies_of_a_tflm_subset_say_how_many_images(device_export, fixture_data_dir):
    pytest.importorskip("tflite_micro")
    bench(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
          BenchConfig(runs=3, warmup=0, throughput_seconds=0, tflm_images=100), progress=lambda _: None)
    models = {r.model for r in gather(device_export).accuracies}
    assert "model_int8.tflite@tflm (100 img)" in models and "model_int8.tflite" in models


def test_each_c_file_is_named_for_what_it_is(device_export):
    """The TFLM arrays are C++, the interpreter-free files C."""
    kinds = {m.file: m.kind for m in gather(device_export).models}
    assert (kinds["model_int8.cc"], kinds["model_int8.h"]) == ("C++ source", "C++ header")
    assert (kinds["model_int8_micro.c"], kinds["model_qat_int8_micro.h"]) == ("C source", "C header")
