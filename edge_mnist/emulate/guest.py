"""Inside the emulated Pi: the chroot in a private mount namespace, the worker that runs every artifact
there (and `doctor`), its progress, and its predictions brought back."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.machine import Machine, machine_info
from edge_mnist.emulate.images import BUILD_TIMEOUT_S, remove_tree, run_logged
from edge_mnist.emulate.targets import CPUS, Distro, PiTarget, cpuinfo
from edge_mnist.folder.records import Manifest, tool_versions
from edge_mnist.folder.verify import open_artifact

WORKER_TIMEOUT_S = 3600
GUEST_DIR = "/opt/edge-mnist"  # inside the chroot: site (the wheels), src (edge_mnist), out, work
CHUNK = 100  # images per call, so the worker can report how far it is
PROGRESS_FILE = "progress.json"


@dataclass
class Guest:
    """An extracted root filesystem for one run, with edge_mnist copied in and the mount points made."""

    cache: Path
    run: Path
    root: Path
    site: Path
    distro: Distro

    def command(self, target: PiTarget, out: Path, call: str) -> list[str]:
        """The host command running Python code `call` on `target` (writing the target's ARM cpuinfo into the
        run folder first): a private mount namespace (mounts die with it), proc with that cpuinfo and sysfs
        (the runtimes' CPU detection reads both, else they crash or fall back to generic kernels), the
        artifact folder read-only, then chroot with QEMU_CPU pinned."""
        r, g = shlex.quote(str(self.root)), GUEST_DIR
        cpuinfo_file = self.run / f"cpuinfo-{target.name}"
        cpuinfo_file.write_text(cpuinfo(CPUS[target.cpu], os.cpu_count() or 1))
        cpuinfo_file = shlex.quote(str(cpuinfo_file))
        env = {"QEMU_CPU": target.cpu, "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
               "PYTHONPATH": f"{g}/src:{g}/site", "PYTHONNOUSERSITE": "1"}
        lines = ["set -e",
                 f"mount -t proc proc {r}/proc",
                 f"mount --bind {cpuinfo_file} {r}/proc/cpuinfo",
                 f"mount -t sysfs -o ro sysfs {r}/sys",
                 f"mount --bind {shlex.quote(str(out))} {r}{g}/out",
                 f"mount -o remount,bind,ro {r}{g}/out",
                 f"mount --bind {shlex.quote(str(self.site))} {r}{g}/site",
                 f"mount -o remount,bind,ro {r}{g}/site",
                 f"mount --bind {shlex.quote(str(self.run / 'work'))} {r}{g}/work",
                 "exec env -i " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
                 + f" {shlex.quote(shutil.which('chroot') or 'chroot')} {r} python3 -c {shlex.quote(call)}"]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)]


@contextmanager
def guest(cache: Path, tarball: Path, site: Path, distro: Distro) -> Iterator[Guest]:
    """Extract the root filesystem into a run folder of the cache and copy edge_mnist in; removed afterwards,
    also on error or Ctrl-C."""
    run = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=cache / "runs"))
    try:
        root = run / "root"
        root.mkdir()
        (run / "work").mkdir()
        log = cache / f"extract-{distro.name}.log"
        log.unlink(missing_ok=True)
        run_logged(["tar", "-C", str(root), "--numeric-owner", "-xzf", str(tarball)], log,
                   BUILD_TIMEOUT_S, f"extracting {tarball}", f"delete {tarball} to rebuild it")
        for sub in ("out", "site", "work", "src"):
            (root / GUEST_DIR.lstrip("/") / sub).mkdir(parents=True, exist_ok=True)
        package = Path(__file__).resolve().parents[1]  # the edge_mnist package this module is part of
        shutil.copytree(package, root / GUEST_DIR.lstrip("/") / "src" / package.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
        yield Guest(cache, run, root, site, distro)
    finally:
        remove_tree(run)


def run_on(g: Guest, target: PiTarget, out: Path, keys: list[str], images: np.ndarray,
           threads: int) -> tuple[dict, dict]:
    """Run the worker on one emulated Pi target: (probabilities per key, the worker's report)."""
    work = g.run / "work"
    for stale in work.iterdir():
        if stale.is_dir() and not stale.is_symlink():
            remove_tree(stale)
        else:
            stale.unlink()
    np.save(work / "images.npy", images)
    (work / "keys.json").write_text(json.dumps(keys))
    log = g.cache / f"worker-{target.name}.log"  # kept after the run folder is gone
    log.unlink(missing_ok=True)
    call = f"from edge_mnist.emulate.guest import worker; worker({GUEST_DIR + '/work'!r}, {threads})"
    run_logged(g.command(target, out, call), log, WORKER_TIMEOUT_S,
               f"the {g.distro.machine} worker on {target.name} ({target.cpu})")
    report = json.loads((work / "report.json").read_text())
    with np.load(work / "outputs.npz") as arrays:
        outputs = {k: arrays[k] for k in keys}
    ran_on = Machine.from_json(report.get("machine"), f"{work / 'report.json'}: machine").machine
    if ran_on != g.distro.machine:
        raise EdgeMnistError(f"the worker on {target.name} ran on {ran_on}, not {g.distro.machine}")
    return outputs, report


def cli_in_guest(g: Guest, target: PiTarget, out: Path, args: list[str],
                 timeout: float = WORKER_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`edge-mnist ARGS` run inside the guest on `target`, as a user of that device would run it: the folder `out`
    is read-only at /opt/edge-mnist/out, the run's work folder writable at /opt/edge-mnist/work. For checking the
    device install (bench, check, predict, info on 32-bit Pi OS); exit code and output are returned."""
    call = f"from edge_mnist.cli import main; main({list(map(str, args))!r})"
    return subprocess.run(g.command(target, out, call), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def worker_progress(g: Guest) -> dict | None:
    """How far the running worker is ({file, done, total, index, files, seconds}); None before it starts."""
    try:
        state = json.loads((g.run / "work" / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and set(state) >= {"file", "done", "total", "index", "files",
                                                                "seconds"} else None


def predict_all(out: Path, manifest: Manifest, keys: list[str], images: np.ndarray, threads: int,
                report: Callable[[dict], None] = lambda state: None
                ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    """Probabilities, seconds and output scale of each artifact, opened verified (the same code on host and guest);
    `report` hears after every CHUNK images how far the run is."""
    outputs, seconds, scales = {}, {}, {}
    for index, key in enumerate(keys):
        runner = open_artifact(out, manifest, key, threads)
        parts, spent = [], 0.0
        for first in range(0, len(images), CHUNK):
            start = time.perf_counter()
            parts.append(runner.predict(images[first:first + CHUNK]))
            spent += time.perf_counter() - start  # the predictions alone, not the progress file's writes
            report({"file": manifest.artifacts[key].file, "done": first + len(parts[-1]), "total": len(images),
                    "index": index, "files": len(keys), "seconds": spent})
        outputs[key] = np.concatenate(parts)
        seconds[key] = spent
        scales[key] = float(runner.output_scale)
    return outputs, seconds, scales


def worker(work: str, threads: int) -> None:
    """Guest side, inside the chroot: run the listed artifacts of the read-only folder on the images, write
    outputs.npz and report.json (with `edge-mnist doctor`'s view of the guest and folder) for the host, and
    progress.json as it goes. An expected failure is one line and exit 2."""
    from edge_mnist.doctor import diagnose

    work_dir = Path(work)

    def report(state: dict) -> None:
        """Replace progress.json whole, so the host never reads half of it."""
        (work_dir / (PROGRESS_FILE + ".tmp")).write_text(json.dumps(state))
        os.replace(work_dir / (PROGRESS_FILE + ".tmp"), work_dir / PROGRESS_FILE)

    try:
        out = work_dir.parent / "out"
        keys = json.loads((work_dir / "keys.json").read_text())
        outputs, seconds, _ = predict_all(out, Manifest.load(out), keys, np.load(work_dir / "images.npy"), threads,
                                          report)
        np.savez(work_dir / "outputs.npz", **outputs)
        try:
            doctor = diagnose(out).to_json()
        except Exception as exc:  # the diagnosis is a record beside the outputs: its failure must not lose them
            doctor = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        (work_dir / "report.json").write_text(json.dumps({"seconds": seconds, "machine": machine_info().to_json(),
                                                          "versions": tool_versions(), "doctor": doctor}))
    except EdgeMnistError as exc:
        print(f"edge-mnist: error: {exc}", file=sys.stderr)
        sys.exit(2)
