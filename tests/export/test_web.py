"""web/: the page export writes, what the manifest and the gate make of it, and the page itself in headless Chromium.

The browser tests serve a real export of the committed tiny Fashion-MNIST model (tests/fixtures/device_export,
re-exported with --method ptq) from a local http.server and drive Debian's chromium with Playwright; the page's
answers are compared with `edge-mnist predict`'s (edge_mnist.predict) on the same image files.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.photos import LARGE_PAGE, LARGE_SCALE, phone_photo
from benchmarks.web import CHROMIUM, CLASSIFY, opened, serving
from edge_mnist.config import ExportConfig, GateConfig
from edge_mnist.folder.opener import read_folder
from edge_mnist.registry.formats import WEB_PAGE
from tests.conftest import FIXTURES

pytestmark = pytest.mark.tf
TEST_IMAGES, PHOTOS, LARGE_PHOTOS = 500, 40, 4  # every test image of the fixture; photos of the first ones


def _export(folder: Path, progress=lambda *_: None):
    """export --method ptq into `folder` (a copy of the committed fixture folder) with the fixture's data."""
    from edge_mnist.data import load_dataset
    from edge_mnist.export import export

    return export(read_folder(folder, load_dataset("fashion-mnist", FIXTURES / "fashion-small"), exported=False),
                  ExportConfig(("ptq",), calib_samples=64), progress=progress)


@pytest.fixture(scope="module")
def web_export(tmp_path_factory) -> Path:
    """The committed tiny export, re-exported once with its web/ (onnxruntime-web from the user's cache, or npm)."""
    folder = tmp_path_factory.mktemp("web") / "export"
    shutil.copytree(FIXTURES / "device_export", folder)
    manifest = _export(folder)
    if "web_int8" not in manifest.artifacts:
        pytest.skip(f"web/ not written: {manifest.artifacts['onnx_int8'].details.get('not_written:' + WEB_PAGE)}")
    return folder


@pytest.fixture
def web_copy(web_export, tmp_path) -> Path:
    """A private copy of the web export that a test may damage."""
    return Path(shutil.copytree(web_export, tmp_path / "export"))


def _check(folder: Path) -> tuple[int, str]:
    """`edge-mnist check` on the folder (fixture data, no TFLM, no QAT source): exit code and output."""
    from tests.cli.test_commands import run_cli

    code, out, err = run_cli(["check", "--out", str(folder), "--dataset", "fashion-mnist", "--data-dir",
                              str(FIXTURES / "fashion-small"), "--skip-qat-source", "--skip-runtime", "tflm"])
    return code, out + err


def test_the_page_and_its_files_are_in_the_manifest(web_export):
    manifest = json.loads((web_export / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["key"] == "web_int8")
    on_disk = {f"web/{p.name}" for p in (web_export / "web").iterdir()}
    assert entry["file"] == WEB_PAGE and on_disk == set(entry["parts"]) | {WEB_PAGE}
    for name, sha in {**entry["parts"], WEB_PAGE: entry["sha256"]}.items():
        assert hashlib.sha256((web_export / name).read_bytes()).hexdigest() == sha, name
    assert (web_export / "web" / "model_int8.onnx").read_bytes() == (web_export / "model_int8.onnx").read_bytes()
    code, out = _check(web_export)
    assert code == 0 and "web/index.html" in out, out


def _rehash(folder: Path, name: str) -> None:
    """Record a file's new sha256 in the manifest, as a hand edit checked in with the folder would be."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        sha = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        if entry["file"] == name:
            entry["sha256"], entry["size_bytes"] = sha, (folder / name).stat().st_size
        elif name in entry.get("parts", {}):
            entry["parts"][name] = sha
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _flip(path: Path, at: int) -> None:
    """Flip one byte of a file."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, at", [("web/model_int8.onnx", 5000), ("web/index.html", 400),
                                      ("web/edge-mnist.js", 900), ("web/ort-wasm-simd-threaded.wasm", 10_000)])
