"""The interpreter-free C: compiled by the host's gcc (C99, -Wall -Wextra -Werror -pedantic) with the test
program the Cortex-M boards run, and compared with TensorFlow Lite Micro byte for byte; the constants
TFLM computes at prepare time; the arena plan; the gate's re-check; labels that need escaping."""
from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.config import GateConfig
from edge_mnist.data import load_dataset, to_float
from edge_mnist.emulate.cortex_m import glue
from edge_mnist.export import micro_c
from edge_mnist.export.micro_c import UnsupportedOperator, generate, plan_arena, quantize_multiplier
from edge_mnist.folder.opener import read_folder
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.datasets import DATASETS, Task
from edge_mnist.runtime.tflite_graph import read_tflite
from edge_mnist.runtime.tflm import TFLMRunner

FIRMWARE = ("harness.c", "host.c", "platform.h")


def host_program(folder: Path, prefix: str, source: str, header: str) -> Path:
    """Build the test program around generated C with the host's gcc, warnings as errors."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FIRMWARE:
        (folder / name).write_text(resources.files("edge_mnist.emulate").joinpath("firmware", name).read_text())
    (folder / f"{prefix}_micro.c").write_text(source)
    (folder / f"{prefix}_micro.h").write_text(header)
    (folder / "glue.h").write_text(glue(prefix))
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(folder),
                    f"{prefix}_micro.c", "harness.c", "host.c", "-o", "program"], cwd=folder, check=True)
    return folder / "program"


def c_outputs(tflite: Path, task: Task, inputs: np.ndarray, work: Path) -> np.ndarray:
    """The generated C's int8 outputs for int8 `inputs`, run on the host."""
    micro = generate(tflite.read_bytes(), tflite, "model_int8", task)
    program = host_program(work, "model_int8", micro.source, micro.header)
    (work / "input.bin").write_bytes(np.ascontiguousarray(inputs, np.int8).tobytes())
    subprocess.run([str(program)], cwd=work, check=True)
    return np.fromfile(work / "output.bin", np.int8).reshape(len(inputs), -1)


def assert_same_as_tflm(tflite: Path, task: Task, x: np.ndarray, work: Path) -> None:
    """The C's outputs are TFLM's, byte for byte, on every image."""
    tflm = TFLMRunner(tflite)
    inputs = tflm.prepare(x)
    expected = tflm.run(inputs)
    got = c_outputs(tflite, task, inputs, work)
    differ = np.flatnonzero((got != expected).any(axis=1))
    assert differ.size == 0, f"{tflite.name}: {differ.size} of {len(x)} images differ from TFLM, first {differ[:5]}"


@pytest.mark.parametrize("stem", ["model_int8", "model_qat_int8"])
def test_the_c_of_the_fixture_models_equals_tflm_byte_for_byte(device_export, fixture_data_dir, tmp_path, stem):
    """PTQ and QAT files of the committed export, on all 500 fixture test images."""
    data = load_dataset("fashion-mnist", fixture_data_dir)
    assert_same_as_tflm(device_export / f"{stem}.tflite", data.task, to_float(data.x_test), tmp_path)


def test_the_exported_c_is_what_the_generator_makes_and_both_methods_link_together(device_export, tmp_path):
    """export wrote both methods' C; one program links them (static kernels, prefixed symbols) and reads the
    header's macros, which are the .tflite's quantization."""
    manifest = Manifest.load(device_export)
    for stem in ("model_int8", "model_qat_int8"):
        tflite = device_export / f"{stem}.tflite"
        micro = generate(tflite.read_bytes(), tflite, stem, manifest.task)
        assert (device_export / f"{stem}_micro.c").read_text() == micro.source
        assert (device_export / f"{stem}_micro.h").read_text() == micro.header
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "model_int8_micro.h"\n#include "model_qat_int8_micro.h"\n'
        "int main(void) {\n  static int8_t in[MODEL_INT8_INPUT_BYTES], out[MODEL_QAT_INT8_OUTPUT_BYTES];\n"
        "  if (model_int8_invoke(in, out) || model_qat_int8_invoke(in, out)) return 1;\n"
        '  printf("%d %d %.9g %d %s\\n", MODEL_INT8_INPUT_BYTES, MODEL_INT8_NUM_CLASSES, MODEL_INT8_INPUT_SCALE,\n'
        "         MODEL_INT8_INPUT_ZERO_POINT, model_qat_int8_labels[9]);\n  return 0;\n}\n")
    sources = [str(device_export / f"{s}_micro.c") for s in ("model_int8", "model_qat_int8")]
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(device_export), "main.c", *sources,
                    "-o", "both"], cwd=tmp_path, check=True)
    printed = subprocess.run([str(tmp_path / "both")], capture_output=True, text=True, check=True).stdout.split()
    scale = manifest.artifacts["tflite_int8"].input.scale
    assert printed[:2] == ["784", "10"] and abs(float(printed[2]) - scale) < 1e-9 and printed[4] == "Ankle"


