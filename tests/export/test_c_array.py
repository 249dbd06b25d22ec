"""The C++ source and header for TensorFlow Lite Micro: compiled by the system C++ compiler, read back
byte for byte, and re-checked by the gate."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from edge_mnist.config import GateConfig
from edge_mnist.export.c_array import activation_peak, c_string, read_array, read_labels, verify_header, verify_source
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import Manifest
from edge_mnist.runtime.tflite import TFLiteRunner

pytestmark = pytest.mark.device

MAIN = """
#include <cstdint>
#include <cstdio>
#include "model_int8.h"
#include "model_qat_int8.h"

namespace ptq = edge_mnist::model_int8;
namespace qat = edge_mnist::model_qat_int8;

int main() {
  if (reinterpret_cast<std::uintptr_t>(ptq::kModel) % 16 != 0 ||
      reinterpret_cast<std::uintptr_t>(qat::kModel) % 16 != 0) return 3;
  std::fwrite(ptq::kModel, 1, ptq::kModelLength, stdout);
  std::fprintf(stderr, "%.9g %d %.9g %d %d %zu %zu\\n", ptq::kInputScale, ptq::kInputZeroPoint, ptq::kOutputScale,
               ptq::kOutputZeroPoint, ptq::kNumClasses, ptq::kTensorArenaSize, qat::kModelLength);
  for (int i = 0; i < ptq::kNumClasses; ++i) std::fprintf(stderr, "%s\\n", ptq::kLabels[i]);
  return 0;
}
"""


def test_the_cxx_files_compile_and_hold_the_tflite_bytes_aligned(device_export, tmp_path):
    """g++ -std=c++11 -Wall -Werror builds both models into one program; it prints the PTQ array, which
    must be the .tflite byte for byte at a 16-byte aligned address, and the header's constants."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler (apt-get install g++)")
    (tmp_path / "main.cc").write_text(MAIN)
    sources = [tmp_path / "main.cc", device_export / "model_int8.cc", device_export / "model_qat_int8.cc"]
    build = subprocess.run([compiler, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(device_export),
                            *map(str, sources), "-o", str(tmp_path / "probe")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    proc = subprocess.run([str(tmp_path / "probe")], capture_output=True)
    assert proc.returncode == 0, "the array is not 16-byte aligned"
    assert proc.stdout == (device_export / "model_int8.tflite").read_bytes()
    numbers, *labels = proc.stderr.decode().splitlines()
    scale, zero, out_scale, out_zero, classes, arena, qat_length = numbers.split()
    manifest = Manifest.load(device_export)
    spec = manifest.artifacts["tflite_int8"].input
    assert float(scale) == pytest.approx(spec.scale, rel=1e-7) and int(zero) == spec.zero_point
    runner = TFLiteRunner(device_export / "model_int8.tflite")
    assert float(out_scale) == pytest.approx(runner.output_scale, rel=1e-7) and int(out_zero) == runner.output_zero_point
    assert int(classes) == 10 and labels == list(manifest.task.class_names)
    assert int(qat_length) == (device_export / "model_qat_int8.tflite").stat().st_size
    measured = int(manifest.artifacts["c_int8_h"].details["tflm_arena_bytes"])
    assert measured <= int(arena) < measured + 1024


def test_manifest_records_arena_and_activation_peak(device_export):
    """The header's details carry the measured arena and the activation peak, which the arena must hold."""
    details = Manifest.load(device_export).artifacts["c_int8_h"].details
    assert int(details["peak_activation_bytes"]) < int(details["tflm_arena_bytes"])


def test_activation_peak_of_the_fixture_cnn_by_hand(device_export):
    """Conv4 3x3 -> MaxPool -> Flatten -> Dense10: the largest live set is the int8 input (784 bytes)
    with the conv output (26*26*4) while the conv runs."""
    model = (device_export / "model_int8.tflite").read_bytes()
    assert activation_peak(model, device_export / "model_int8.tflite") == 28 * 28 + 26 * 26 * 4


@pytest.mark.parametrize("text", ["T-shirt/top", 'quote " and \\ backslash', "Ünïcode ??= trigraph"])
def test_labels_survive_the_cxx_string_literal(text):
    literal = c_string(text)
    assert all(32 <= ord(c) < 127 for c in literal)
    assert read_labels(f"const char* const kLabels[kNumClasses] = {{\n  {literal}\n}};") == [text]


def _runner_and_bytes(folder):
    path = folder / "model_int8.tflite"
    return TFLiteRunner(path), path.read_bytes()


def test_verifiers_accept_what_export_wrote(device_export):
    runner, tflite = _runner_and_bytes(device_export)
    task = Manifest.load(device_export).task
    assert verify_source(device_export / "model_int8.cc", tflite, task, runner) == []
    assert verify_header(device_export / "model_int8.h", tflite, task, runner) == []
    assert read_array((device_export / "model_int8.cc").read_text(), device_export / "model_int8.cc") == tflite


def _tamper(folder, file, old: str, new: str) -> None:
    """Edit a generated file and re-hash it in the manifest, as a hand edit checked in with the folder would be."""
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            entry["size_bytes"] = path.stat().st_size
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("file, old, new, problem", [
    ("model_int8.cc", "0x54, 0x46, 0x4c, 0x33", "0x54, 0x46, 0x4c, 0x34",
     "kModel is not the bytes"),
    ("model_int8.cc", '"Trouser"', '"Trousers"', "kLabels differ"),
    ("model_int8.h", "kInputZeroPoint = ", "kInputZeroPoint = 1 + ", "kInputZeroPoint is missing"),
    ("model_int8.h", "kOutputScale = 0.", "kOutputScale = 1.", "kOutputScale is 1."),
])
def test_gate_fails_a_c_file_that_does_not_match_the_gated_tflite(device_export, fixture_data_dir, file, old, new,
                                                                  problem):
    from edge_mnist.check import evaluate
    from edge_mnist.data import load_dataset
    from edge_mnist.gate import Criteria

    _tamper(device_export, file, old, new)
    verdict = evaluate(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                       GateConfig(Criteria(tolerance_pp=None, max_disagreement_pct=None, max_class_drop_pp=None,
                                           parity=None), skip_qat_source=True, skip_runtimes=("tflm",)))
    failed = [r for r in verdict.failed if r.artifact == file]
    assert len(failed) == 1 and problem in failed[0].detail, [(r.artifact, r.detail) for r in verdict.failed]
    assert all(r.passed for r in verdict.results if r.artifact != file)


def test_a_c_file_changed_after_export_is_bad_input(device_export, fixture_data_dir):
    from edge_mnist.check import evaluate
    from edge_mnist.core.errors import EdgeMnistError
    from edge_mnist.data import load_dataset
    from edge_mnist.gate import Criteria

    path = device_export / "model_int8.cc"
    path.write_bytes(path.read_bytes().replace(b"0x4c, 0x33", b"0x4c, 0x34", 1))
    with pytest.raises(EdgeMnistError, match="model_int8.cc: sha256 does not match"):
        evaluate(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                 GateConfig(Criteria(), skip_qat_source=True, skip_runtimes=("tflm",)))