def test_a_flipped_byte_in_web_fails_the_gate(web_copy, name, at):
    """Re-hashed in the manifest, the file is not what the gate can vouch for: exit 1 naming it; not re-hashed,
    it was modified after export: exit 2 naming it, as for any artifact."""
    _flip(web_copy / name, at)
    code, out = _check(web_copy)
    assert code == 2 and f"{name}: sha256 does not match manifest.json" in out, out
    _rehash(web_copy, name)
    code, out = _check(web_copy)
    assert code == 1 and f"{name} is not" in " ".join(out.split()) and "checks failed, in web/index.html" in out, out


def test_offline_without_a_cache_the_page_is_not_written_and_export_passes(tmp_path, monkeypatch):
    """A closed local port as the npm registry and an empty cache: one line says why, the manifest records it,
    any old web/ is gone, and the rest of the set passes the gate."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("EDGE_MNIST_NPM_REGISTRY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = Path(shutil.copytree(FIXTURES / "device_export", tmp_path / "export"))
    (folder / "web").mkdir()
    (folder / "web" / "index.html").write_text("stale")
    lines = []
    manifest = _export(folder, lines.append)
    said = [line for line in lines if "not written" in line]
    assert len(said) == 1 and said[0].startswith(f"{WEB_PAGE}: not written: cannot download onnxruntime-web"), lines
    assert "\n" not in said[0] and f"127.0.0.1:{port}" in said[0]
    assert "web_int8" not in manifest.artifacts and not (folder / "web").exists()
    assert manifest.artifacts["onnx_int8"].details[f"not_written:{WEB_PAGE}"] in said[0]
    code, out = _check(folder)
    assert code == 0, out


def test_a_manifest_from_before_web_still_loads_and_passes(tmp_path):
    """The committed fixture was exported before web/ existed: complete without it."""
    from edge_mnist.folder.records import Manifest

    assert "web_int8" not in Manifest.load(FIXTURES / "device_export").artifacts
    code, out = _check(Path(shutil.copytree(FIXTURES / "device_export", tmp_path / "export")))
    assert code == 0, out


# ---- the page in headless Chromium ----

@pytest.fixture(scope="module")
def served(web_export, tmp_path_factory):
    """http://127.0.0.1:PORT/ serving web/ (at /web/) and the probe images (at /images/) from one folder."""
    root = tmp_path_factory.mktemp("site")
    (root / "web").symlink_to(web_export / "web")
    (root / "images").mkdir()
    with serving(root) as url:
        yield root, url


@pytest.fixture(scope="module")
def page(served):
    """The exported page open in headless Debian chromium, its model loaded."""
    if not CHROMIUM.is_file():
        pytest.skip("apt-get install chromium")
    pytest.importorskip("playwright.sync_api")
    with opened(f"{served[1]}/web/index.html") as tab:
        yield tab


def _browser_and_predict(page, served, web_export, files: list[Path]) -> tuple[list[dict], list[dict]]:
    """The page's answers and `edge-mnist predict`'s (default model, the PTQ .tflite) for the same files."""
    from edge_mnist.predict import predict

    root, url = served
    ours = page.evaluate(CLASSIFY, [f"{url}/images/{p.relative_to(root / 'images')}" for p in files])
    theirs, _ = predict(web_export, files, top=3)
    return ours, theirs


def _agreement(ours: list[dict], theirs: list[dict]) -> float:
    """Share of files on which the page gives predict's class."""
    return float(np.mean([a["index"] == b["class"] for a, b in zip(ours, theirs, strict=True)]))


@pytest.fixture(scope="module")
def fashion_test():
    """The committed fixture's 500 real Fashion-MNIST test images and labels."""
    from edge_mnist.data import load_dataset

    data = load_dataset("fashion-mnist", FIXTURES / "fashion-small")
    return data.x_test, data.y_test