def test_quantize_multiplier_follows_tflite():
    """TFLite's QuantizeMultiplier: Q31 significand and exponent, round half away, 2^31 carried, tiny to zero."""
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)
    assert quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)  # rounds up to 2^31, carried into the exponent
    m, s = quantize_multiplier(0.003921568859368563)
    assert abs(m * 2.0 ** (s - 31) - 0.003921568859368563) < 1e-12


def test_no_two_tensors_alive_together_share_bytes(device_export):
    """The arena plan on a real graph: tensors whose lifetimes overlap never overlap in memory."""
    tflite = (device_export / "model_int8.tflite").read_bytes()
    graph = read_tflite(tflite, Path("model_int8.tflite"))
    root, offsets, arena = plan_arena(graph)
    life = {}
    for i, (_, ins, outs, _) in enumerate(graph.ops):
        for t in [*ins, *outs]:
            if t in root and root[t] in offsets:
                first, last = life.get(root[t], (i, i))
                life[root[t]] = (min(first, i), max(last, i))
    size = {r: int(np.prod(graph.shapes[r])) for r in offsets}
    for a in offsets:
        for b in offsets:
            together = a != b and not (life[a][1] < life[b][0] or life[b][1] < life[a][0])
            apart = offsets[a] + size[a] <= offsets[b] or offsets[b] + size[b] <= offsets[a]
            assert not together or apart, (a, b)
    assert max(offsets[r] + size[r] for r in offsets) <= arena <= sum(size.values()) + 4 * len(size)


def test_a_missing_operator_is_named(device_export, monkeypatch):
    """An operator without C raises one line naming it (export then writes no C for that model)."""
    monkeypatch.delitem(micro_c.EMITTERS, "SOFTMAX")
    tflite = device_export / "model_int8.tflite"
    with pytest.raises(UnsupportedOperator, match=r"model_int8\.tflite: operator SOFTMAX has no interpreter-free C"):
        generate(tflite.read_bytes(), tflite, "model_int8", Manifest.load(device_export).task)


def test_awkward_labels_reach_the_program_exactly(device_export, tmp_path):
    """Quotes, backslashes, apostrophes, accents, a non-Latin script and '??' (a trigraph) survive the C."""
    labels = ['men\'s "shoes"', "café", "靴", "back\\slash", "what??!", "T-shirt/top", "a", "b", "c", "d"]
    task = Task("fashion-mnist", (28, 28, 1), tuple(labels), fit_box=28)
    tflite = device_export / "model_int8.tflite"
    micro = generate(tflite.read_bytes(), tflite, "model_int8", task)
    (tmp_path / "main.c").write_text('#include <stdio.h>\n#include "model_int8_micro.h"\nint main(void) {\n  int i;\n'
                                     '  for (i = 0; i < MODEL_INT8_NUM_CLASSES; ++i) printf("%s\\n", model_int8_labels[i]);\n'
                                     "  return 0;\n}\n")
    (tmp_path / "model_int8_micro.c").write_text(micro.source)
    (tmp_path / "model_int8_micro.h").write_text(micro.header)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "main.c", "model_int8_micro.c",
                    "-o", "labels"], cwd=tmp_path, check=True)
    printed = subprocess.run([str(tmp_path / "labels")], capture_output=True, check=True).stdout.decode()
    assert printed.splitlines() == labels and micro.source.isascii()


