"""What `check` prints and writes, and `info`'s summary of a folder, on the committed tiny export.

One real gate run (module fixture) with limits it must fail (--min-accuracy 0.9, --max-class-drop 1)
gives the text, the stderr line and DIR/check.json that the tests read; the widest layouts
(parity lists, C++ problems, mixed files, long skip notes) are rendered from made-up verdicts.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge_mnist.cli.commands import STDOUT, _conclude
from edge_mnist.core.errors import GateFailed
from edge_mnist.gate import (
    EMBEDS,
    PairedDrop,
    Result,
    Verdict,
    accuracy_drop,
    baseline_drop,
    class_drop,
    minimum_accuracy,
    parity,
)
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.render.tables import WIDTH, check_text, describe, markdown_text, write_reports
from tests.conftest import FIXTURES

pytestmark = pytest.mark.device

CLASSES = DATASETS["fashion-mnist"].task.class_names
LABELS = np.repeat(np.arange(10), 100)


def run_cli(argv) -> tuple[int, str, str]:
    """`edge-mnist argv` through main() (tests.cli.test_commands.run_cli, paths as strings): (exit code, stdout,
    stderr)."""
    from tests.cli.test_commands import run_cli as run

    return run([str(a) for a in argv])


@pytest.fixture(scope="module")
def failed_check(tmp_path_factory):
    """A copy of the tiny export after one failing gate run that saved its verdict as DIR/check.json."""
    folder = tmp_path_factory.mktemp("gate") / "export"
    shutil.copytree(FIXTURES / "device_export", folder)
    code, out, err = run_cli(["check", "--out", folder, "--data-dir", FIXTURES / "fashion-small",
                              "--skip-qat-source", "--min-accuracy", "0.9", "--max-class-drop", "1", "--strict-drop",
                              "--json", folder / "check.json"])
    assert code == 1, err
    return folder, out, err


def test_every_line_fits_100_columns_and_no_line_says_criterion(failed_check):
    _, out, err = failed_check
    assert "FAIL" in out and len(out.splitlines()) > 20
    assert max(len(line) for line in (out + err).splitlines()) <= WIDTH
    assert "criteri" not in (out + err).lower()


def test_a_minimum_reads_value_then_minimum(failed_check):
    _, out, _ = failed_check
    assert re.search(r"^  FAIL  accuracy \d+\.\d\d%, minimum 90\.00%$", out, re.M), out
    assert not re.search(r"\d [<>]=? \d", out)


def test_a_class_drop_names_the_class(failed_check):
    _, out, _ = failed_check
    named = re.findall(r"FAIL  worst class (.+) vs its source model: drop \d+\.\d\d pp, maximum 1\.00 pp", out)
    assert named and set(named) <= set(CLASSES), out


def test_failed_checks_are_counted_in_words(failed_check):
    _, out, err = failed_check
    failed = int(re.search(r"^FAIL: (\d+) checks failed and \d+ passed on 500 images; reference ", out, re.M)[1])
    assert err.strip().startswith(f"edge-mnist: check failed: {failed} of ") and failed == out.count("  FAIL  ")


def test_json_report_is_rounded_and_keeps_its_keys(failed_check):
    folder, _, _ = failed_check
    report = json.loads((folder / "check.json").read_text())
    floats = []

    def walk(value):
        if isinstance(value, float):
            floats.append(value)
        for child in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(child)

    walk(report)
    assert floats and all(x == float(f"{x:.6g}") for x in floats)
    assert 1.75439 in floats  # the Coat drop, 1.7543859... before rounding
    assert {"verdict", "reference", "reference_accuracy", "n_samples", "dataset", "criteria", "results"} <= set(report)
    assert {"artifact", "criterion", "value", "limit", "passed", "detail", "unit"} <= set(report["results"][0])


def wide_verdict() -> Verdict:
    """A failing verdict with the longest names and notes the gate writes: TFLM runs of QAT files, a parity
    list, a C++ file's problems, mixed files with a long list of float layers and a long skip note."""
    shifted = LABELS.copy()
    shifted[5:40] = (shifted[5:40] + 1) % 10
    tflm = "model_qat_int8.tflite@tflm"
    layers = "conv2d, conv2d_1, batch_normalization, dense, dense_1, dense_2, max_pooling2d"
    return Verdict([accuracy_drop(tflm, 0.89496, 0.9, 0.5), minimum_accuracy(tflm, 0.8995, 0.9),
                    class_drop(tflm, shifted, LABELS, LABELS, CLASSES, 1.0),
                    parity(f"model_qat_int8.tflite ~ {tflm}", LABELS, shifted, 0.99),
                    Result("model_qat_int8.h", EMBEDS, 2, 0, False, "the array is not model_qat_int8.tflite byte "
                           "for byte; input scale 0.0039 in the header, 0.0078 in the .tflite",
                           {"embeds": "model_qat_int8.tflite"})],
                   "model_float32.onnx", 0.9, 10000, "fashion-mnist",
                   skipped=[f"disagreement and per-class drop of {tflm} vs its QAT source (--skip-qat-source)"],
                   float_layers={key: layers for key in ("tflite_qat_int8", "onnx_qat_int8", "ort_qat_int8")})