def test_the_page_gives_predicts_class_on_every_test_image(page, served, web_export, fashion_test):
    """All 500 test images as 28x28 PNGs, and the first 40 as dark ink on light paper (the inverted path)."""
    from edge_mnist.registry.datasets import DATASETS

    folder = served[0] / "images" / "test"
    folder.mkdir()
    files = []
    for i, image in enumerate(fashion_test[0][:TEST_IMAGES]):
        files.append(folder / f"{i:03d}.png")
        Image.fromarray(image).save(files[-1])
    for i, image in enumerate(fashion_test[0][:PHOTOS]):
        files.append(folder / f"{i:03d}_ink.png")
        Image.fromarray(255 - image).save(files[-1])
    ours, theirs = _browser_and_predict(page, served, web_export, files)
    assert _agreement(ours, theirs) >= 0.99, [(a, b) for a, b in zip(ours, theirs) if a["index"] != b["class"]]
    names = DATASETS["fashion-mnist"].task.class_names
    assert all(a["label"] == names[a["index"]] for a in ours)
    assert np.mean([a["top"] == [t["class"] for t in b["top"]] for a, b in zip(ours, theirs)]) >= 0.95
    print(f"\nweb: {len(files)} images, agreement {_agreement(ours, theirs):.2%}, "
          f"median {np.median([a['ms'] for a in ours]):.2f} ms per image, "
          f"of which inference {np.median([a['inference'] for a in ours]):.2f} ms")


def test_the_page_gives_predicts_class_on_phone_photos(page, served, web_export, fashion_test):
    """40 test items rendered as phone photos (dark on paper, turned, off-centre, uneven light, noise; JPEG):
    36 of 480x360 pixels and 4 of 2048x1536 (reduced to 768 pixels for thresholding, as predict does)."""
    folder = served[0] / "images" / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for i, image in enumerate(fashion_test[0][:PHOTOS]):
        files.append(folder / f"{i:03d}.jpg")
        size = {"page": LARGE_PAGE, "scale": LARGE_SCALE} if i >= PHOTOS - LARGE_PHOTOS else {}
        phone_photo(image, rng, gradient=50, **size).save(files[-1], quality=90)
    ours, theirs = _browser_and_predict(page, served, web_export, files)
    assert _agreement(ours, theirs) >= 0.99, [(a, b["class"]) for a, b in zip(ours, theirs) if a["index"] != b["class"]]
    ms = [a["ms"] for a in ours]
    print(f"\nweb: {len(files)} photos, agreement {_agreement(ours, theirs):.2%}, median ms per photo: "
          f"{np.median(ms[:-LARGE_PHOTOS]):.1f} (480x360), {np.median(ms[-LARGE_PHOTOS:]):.1f} (2048x1536)")


def test_drawing_on_the_canvas_shows_three_labelled_classes(page):
    """A stroke with the mouse: the page lists the top 3 as text and the time taken."""
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for fx, fy in ((0.7, 0.2), (0.7, 0.8), (0.3, 0.8), (0.3, 0.2)):
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    page.mouse.up()
    page.wait_for_function("document.querySelectorAll('#top li').length === 3")
    items = page.locator("#top li").all_text_contents()
    assert all("(class " in item and "p=" in item for item in items), items
    assert "ms" in page.locator("#status").text_content()


def test_a_blank_image_is_a_one_line_error(page):
    message = page.evaluate("window.edgeMnist.predict(new ImageData(28, 28)).then(() => 'answered', e => e.message)")
    assert message == "no digit or object found (blank image)"