@pytest.mark.parametrize("part, old, new", [
    ("model_int8_micro.c", "] = {\n  ", "] = {\n  1 + "),  # the first constant (a requantization multiplier)
    ("model_int8_micro.c", '"Trouser"', '"Trousers"'),
    ("model_int8_micro.h", "_INPUT_ZERO_POINT (-128)", "_INPUT_ZERO_POINT (-127)"),
])
def test_the_gate_fails_edited_c(device_export, fixture_data_dir, part, old, new):
    """A constant, a label or a zero point edited, the manifest re-hashed to match (a hand edit checked in with
    the folder): the gate regenerates the C from the .tflite it ran and fails that file alone."""
    from edge_mnist.check import evaluate
    from edge_mnist.core.files import sha256_file
    from edge_mnist.gate import Criteria

    path = device_export / part
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    manifest = json.loads((device_export / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == part)
    entry["sha256"], entry["size_bytes"] = sha256_file(path), path.stat().st_size
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    verdict = evaluate(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                       GateConfig(Criteria(tolerance_pp=None, max_disagreement_pct=None, max_class_drop_pp=None,
                                           parity=None), skip_qat_source=True, skip_runtimes=("tflm",)))
    failed = [r for r in verdict.failed]
    assert [r.artifact for r in failed] == [part] and "not the C generated from the checked .tflite" in failed[0].detail


@pytest.mark.tf
def test_every_operator_of_the_registry_and_of_user_models_equals_tflm(fixture_data_dir, tmp_path):
    """Each registry architecture the micro C must cover (BatchNorm folded or kept as MUL and ADD) and a user
    model with every other operator --model accepts (depthwise and separable convolutions, average pooling,
    ADD of two branches, fused and standalone ReLU and ReLU6, global average pooling as MEAN), BatchNorm
    statistics randomised as after
    training, converted by the TFLite converter and compared with TFLM on 40 real images."""
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.quantize.ptq import int8_converter
    from edge_mnist.registry.models import build

    _, keras = import_tf()
    keras.utils.set_random_seed(0)
    data = load_dataset("fashion-mnist", fixture_data_dir)
    task, calib, x = data.task, to_float(data.x_train[:64]), to_float(data.x_test[:40])
    layers = keras.layers
    image = keras.Input((28, 28, 1))
    y = layers.Conv2D(8, 3, padding="same", activation="relu6")(image)
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(y)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU(6.0)(y)
    y = layers.Add()([y, layers.Conv2D(16, 1)(y)])
    y = layers.AveragePooling2D()(y)
    y = layers.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu")(y)
    y = layers.MaxPooling2D(3, strides=2, padding="same")(y)
    pooled = layers.GlobalAveragePooling2D()(y)  # MEAN, then ReLU and ReLU6 the converter cannot fuse into it
    both = layers.Add()([layers.ReLU()(pooled), layers.ReLU(6.0)(pooled)])
    user = keras.Model(image, layers.Dense(10, activation="softmax")(both))
    models = {name: build(name, task) for name in ("reference_cnn", "conv3_bn", "mlp", "compact")} | {"user": user}
    seen = set()
    rng = np.random.default_rng(0)
    for name, model in models.items():
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                n = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.3, n),
                                   rng.uniform(0.2, 3, n)])
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(int8_converter(model, calib).convert())
        seen |= {op for op, *_ in read_tflite(path.read_bytes(), path).ops}
        assert_same_as_tflm(path, task, x, tmp_path / name)
    assert seen == set(micro_c.EMITTERS)


def test_registry_task_labels_are_in_the_header_constants(device_export):
    """The header's task constants come from the task (shape, classes)."""
    task = DATASETS["fashion-mnist"].task
    tflite = device_export / "model_int8.tflite"
    header = generate(tflite.read_bytes(), tflite, "model_int8", task).header
    for macro, value in (("INPUT_HEIGHT", 28), ("INPUT_WIDTH", 28), ("INPUT_CHANNELS", 1), ("NUM_CLASSES", 10),
                         ("INPUT_BYTES", 784), ("OUTPUT_BYTES", 10)):
        assert f"#define MODEL_INT8_{macro} {value}\n" in header


def test_a_reshape_into_the_output_writes_the_caller_s_buffer_and_others_share_bytes():
    """Planner: RESHAPE shares its input's storage, except the one producing the graph's output (copied there)."""
    from edge_mnist.runtime.tflite_graph import TfliteGraph

    shapes = [[1, 4, 4, 2], [1, 32], [1, 10], [1, 10], [1, 2, 5]]
    ops = [("RESHAPE", [0, -1], [1], None), ("FULLY_CONNECTED", [1, -1, -1], [2], None),
           ("RESHAPE", [2, -1], [3], None), ("RESHAPE", [3, -1], [4], None)]
    graph = TfliteGraph(["x", "flat", "fc", "r", "out"], shapes, [9] * 5, [None] * 5, {}, ops, [0], [4])
    root, offsets, arena = plan_arena(graph)
    assert root[1] == 0  # flattening the input reads the caller's input in place
    assert root[3] == 2 and 2 in offsets and arena == 12  # an inner reshape aliases the dense output (10 -> 12 B)
    assert root[4] == 4 and 4 not in offsets  # the last reshape is the output: its own (caller's) buffer
