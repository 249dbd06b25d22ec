"""Class names are the user's text (issue 26): ten awkward names, carried exactly into every output of one real
export (scikit-learn's 8x8 digits as an .npz, mlp trained one epoch): the C arrays as the host's gcc and g++
read them, manifest.json and check.json as JSON, the .tflite, .onnx and .ort metadata through the project's
runtimes, report.html as an HTML parser reads it, and the terminal (`check` naming a class that dropped,
`predict` naming classes, `info`; the JUnit and Markdown reports). The pictures draw each name or, where no
installed font can, its number, and print no warning. A lone surrogate cannot occur in a folder name and is
refused in an .npz.
"""
from __future__ import annotations

import html.parser
import json
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.render import plots
from edge_mnist.runtime import open_model
from edge_mnist.userdata import load_npz
from tests.cli.test_commands import run_cli
from tests.test_check import rehash, zero_largest_tflite_buffer

pytestmark = pytest.mark.tf  # about 15 s warm (TensorFlow, gcc and g++ builds)

NAMES = [
    'men\'s "shoes" 👟',
    "café $x^2$",
    "衬衫",
    "<b>bold</b> & co",
    "%s %n %d {0} {braces}",
    "back\\slash\\",
    "*/ comment end /*",
    "??= trigraph ??/",
    "שלום",
    ("ünïcödé-" * 25)[:200],
]
DATASET = "names ??= $x \\"  # the .npz's stem: the dataset's name, in the C header's comment
CLASSES = pytest.mark.parametrize("index", range(len(NAMES)), ids=[f"class{i}" for i in range(len(NAMES))])


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The 1,797 real digits as an .npz (every fifth image a test image) with NAMES as class_names, mlp trained
    one epoch, exported float and int8, benchmarked briefly and reported."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    x, y = np.round(bunch.images * (255 / 16)).astype(np.uint8), bunch.target.astype(np.int64)
    root = tmp_path_factory.mktemp("names")
    test = np.arange(len(y)) % 5 == 0
    np.savez(root / f"{DATASET}.npz", x_train=x[~test], y_train=y[~test], x_test=x[test], y_test=y[test],
             class_names=np.array(NAMES))
    out = root / "out"
    for argv in (["train", "--dataset", str(root / f"{DATASET}.npz"), "--arch", "mlp", "--epochs", "1"],
                 ["export", "--int8"], ["bench", "--runs", "1", "--warmup", "0", "--throughput-seconds", "0"]):
        code, _, err = run_cli([*argv, "--out", str(out)])
        assert code == 0, err
    return out


@pytest.fixture(scope="module")
def reported(exported) -> tuple[Path, str]:
    """report.html written, with what `report` printed to the terminal's stderr."""
    code, _, err = run_cli(["report", "--out", str(exported)])
    assert code in (0, 1), err
    return exported / "report.html", err


def printed_labels(exported: Path, tmp_path: Path, compiler: str, source: str, array: str, std: str) -> list[str]:
    """The labels array of a generated C or C++ file as the host compiler reads it (strict standard mode, so
    trigraphs are on): a tiny program prints each label's bytes, NUL-terminated."""
    main = tmp_path / f"main.{source.rsplit('.', 1)[1]}"
    main.write_text(f'#include <stdio.h>\n#include "{exported / source.replace(".cc", ".h").replace(".c", ".h")}"\n'
                    f"int main(void) {{ for (int i = 0; i < {len(NAMES)}; ++i) "
                    f"{{ fputs({array}[i], stdout); fputc(0, stdout); }} return 0; }}\n")
    binary = tmp_path / "labels"
    build = subprocess.run([compiler, f"-std={std}", "-trigraphs", "-Wall", "-Werror", "-I", str(exported),
                            str(main), str(exported / source), "-o", str(binary), "-lm"],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(binary)], capture_output=True, timeout=60)
    return [b.decode("utf-8") for b in run.stdout.split(b"\0")[:-1]]


@pytest.fixture(scope="module")
def c_labels(exported, tmp_path_factory) -> dict[str, list[str]]:
    """The labels of the C++ array file (g++) and the interpreter-free C (gcc)."""
    tmp = tmp_path_factory.mktemp("c")
    (tmp / "cc").mkdir()
    (tmp / "c").mkdir()
    return {"model_int8.cc": printed_labels(exported, tmp / "cc", "g++", "model_int8.cc",
                                            "edge_mnist::model_int8::kLabels", "c++11"),
            "model_int8_micro.c": printed_labels(exported, tmp / "c", "gcc", "model_int8_micro.c",
                                                 "model_int8_labels", "c99")}


@CLASSES
@pytest.mark.parametrize("source", ["model_int8.cc", "model_int8_micro.c"])
def test_the_c_labels_are_the_names_byte_for_byte(c_labels, source, index):
    assert len(c_labels[source]) == len(NAMES) and c_labels[source][index] == NAMES[index]