def test_the_widest_layouts_fit_100_columns():
    text = check_text(wide_verdict())
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "\nmodel_qat_int8.tflite@tflm  (int8+float)\n" in f"\n{text}"
    words = " ".join(text.split())  # the long lines wrap
    assert "they disagree on 35 images: 5, 6, 7" in words and "2 problems with the model_qat_int8.tflite" in words


def test_a_value_is_never_shown_equal_to_a_limit_it_fails():
    assert describe(accuracy_drop("m", 0.89496, 0.9, 0.5)).endswith("drop 0.504 pp, tolerance 0.500 pp")
    assert describe(minimum_accuracy("m", 0.89999, 0.9)) == "accuracy 89.999%, minimum 90.000%"
    assert describe(accuracy_drop("m", 0.902, 0.9, 0.5)).endswith("no drop (+0.20 pp), tolerance 0.50 pp")


def test_bare_json_prints_the_verdict_instead_of_the_text(capsys):
    with pytest.raises(GateFailed, match=r"^5 of 5 checks failed, in model_qat_int8.tflite@tflm and 1 other file$"):
        _conclude(wide_verdict(), json_path=STDOUT)
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "FAIL" and report["results"][0]["value"] == 0.504


def test_markdown_and_junit_use_the_same_sentences(tmp_path):
    write_reports(wide_verdict(), junit_path=tmp_path / "gate.xml", md_path=tmp_path / "gate.md")
    md, xml = (tmp_path / "gate.md").read_text(), (tmp_path / "gate.xml").read_text()
    assert "| model_qat_int8.tflite@tflm | FAIL | accuracy 89.50% vs float 90.00%: drop 0.504 pp," in md
    assert "\n- FAIL: 5 checks failed and 0 passed on 10000 images; reference model_float32.onnx" in md
    assert 'name="model_qat_int8.tflite@tflm: accuracy drop vs float (pp)"' in xml  # stable case names
    assert 'message="accuracy 89.50% vs float 90.00%: drop 0.504 pp, tolerance 0.500 pp"' in xml


def test_info_summarises_models_dataset_accuracies_and_the_recorded_verdict(failed_check):
    folder, _, _ = failed_check
    code, out, err = run_cli(["info", "--out", folder])
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= WIDTH
    for name in ("model_int8.tflite", "model_qat_int8.onnx", "model_int8.h", "model_qat.h5"):
        assert re.search(rf"^  {re.escape(name)} .* ok$", out, re.M), name
    assert "dataset: fashion-mnist, 10 classes" in out and "e295790fd03edd2e" in out
    assert "architecture: tiny_cnn" in out
    assert re.search(r"^  model_float32\.keras +80\.80% +manifest\.json, ", out, re.M)
    assert re.search(r"^  model_int8\.tflite +81\.00% +check\.json, 20\d\d-", out, re.M)
    assert re.search(r"^gate verdict as recorded in check\.json \(20\d\d-.*\):\n  FAIL: \d+ of \d+ checks failed", out,
                     re.M)


