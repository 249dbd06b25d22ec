"""emulate/__init__.py: agreement and verdict on real model outputs, the refusals as real processes, and (slow,
root) the real thing: the committed tiny export on an emulated Pi 4 and Pi 5.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.data import load_dataset, to_float
from edge_mnist.emulate import Row, compare
from edge_mnist.emulate.images import apt_mirror, cache_dir
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.formats import FORMATS
from edge_mnist.runtime import open_model
from tests.behaviour.test_exit_codes import one_line_error
from tests.conftest import FIXTURES, run_process


@pytest.fixture(scope="module")
def int8_outputs(fixture_data_dir):
    """Probabilities of the committed PTQ int8 TFLite model on the 500 real test images, and its output scale."""
    runner = open_model(FIXTURES / "device_export" / "model_int8.tflite")
    images = to_float(load_dataset("fashion-mnist", fixture_data_dir).x_test)
    return runner.predict(images), float(runner.output_scale)


def swap_top_two(probs: np.ndarray, images: list[int]) -> np.ndarray:
    """A copy in which the two most likely classes of `images` trade places: their top-1 changes."""
    out = probs.copy()
    for i in images:
        first, second = np.argsort(-probs[i], kind="stable")[:2]
        out[i, first], out[i, second] = probs[i, second], probs[i, first]
    return out


@pytest.mark.device
def test_identical_outputs_agree_fully(int8_outputs):
    probs, scale = int8_outputs
    result = compare(probs, probs.copy(), scale)
    assert result == {"agreement": 1.0, "n_samples": 500, "top1_differ": 0, "differing": [], "outputs_differ": 0,
                      "max_abs_diff": 0.0, "max_steps": 0.0}


@pytest.mark.device
def test_one_int8_step_is_measured_in_steps_without_changing_top1(int8_outputs):
    probs, scale = int8_outputs
    guest = probs.copy()
    guest[np.arange(0, len(probs), 2), probs.argmax(1)[::2]] += scale  # every other winner one step up: same top-1
    result = compare(probs, guest, scale)
    assert result["agreement"] == 1.0 and result["top1_differ"] == 0 and result["outputs_differ"] == 250
    assert result["max_steps"] == 1.0 and result["max_abs_diff"] == pytest.approx(scale)


@pytest.mark.device
@pytest.mark.parametrize("n_differ, passed", [(5, True), (6, False)])  # 5/500 off = 99.0% agreement: at the limit
def test_agreement_and_verdict_at_the_parity_limit(int8_outputs, n_differ, passed):
    probs, scale = int8_outputs
    top_two = np.sort(probs, axis=1)[:, -2:]
    margins = top_two[:, 1] - top_two[:, 0]
    flipped = np.flatnonzero(margins > 0)[3:3 + 7 * n_differ:7].tolist()  # a tie cannot flip: skip ties
    result = compare(probs, swap_top_two(probs, flipped), scale)
    assert result["top1_differ"] == n_differ and result["differing"] == flipped and result["outputs_differ"] == n_differ
    assert result["agreement"] == pytest.approx(1 - n_differ / 500)
    margins = margins[flipped]
    assert result["max_abs_diff"] == pytest.approx(max(margins))
    assert result["max_steps"] == pytest.approx(max(margins) / scale, abs=1e-3)
    row = Row("Pi 4", "cortex-a72", "tflite_int8", "model_int8.tflite", "tflite", "0" * 64, **result, seconds=1.0,
              host_seconds=0.1, limit=0.99)
    assert row.passed is passed


@pytest.mark.device
def test_outputs_of_another_shape_are_refused(int8_outputs):
    probs, scale = int8_outputs
    with pytest.raises(EdgeMnistError, match="shape"):
        compare(probs, probs[:10], scale)


@pytest.fixture
def world_readable_export():
    """A copy of the tiny export that another user can read (pytest's own temp folders are private to root)."""
    base = Path(tempfile.mkdtemp(prefix="edge-mnist-emulate-test-"))
    os.chmod(base, 0o755)
    out = shutil.copytree(FIXTURES / "device_export", base / "export", copy_function=shutil.copyfile)  # umask modes
    yield out
    shutil.rmtree(base)


# Root's Python lives in a folder only root can read, so the child imports as root, then becomes nobody for good.
AS_NOBODY = ("import os, sys, edge_mnist.cli, edge_mnist.emulate, edge_mnist.pipeline, edge_mnist.report, "
             "edge_mnist.render.tables; "
             "os.setgroups([]); os.setgid(65534); os.setuid(65534); edge_mnist.cli.main(sys.argv[1:])")


@pytest.mark.device
def test_not_root_is_exit_2_naming_the_remedy(world_readable_export, fixture_data_dir):
    args = ["emulate", "--out", world_readable_export, "--data-dir", fixture_data_dir]
    if os.geteuid() == 0:
        proc = subprocess.run([sys.executable, "-c", AS_NOBODY, *map(str, args)], capture_output=True, text=True,
                              timeout=300, cwd=FIXTURES.parent.parent)
    else:
        proc = run_process(args)
    line = one_line_error(proc)
    assert "emulate needs root" in line and "sudo" in line
    assert not (world_readable_export / "emulate.json").exists()


@pytest.mark.device
def test_a_folder_without_a_manifest_is_exit_2(tmp_path, fixture_data_dir):
    proc = run_process(["emulate", "--out", tmp_path, "--dataset", "fashion-mnist", "--data-dir", fixture_data_dir])
    assert "manifest.json: manifest (run `edge-mnist export` first) not found" in one_line_error(proc)


@pytest.mark.device
def test_a_float_only_folder_has_nothing_to_emulate(device_export, fixture_data_dir):
    manifest = json.loads((device_export / "manifest.json").read_text())
    for artifact in [a for a in manifest["artifacts"] if a["precision"] == "int8"]:
        (device_export / artifact["file"]).unlink()
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["precision"] != "int8"]
    manifest["qat"] = None
    (device_export / "manifest.json").write_text(json.dumps(manifest))
    proc = run_process(["emulate", "--out", device_export, "--data-dir", fixture_data_dir])
    assert "no int8 artifact to emulate (run `edge-mnist export --int8`)" in one_line_error(proc)


