"""The tflm runtime: TensorFlow Lite Micro's Python interpreter on the int8 .tflite files, in bench and the gate."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from edge_mnist.config import BenchConfig, GateConfig
from edge_mnist.data import load_dataset
from edge_mnist.folder.opener import read_folder
from edge_mnist.runtime import open_model

pytest.importorskip("tflite_micro", reason="pip install tflite-micro (x86-64 Linux)")


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_qat_int8.tflite"])
def test_tflm_agrees_with_litert(device_export, test_images, name):
    """Same bytes, two interpreters (TFLM's reference kernels, LiteRT's XNNPACK): at least 99% of the
    int8 scores are identical (rounding inside a kernel may move a few by some steps) and top-1 agrees
    on at least 99.8% of the 500 fixture images (measured: 99.6% and 99.8% of scores, 100% of top-1)."""
    images, _ = test_images
    micro = open_model(device_export / name, runtime="tflm")
    lite = open_model(device_export / name, runtime="tflite")
    a, b = micro.predict(images), lite.predict(images)
    assert (np.abs(a - b) < micro.output_scale / 2).mean() >= 0.99
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.998


def test_smallest_arena_is_the_smallest(device_export):
    from edge_mnist.runtime.tflm import _interpreter, smallest_arena

    model = (device_export / "model_int8.tflite").read_bytes()
    arena = smallest_arena(model, device_export / "model_int8.tflite")
    assert _interpreter(model, arena) is not None
    assert _interpreter(model, arena - 64) is None


def test_a_model_tflm_cannot_run_is_one_line(tmp_path, device_export):
    from edge_mnist.core.errors import EdgeMnistError

    float_model = device_export / "model_float32.tflite"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(float_model.read_bytes()[:4000])
    with pytest.raises(EdgeMnistError, match="bad.tflite"):
        open_model(bad, runtime="tflm")


def test_bench_measures_tflm_accuracy_without_timing(device_export, fixture_data_dir):
    from edge_mnist.bench import bench
    from edge_mnist.folder.records import BenchResult

    bench(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
          BenchConfig(runs=10, warmup=1, throughput_seconds=0), progress=lambda _: None)
    result = BenchResult.load(device_export / "bench.json", 10)
    tflm, lite = result.row("tflite_int8@tflm"), result.row("tflite_int8")
    assert tflm.latency_us is None and tflm.throughput_ips is None and lite.latency_us["p50"] > 0
    assert tflm.file == lite.file and tflm.sha256 == lite.sha256
    assert (tflm.predictions == lite.predictions).mean() >= 0.99
    raw = json.loads((device_export / "bench.json").read_text())
    assert {r["runtime"] for r in raw["rows"] if r["key"].endswith("@tflm")} == {"tflm"}


def test_gate_checks_tflm_parity_and_skip_runtime_leaves_it_out(device_export, fixture_data_dir):
    from edge_mnist.check import evaluate
    from edge_mnist.gate import Criteria

    data = load_dataset("fashion-mnist", fixture_data_dir)
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(), skip_qat_source=True))
    pairs = {r.artifact: r for r in verdict.results if r.criterion.startswith("parity")}
    assert "model_int8.tflite ~ model_int8.tflite@tflm" in pairs
    assert "model_qat_int8.tflite ~ model_qat_int8.tflite@tflm" in pairs
    assert pairs["model_int8.tflite ~ model_int8.tflite@tflm"].value >= 0.99
    skipped = evaluate(read_folder(device_export, data),
                       GateConfig(Criteria(), skip_qat_source=True, skip_runtimes=("tflm",)))
    assert not any("@tflm" in r.artifact for r in skipped.results)
    assert "model_int8.tflite@tflm: --skip-runtime tflm" in skipped.skipped


def test_gate_fails_when_tflm_disagrees(device_export, fixture_data_dir, monkeypatch):
    """A TFLM run whose answers differ from LiteRT's fails parity (the runner is made to shift every
    top-1 by one class, as a miscompiled kernel would)."""
    from edge_mnist.check import evaluate
    from edge_mnist.gate import Criteria
    from edge_mnist.runtime.tflm import TFLMRunner

    honest = TFLMRunner.run
    monkeypatch.setattr(TFLMRunner, "run", lambda self, x: np.roll(honest(self, x), 1, axis=1))
    verdict = evaluate(read_folder(device_export, load_dataset("fashion-mnist", fixture_data_dir)),
                       GateConfig(Criteria(), skip_qat_source=True))
    failed = {r.artifact for r in verdict.failed if r.criterion.startswith("parity")}
    assert failed == {"model_int8.tflite ~ model_int8.tflite@tflm", "model_qat_int8.tflite ~ model_qat_int8.tflite@tflm"}


def test_check_holds_a_tflm_subset_to_parity_on_exactly_its_images(device_export, fixture_data_dir):
    """TFLM runs on the stratified subset and is held to parity with LiteRT's run of the same file on exactly
    those images; its accuracy checks are LiteRT's on every image (on 100 images a drop's sampling error is
    larger than the tolerance), and the verdict lists the subset."""
    from edge_mnist.check import evaluate
    from edge_mnist.data import stratified_indices
    from edge_mnist.gate import DROP, PARITY, Criteria

    data = load_dataset("fashion-mnist", fixture_data_dir)
    verdict = evaluate(read_folder(device_export, data), GateConfig(Criteria(), skip_qat_source=True, tflm_images=100))
    subset = stratified_indices(data.y_test, 100)
    assert set(verdict.subsets) == {"model_int8.tflite@tflm", "model_qat_int8.tflite@tflm"}
    assert all(np.array_equal(v, subset) for v in verdict.subsets.values())
    assert len(verdict.predictions["model_int8.tflite@tflm"]) == 100 and verdict.n_samples == 500
    assert [r.criterion for r in verdict.results if r.artifact == "model_int8.tflite@tflm"] == []
    assert any(r.artifact == "model_int8.tflite" and r.criterion == DROP for r in verdict.results)
    tflm, lite = verdict.predictions["model_int8.tflite@tflm"], verdict.predictions["model_int8.tflite"]
    pair = next(r for r in verdict.results if r.artifact == "model_int8.tflite ~ model_int8.tflite@tflm")
    assert pair.criterion == PARITY and pair.value == (tflm == lite[subset]).mean()
    unchecked = evaluate(read_folder(device_export, data),
                         GateConfig(Criteria(parity=None), skip_qat_source=True, tflm_images=100))
    assert any(s.startswith("every check of model_int8.tflite@tflm: on its subset only parity applies")
               for s in unchecked.skipped)
    whole = evaluate(read_folder(device_export, data), GateConfig(Criteria(), skip_qat_source=True, tflm_images=0))
    assert any(r.artifact == "model_int8.tflite@tflm" and r.criterion == DROP for r in whole.results)


@pytest.mark.parametrize("option, images", [("100", 100), ("0", 500), ("all", 500)])
def test_check_tflm_images_option(device_export, fixture_data_dir, tmp_path, monkeypatch, option, images):
    """`check --tflm-images N` runs each TFLM model on exactly N images and says so in the text and the JSON;
    0 and all run the whole test set."""
    from edge_mnist.cli import main
    from edge_mnist.runtime.tflm import TFLMRunner

    ran, honest = [], TFLMRunner.run
    monkeypatch.setattr(TFLMRunner, "run", lambda self, x: ran.append(len(x)) or honest(self, x))
    report = tmp_path / "check.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["check", "--out", str(device_export), "--data-dir", str(fixture_data_dir), "--skip-qat-source",
              "--tflm-images", option, "--json", str(report)])
    assert sum(ran) == 2 * images  # model_int8.tflite and model_qat_int8.tflite
    subsets = json.loads(report.read_text())["subsets"]
    if images == 500:
        assert subsets == {} and "stratified" not in out.getvalue()
        return
    assert subsets == {"model_int8.tflite@tflm": 100, "model_qat_int8.tflite@tflm": 100}
    assert "model_int8.tflite@tflm  on 100 of 500 images, stratified by class" in out.getvalue().splitlines()
    summary = "model_int8.tflite@tflm, model_qat_int8.tflite@tflm: parity only (too few images for the accuracy"
    assert summary in out.getvalue()


def test_bench_records_the_images_of_its_tflm_rows(device_export, fixture_data_dir):
    from edge_mnist.bench import bench
    from edge_mnist.data import stratified_indices
    from edge_mnist.folder.records import BenchResult
    from edge_mnist.render.tables import bench_rows, bench_subset_lines

    data = load_dataset("fashion-mnist", fixture_data_dir)
    bench(read_folder(device_export, data), BenchConfig(runs=3, warmup=0, throughput_seconds=0, tflm_images=100),
          progress=lambda _: None)
    result = BenchResult.load(device_export / "bench.json", 10)
    tflm, lite = result.row("tflite_int8@tflm"), result.row("tflite_int8")
    assert tflm.n_samples == 100 and np.array_equal(tflm.indices, stratified_indices(data.y_test, 100))
    assert lite.n_samples == 500 and lite.indices is None
    assert tflm.agreement == (tflm.predictions == result.reference().predictions[tflm.indices]).mean()
    raw = json.loads((device_export / "bench.json").read_text())
    assert {r["key"]: r["n_samples"] for r in raw["rows"]}["tflite_int8@tflm"] == 100
    assert next(row for row in bench_rows(result) if row[1] == "tflm")[4].endswith("% (100 img)")
    said = ("model_int8.tflite@tflm, model_qat_int8.tflite@tflm: accuracy and agreement on 100 of 500 images, "
            "stratified by class; --tflm-images 0 for all")
    assert bench_subset_lines(result) == [said]


def test_a_baseline_compares_the_runs_checked_on_every_image(device_export, fixture_data_dir, tmp_path):
    """A TFLM run on a subset needs no baseline row (parity only); one checked on every image needs a row
    measured on every image, else a one-line error."""
    from edge_mnist.bench import bench
    from edge_mnist.check import evaluate
    from edge_mnist.core.errors import EdgeMnistError
    from edge_mnist.gate import BASELINE, Criteria

    data = load_dataset("fashion-mnist", fixture_data_dir)
    bench(read_folder(device_export, data), BenchConfig(runs=3, warmup=0, throughput_seconds=0, tflm_images=100),
          progress=lambda _: None)
    partial = tmp_path / "partial.json"
    (device_export / "bench.json").rename(partial)
    verdict = evaluate(read_folder(device_export, data),
                       GateConfig(Criteria(baseline=partial), skip_qat_source=True, tflm_images=100))
    checked = {r.artifact for r in verdict.results if r.criterion == BASELINE}
    assert "model_int8.tflite" in checked and "model_int8.tflite@tflm" not in checked
    with pytest.raises(EdgeMnistError, match="partial.json: model_int8.tflite@tflm, model_qat_int8.tflite@tflm: "
                                             "measured on a subset of the test images only"):
        evaluate(read_folder(device_export, data),
                 GateConfig(Criteria(baseline=partial), skip_qat_source=True, tflm_images=0))