def test_info_json_and_a_modified_file(failed_check, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(failed_check[0], folder)
    (folder / "model_int8.onnx").write_bytes(b"not a model")
    code, out, _ = run_cli(["info", "--out", folder, "--json"])
    info = json.loads(out)
    assert code == 0 and info["verdict"]["verdict"] == "FAIL" and info["verdict"]["date"]
    status = {m["file"]: m["sha256"] for m in info["models"]}
    assert status["model_int8.onnx"] == "modified" and status["model_int8.tflite"] == "ok"
    assert {"model": "model_qat.h5", "record": "manifest.json"}.items() <= next(
        r for r in info["accuracies"] if r["model"] == "model_qat.h5").items()


@pytest.mark.parametrize("damage, message", [
    (lambda folder: shutil.rmtree(folder), "artifact folder does not exist"),
    (lambda folder: (folder / "manifest.json").unlink(), "manifest.json: manifest (run `edge-mnist export` first) "
                                                          "not found"),
    (lambda folder: (folder / "manifest.json").write_text("{ truncated"), "manifest.json: manifest (run `edge-mnist "
                                                                          "export` first) is not valid JSON"),
])
def test_info_on_bad_input_is_one_line_and_exit_2(device_export, damage, message):
    damage(device_export)
    code, out, err = run_cli(["info", "--out", device_export])
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and message in err and str(device_export) in err


def test_info_imports_no_tensorflow(device_export):
    code = ("import sys\nfrom edge_mnist.cli import main\ntry:\n    main(['info', '--out', sys.argv[1]])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "heavy = {'tensorflow', 'tf_keras', 'keras', 'onnx', 'matplotlib'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code, str(device_export)], capture_output=True, text=True,
                          timeout=120, cwd=FIXTURES.parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gate verdict: none recorded" in proc.stdout


def small_set_verdict() -> Verdict:
    """The drops of three files on 50 images (one within noise, one beyond the tolerance but not significant,
    one real) and one on 10,000 images that resolves the tolerance."""
    return Verdict([accuracy_drop("a.tflite", 0.80, 0.80, 0.5, PairedDrop(50, 0, 0)),
                    accuracy_drop("b.tflite", 0.78, 0.80, 0.5, PairedDrop(50, 1, 0)),
                    baseline_drop("c.tflite", 0.20, 0.80, 0.5, PairedDrop(50, 30, 0)),
                    accuracy_drop("d.tflite", 0.794, 0.80, 0.5, PairedDrop(10_000, 80, 20))],
                   "model_float32.onnx", 0.8, 50, "fashion-mnist")


def test_a_drop_states_its_images_and_interval_and_whether_the_set_resolves_it():
    noise, excused, real, resolved = (describe(r) for r in small_set_verdict().results)
    assert noise.endswith("no drop, tolerance 0.50 pp; 50 images, 95% interval -8.39 to +8.39 pp: too few images "
                          "to resolve 0.50 pp")
    assert excused.endswith("drop 2.00 pp, tolerance 0.50 pp; 50 images, 95% interval -11.79 to +12.10 pp: too few "
                            "images to resolve 0.50 pp, and its interval includes 0: passed as noise")
    assert re.search(r"vs baseline 80\.00%: drop 60\.00 pp, tolerance 0\.50 pp; 50 images, 95% interval \+\d+\.\d\d "
                     r"to \+\d+\.\d\d pp: too few images to resolve 0\.50 pp, but the drop is real \(its interval "
                     r"lies above 0\)$", real), real
    assert resolved.endswith("drop 0.60 pp, tolerance 0.50 pp; 10,000 images, 95% interval +0.31 to +0.95 pp")


def test_unresolved_checks_are_a_warning_in_every_report(tmp_path):
    verdict = small_set_verdict()
    text = check_text(verdict)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "FAIL: 2 checks failed and 2 passed" in text  # c (real) and d (resolved); a and b pass
    words = " ".join(text.split())
    assert ("warning: 3 accuracy-drop checks on too few images to resolve the tolerance (95% intervals up to "
            "±21.88 pp)") in words
    write_reports(verdict, json_path=tmp_path / "c.json", md_path=tmp_path / "c.md")
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["unresolved"] == ["a.tflite: accuracy drop vs float (pp)", "b.tflite: accuracy drop vs float (pp)",
                                    "c.tflite: accuracy drop vs baseline (pp)"]
    assert report["results"][1]["context"]["images"] == 50 and report["results"][1]["passed"] is True
    assert "\n- warning: 3 accuracy-drop checks on too few images" in (tmp_path / "c.md").read_text()
    assert "accuracy-drop check" not in check_text(wide_verdict())  # unpaired drops: no interval, no warning


def test_markdown_cells_show_a_class_name_as_written():
    assert markdown_text("worst class <b>x</b> & a|b *c* $d$ _e_ in model_int8") == (
        r"worst class \<b\>x\</b\> \& a\|b \*c\* \$d\$ \_e\_ in model_int8")