@pytest.mark.device
def test_an_unknown_target_is_refused_naming_the_known_ones(device_export):
    proc = run_process(["emulate", "--out", device_export, "--cpu", "cortex-a72,cortex-m5"])
    assert proc.returncode == 2 and ("unknown target cortex-m5; choose from pi4 (cortex-a72, bookworm-arm64), pi5 "
                                     "(cortex-a76, bookworm-arm64), pi5-trixie (cortex-a76, trixie-arm64), pi-32bit "
                                     "(cortex-a7, bookworm-armhf), cortex-m4 (mps2-an386)") in proc.stderr


@pytest.mark.slow
def test_emulate_runs_every_int8_artifact_on_an_emulated_pi_4_and_pi_5(device_export, fixture_data_dir):
    if os.geteuid() != 0:
        pytest.skip("emulate needs root (debootstrap, chroot, mounts); CI runs as root")
    runs = cache_dir() / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    proc = run_process(["emulate", "--out", device_export, "--data-dir", fixture_data_dir], timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    int8 = [f.file for f in FORMATS if f.is_int8 and f.runnable and f.key in Manifest.load(device_export).artifacts]
    assert len(int8) >= 4  # PTQ and QAT, TFLite and ONNX at least
    lines = proc.stdout.splitlines()
    for board in ("Pi 4 (cortex-a72)", "Pi 5 (cortex-a76)"):
        for file in int8:
            row = next(line.split() for line in lines if line.startswith(board) and f" {file} " in line)
            assert float(row[4].rstrip("%")) >= 99.0 and row[5] == "500", row
    assert "one-int8-step differences between ARM and x86 kernels are expected" in proc.stdout
    assert "emulation proves correctness, not timing" in proc.stdout
    assert f"PASS: {2 * len(int8)}/{2 * len(int8)}" in proc.stdout
    report = json.loads((device_export / "emulate.json").read_text())
    assert report["verdict"] == "PASS" and report["n_samples"] == 500 and report["parity"] == 0.99
    assert {(r["target"], r["file"]) for r in report["rows"]} == {(c, f) for c in ("pi4", "pi5")
                                                               for f in int8}
    for row in report["rows"]:
        assert row["agreement"] >= 0.99 and row["n_samples"] == 500 and row["passed"], row
    guests = report["guests"]
    assert {g["machine"]["machine"] for g in guests.values()} == {"aarch64"}
    assert "asimddp" in guests["pi5"]["machine"]["flags"]  # the guest read the Pi 5's cpuinfo
    assert "asimddp" not in guests["pi4"]["machine"]["flags"]
    for name, dotprod in (("pi4", False), ("pi5", True)):  # `doctor` inside the guest
        doctor = guests[name]["doctor"]
        assert doctor["architecture"] == "aarch64" and doctor["python"].startswith("3.11.") and "12" in doctor["os"]
        assert doctor["cpu_features"]["neon"] and doctor["cpu_features"]["dotprod"] is dotprod
        versions = {r["name"]: r["version"] for r in doctor["runtimes"]}
        assert versions["tflite"] == metadata.version("ai-edge-litert") and versions["keras"] is None
        assert all(f["runs_here"] for f in doctor["files"] if f["file"] in int8)
    assert set(runs.iterdir()) <= before  # this run's extracted root filesystem is gone


@pytest.mark.slow
def test_emulate_on_trixie_with_python_3_13_and_on_32_bit_pi_os(device_export, fixture_data_dir):
    """pi5-trixie runs every int8 file under Python 3.13; pi-32bit (armhf, tflite-runtime, Debian's numpy) runs
    the .tflite files and lists the ONNX ones as not runnable; `doctor` inside each guest says so too."""
    if os.geteuid() != 0:
        pytest.skip("emulate needs root (debootstrap, chroot, mounts); CI runs as root")
    proc = run_process(["emulate", "--out", device_export, "--data-dir", fixture_data_dir,
                        "--target", "pi5-trixie,pi-32bit"], timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = Manifest.load(device_export)
    int8 = [f.file for f in FORMATS if f.is_int8 and f.runnable and f.key in manifest.artifacts]
    tflite = [f for f in int8 if f.endswith(".tflite")]
    report = json.loads((device_export / "emulate.json").read_text())
    assert report["verdict"] == "PASS"
    assert {(r["target"], r["file"]) for r in report["rows"]} == {("pi5-trixie", f) for f in int8} | \
        {("pi-32bit", f) for f in tflite}
    assert all(r["agreement"] >= 0.99 and r["n_samples"] == 500 for r in report["rows"])
    assert set(report["setup"]["distros"]["bookworm-armhf"]["not_runnable"]) == set(int8) - set(tflite)
    assert "not runnable there" in proc.stderr
    trixie, armhf = (report["guests"][name]["doctor"] for name in ("pi5-trixie", "pi-32bit"))
    assert trixie["python"].startswith("3.13.") and trixie["architecture"] == "aarch64"
    assert "trixie" in trixie["os"] or "13" in trixie["os"]
    assert trixie["cpu_features"]["dotprod"] and trixie["cpu_features"]["neon"]
    runtimes = {r["name"]: r for r in trixie["runtimes"]}
    assert runtimes["tflite"]["version"] == metadata.version("ai-edge-litert")
    assert runtimes["onnx"]["version"] == metadata.version("onnxruntime")
    assert armhf["architecture"] == "armv7l" and armhf["python"].startswith("3.11.") and "12" in armhf["os"]
    assert armhf["cpu_features"]["neon"] and not armhf["cpu_features"]["dotprod"]
    runtimes = {r["name"]: r for r in armhf["runtimes"]}
    assert runtimes["tflite"]["package"] == "tflite_runtime" and runtimes["tflite"]["version"] == "2.14.0"
    assert runtimes["onnx"]["version"] is None and "pip install onnxruntime" in runtimes["onnx"]["install"]
    files = {f["file"]: f["runs_here"] for f in armhf["files"]}
    assert all(files[f] for f in tflite) and not any(files[f] for f in set(int8) - set(tflite))


@pytest.mark.slow
def test_info_check_bench_and_predict_run_on_32_bit_pi_os(device_export, fixture_data_dir, tmp_path):
    """On armv7l with tflite-runtime and Debian's numpy and Pillow (no onnxruntime, no ai-edge-litert) the CLI
    works as a user there runs it: the .tflite files gated and timed, the ONNX ones listed as not runnable."""
    if os.geteuid() != 0:
        pytest.skip("emulate needs root (debootstrap, chroot, mounts); CI runs as root")
    from PIL import Image

    from edge_mnist.emulate.guest import cli_in_guest, guest
    from edge_mnist.emulate.images import DEFAULT_MIRROR, build_rootfs, build_site, require_environment
    from edge_mnist.emulate.targets import PI_TARGETS

    target = PI_TARGETS["pi-32bit"]
    cache = cache_dir()
    require_environment(cache, [target.distro], print)
    tarball = build_rootfs(cache, target.distro, apt_mirror() or DEFAULT_MIRROR, print)
    site, _ = build_site(cache, target.distro, print)
    shoe = tmp_path / "item.png"
    Image.fromarray(load_dataset("fashion-mnist", fixture_data_dir).x_test[7]).save(shoe)
    host = run_process(["predict", "--model", device_export / "model_int8.tflite", shoe, "--json"])
    with guest(cache, tarball, site, target.distro) as g:
        work, w = g.run / "work", "/opt/edge-mnist/work"
        shutil.copytree(device_export, work / "export")
        shutil.copytree(fixture_data_dir, work / "data")
        shutil.copy(shoe, work / "item.png")
        ran = {name: cli_in_guest(g, target, device_export, args) for name, args in (
            ("info", ["info", "--out", f"{w}/export"]),
            ("check", ["check", "--out", f"{w}/export", "--data-dir", f"{w}/data", "--skip-qat-source"]),
            ("bench", ["bench", "--out", f"{w}/export", "--data-dir", f"{w}/data", "--runs", "50", "--warmup", "5",
                       "--throughput-seconds", "0"]),
            ("predict", ["predict", "--model", f"{w}/export/model_int8.tflite", f"{w}/item.png", "--json"]))}
        bench = json.loads((work / "export" / "bench.json").read_text())
    for name, proc in ran.items():
        assert proc.returncode == 0, (name, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "model_int8.tflite" in ran["info"].stdout
    assert "PASS" in ran["check"].stdout and "model_int8.onnx: not runnable on armv7l" in ran["check"].stdout
    assert "model_int8_micro.c: not regenerated and compared here" in ran["check"].stdout
    timed = {row["file"] for row in bench["rows"]}
    assert {"model_int8.tflite", "model_qat_int8.tflite", "model_float32.tflite"} <= timed
    assert not any(f.endswith((".onnx", ".ort")) for f in timed)
    assert json.loads(ran["predict"].stdout)["label"] == json.loads(host.stdout)["label"]


def _row(manifest: Manifest, key: str, **names) -> dict:
    """An emulate.json row of `key` as an earlier run wrote it (`names`: its board/cpu/target fields)."""
    artifact = manifest.artifacts[key]
    return {"key": key, "file": artifact.file, "runtime": artifact.fmt.runtime, "sha256": artifact.sha256,
            "agreement": 1.0, "n_samples": 500, "top1_differ": 0, "differing": [], "outputs_differ": 0,
            "max_abs_diff": 0.0, "max_steps": 0.0, "seconds": 1.0, "host_seconds": 0.1, "limit": 0.99,
            "passed": True, **names}


@pytest.mark.device
@pytest.mark.parametrize("setup", [{"distros": {"bookworm-armhf": {"arch": "armhf"}}}, {"distros": 5}, "junk"])
def test_rows_of_targets_not_run_are_kept_by_target_name_also_from_older_files(device_export, setup):
    """Rows written before targets had names (cpu only) count as pi4/pi5; pi5-trixie rows are not pi5's."""
    from edge_mnist.emulate import _kept

    manifest = Manifest.load(device_export)
    rows = [_row(manifest, "tflite_int8", board="Pi 4", cpu="cortex-a72"),
            _row(manifest, "tflite_int8", board="Pi 5 trixie", cpu="cortex-a76", target="pi5-trixie"),
            _row(manifest, "onnx_int8", board="Pi 5", cpu="cortex-a76", target="pi5"),
            "x", 5, _row(manifest, "onnx_int8", board="Pi 4", cpu=["cortex-a72"]),  # damaged rows: left out
            _row(manifest, "onnx_int8", board="Pi 4", cpu="cortex-a72", measured=[1])]
    (device_export / "emulate.json").write_text(json.dumps({"rows": rows, "guests": {"pi4": {}, "pi5": {}},
                                                            "setup": setup}))
    kept, guests, kept_setup = _kept(device_export, manifest, {"pi5"}, 0.99)
    if not isinstance(setup, dict) or not isinstance(setup["distros"], dict):
        assert (kept, guests, kept_setup) == ([], {}, {})  # an unreadable record keeps nothing
        return
    assert [(r.target, r.key) for r in kept] == [("pi4", "tflite_int8"), ("pi5-trixie", "tflite_int8")]
    assert set(guests) == {"pi4"} and kept_setup["distros"] == setup["distros"]