def test_the_c_header_comment_holds_the_dataset_name_harmlessly(exported):
    header = (exported / "model_int8.h").read_text(encoding="ascii")  # every byte escaped: ASCII only
    assert "// names \\077\\077= $x \\134 classifier" in header


@CLASSES
def test_json_records_carry_the_names(exported, index):
    manifest = json.loads((exported / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["task"]["class_names"][index] == NAMES[index] and manifest["task"]["dataset"] == DATASET
    code, out, err = run_cli(["info", "--out", str(exported), "--json"])
    assert code == 0 and json.loads(out)["classes"][index] == NAMES[index], err


@CLASSES
@pytest.mark.parametrize("file", ["model_int8.tflite", "model_int8.onnx", "model_int8.ort", "model_float32.onnx"])
def test_model_metadata_carries_the_names(exported, file, index):
    metadata = open_model(exported / file).metadata
    assert json.loads(metadata["labels"])[index] == NAMES[index]
    assert json.loads(metadata["task"])["class_names"][index] == NAMES[index]


class Cells(html.parser.HTMLParser):
    """The text of every table cell of a page, as a browser shows it (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        self._in = self._in or tag == "td"
        if tag == "td":
            self.cells.append("")

    def handle_endtag(self, tag):
        self._in = self._in and tag != "td"

    def handle_data(self, data):
        if self._in:
            self.cells[-1] += data


@CLASSES
def test_the_report_lists_each_class_by_number_and_exact_name(reported, index):
    page, _ = reported
    parser = Cells()
    parser.feed(page.read_text(encoding="utf-8"))
    at = parser.cells.index(NAMES[index])
    assert parser.cells[at - 1] == str(index) and "<b>" not in page.read_text().replace("&lt;b&gt;", "")


def test_the_pictures_print_no_warning_and_draw_names_or_numbers(reported):
    _, err = reported
    assert "Warning" not in err and "Glyph" not in err, err
    shown, _, note = plots.class_labels(NAMES)
    assert shown == [str(i) for i in range(len(NAMES))] and "class table" in note  # Hebrew would draw reversed
    shown, fonts, note = plots.class_labels(["café $x^2$", "<b>", "x" * 40])
    assert shown == ["café $x^2$", "<b>", "x" * 29 + "…"] and fonts[0] == plots.DEFAULT_FONT and not note


def test_check_names_the_class_that_dropped_exactly(exported, tmp_path):
    damaged = shutil.copytree(exported, tmp_path / "damaged")
    zero_largest_tflite_buffer(damaged / "model_int8.tflite")
    rehash(damaged, "model_int8.tflite")
    code, out, err = run_cli(["check", "--out", str(damaged), "--strict-drop", "--json", str(tmp_path / "c.json"),
                              "--junit", str(tmp_path / "c.xml"), "--markdown", str(tmp_path / "c.md")])
    assert code == 1, err
    verdict = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    named = {r["context"]["class"] for r in verdict["results"] if "class" in r["context"] and not r["passed"]}
    assert named and named <= set(NAMES)
    words = " ".join(out.split())  # long lines wrap at spaces
    failures = [f.get("message") for f in ElementTree.parse(tmp_path / "c.xml").iter("failure")]
    shown = re.sub(r"\\(.)", r"\1", (tmp_path / "c.md").read_text(encoding="utf-8"))  # Markdown's escapes undone
    for name in named:
        assert f"worst class {' '.join(name.split())} vs its source model" in words
        assert any(f"worst class {name} vs" in m for m in failures) and f"worst class {name} vs" in shown


def test_predict_names_every_class_exactly(exported, tmp_path):
    image = tmp_path / "digit.png"
    digit = pytest.importorskip("sklearn.datasets").load_digits().images[0]
    Image.fromarray(np.round(digit * (255 / 16)).astype(np.uint8)).save(image)
    code, out, err = run_cli(["predict", "--out", str(exported), "--top", str(len(NAMES)), "--json", str(image)])
    assert code == 0, err
    shown = json.dumps(json.loads(out), ensure_ascii=False)
    assert all(json.dumps(name, ensure_ascii=False) in shown for name in NAMES), out
    code, out, err = run_cli(["predict", "--out", str(exported), "--top", str(len(NAMES)), str(image)])
    assert code == 0 and all(name in out for name in NAMES), out


def test_an_npz_name_that_is_not_text_is_refused(tmp_path):
    arrays = {"x_train": np.zeros((2, 8, 8), np.uint8), "y_train": np.array([0, 1]),
              "x_test": np.zeros((2, 8, 8), np.uint8), "y_test": np.array([0, 1])}
    for bad in ("lone \ud800 surrogate", "line\u2028break", "esc\x1b[2J"):
        np.savez(tmp_path / "bad.npz", **arrays, class_names=np.array(["ok", bad]))
        with pytest.raises(EdgeMnistError, match="cannot be a label"):
            load_npz(tmp_path / "bad.npz")