def test_labels_are_shown_as_text_never_as_markup(page, served, web_export):
    """A model whose labels hold markup (labels are user text): the page lists them literally and runs none."""
    import onnx

    root, url = served
    evil = root / "evil"
    shutil.copytree(web_export / "web", evil)
    model = onnx.load(str(evil / "model_int8.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    task = json.loads(props["task"])
    task["class_names"] = [f'<img src=x onerror="window.pwned={i}">' for i in range(len(task["class_names"]))]
    onnx.helper.set_model_props(model, {**props, "task": json.dumps(task)})
    onnx.save(model, str(evil / "model_int8.onnx"))
    tab = page.context.browser.new_page()
    tab.goto(f"{url}/evil/index.html")
    tab.evaluate("window.edgeMnist.ready")
    tab.set_input_files("#pick", _item_png(root))
    tab.wait_for_function("document.querySelectorAll('#top li').length === 3")
    items = tab.locator("#top li").all_text_contents()
    assert all(item.startswith('<img src=x onerror="window.pwned=') for item in items), items
    assert tab.locator("#top img").count() == 0 and tab.evaluate("window.pwned") is None
    tab.close()


def _item_png(root: Path) -> str:
    """A Fashion-MNIST test item as a PNG file, for the page's file picker."""
    from edge_mnist.data import load_dataset

    path = root / "item.png"
    Image.fromarray(load_dataset("fashion-mnist", FIXTURES / "fashion-small").x_test[0]).save(path)
    return str(path)


def test_on_32_bit_pi_os_the_page_is_listed_as_not_compared(web_copy, monkeypatch):
    """Where onnxruntime has no wheel the .onnx does not run, so the page's model cannot be held to it: the gate
    says so (its files' sha256 still verified), it does not crash."""
    import platform

    from edge_mnist.check import evaluate
    from edge_mnist.gate import Criteria
    from edge_mnist.data import load_dataset

    monkeypatch.setattr(platform, "machine", lambda: "armv7l")
    verdict = evaluate(read_folder(web_copy, load_dataset("fashion-mnist", FIXTURES / "fashion-small")),
                       GateConfig(Criteria(), skip_qat_source=True, skip_runtimes=("tflm", "openvino")))
    assert verdict.passed and any(s.startswith(f"{WEB_PAGE}: not compared here (model_int8.onnx does not run")
                                  for s in verdict.skipped), verdict.skipped
    assert not any(r.artifact.endswith(".onnx") for r in verdict.results)


@pytest.fixture(scope="module")
def colour_site(tinted_run, tmp_path_factory):
    """http://127.0.0.1:PORT/ serving the colour export's web/ (conftest.tinted_run) and the probe images."""
    root = tmp_path_factory.mktemp("colour_site")
    (root / "web").symlink_to(tinted_run[3] / "web")
    (root / "images").mkdir()
    with serving(root) as url:
        yield root, url


@pytest.mark.slow
def test_the_page_gives_predicts_class_on_colour_images(tinted_run, tinted_dir, colour_site):
    """A 32x32x3 task of the user's own data: 16 test images as they are, 16 saved 3x larger (PNG), 8 of those
    as JPEG and 8 as grey PNGs (one channel, repeated for the colour model); the page resizes each whole, as
    predict does, and must give predict's class and three best."""
    if not CHROMIUM.is_file():
        pytest.skip("apt-get install chromium")
    pytest.importorskip("playwright.sync_api")
    root, url = colour_site
    folder = root / "images" / "colour"
    folder.mkdir()
    files = []
    for i, source in enumerate(sorted((tinted_dir / "test").rglob("*.png"))[::12][:16]):
        image = Image.open(source)
        big = image.resize((96, 96), Image.LANCZOS)
        files += [folder / f"{i:02d}.png", folder / f"{i:02d}_big.png"]
        image.save(files[-2])
        big.save(files[-1])
        if i % 2:
            files.append(folder / f"{i:02d}_big.jpg")
            big.save(files[-1], quality=90)
        else:
            files.append(folder / f"{i:02d}_grey.png")
            big.convert("L").save(files[-1])
    with opened(f"{url}/web/index.html") as tab:
        ours, theirs = _browser_and_predict(tab, colour_site, tinted_run[3], files)
    assert _agreement(ours, theirs) == 1.0, [(a, b) for a, b in zip(ours, theirs) if a["index"] != b["class"]]
    assert np.mean([a["top"] == [t["class"] for t in b["top"]] for a, b in zip(ours, theirs)]) >= 0.95
