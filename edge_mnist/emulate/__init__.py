"""The emulate stage: every int8 artifact on emulated Raspberry Pis (Pi 4 and Pi 5 on bookworm arm64, Pi 5 on
trixie with Python 3.13, 32-bit Pi OS with tflite-runtime), compared with this x86-64 host, and the
interpreter-free C on emulated Cortex-M boards (emulate.cortex_m), compared with TFLM byte for byte.

The int8 kernels of LiteRT (XNNPACK) and ONNX Runtime differ between ARM and x86, so an artifact
that passes the gate here could still answer differently on a Pi. Without owning one, the
artifacts are run on arm64 under qemu-user in a Debian root filesystem, by the same runner code
and the same runtime versions as on the host, and top-1 agreement with the host is gated.
Emulation proves correctness, not timing.

Each Debian release and architecture (targets.Distro) has its root filesystem (debootstrap) and
its install of edge-mnist's runtime dependencies (pip cross-installs the wheels on the host; no pip
runs under emulation) built once into a user cache folder. Each run extracts the root filesystem into
a temporary folder, copies this edge_mnist package in, and runs a worker inside a chroot in a
private mount namespace (unshare), so its mounts vanish with it on success, crash or Ctrl-C.
Two qemu traps are handled: the runtimes crash on the host's x86 /proc/cpuinfo (an ARM one is
bind-mounted over it, with sysfs for their CPU detection), and qemu's default CPU model `max`
miscomputes int8 TFLite (QEMU_CPU names the Pi's core).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.config import EmulateConfig
from edge_mnist.core.files import atomic_write_json, writable_folder
from edge_mnist.core.jsonio import now
from edge_mnist.core.machine import machine_info
from edge_mnist.core.progress import step
from edge_mnist.data import Dataset, to_float
from edge_mnist.emulate.cortex_m import chosen_images, micro_keys, reference_outputs, require_toolchain, run_board
from edge_mnist.emulate.guest import guest, predict_all, run_on
from edge_mnist.emulate.images import (
    DEFAULT_MIRROR,
    apt_mirror,
    build_rootfs,
    build_site,
    cache_dir,
    locked,
    qemu_version,
    require_environment,
    sweep,
)
from edge_mnist.emulate.status import debootstrap_status, watching, worker_status
from edge_mnist.emulate.targets import BOARDS, CPU_ALIASES, NOTE, PI_TARGETS, PiTarget, split_targets
from edge_mnist.folder.layout import EMULATE_FILE
from edge_mnist.folder.opener import Folder
from edge_mnist.folder.records import SCHEMA, Manifest, tool_versions
from edge_mnist.gate import EPS

SHOWN_INDICES = 20


@dataclass
class Row:
    """One artifact on one emulated CPU, against the same artifact on the x86-64 host."""

    board: str
    cpu: str
    key: str
    file: str
    runtime: str
    sha256: str
    agreement: float
    n_samples: int
    top1_differ: int
    differing: list[int]
    outputs_differ: int
    max_abs_diff: float
    max_steps: float | None
    seconds: float
    host_seconds: float
    limit: float
    # what the outputs are compared with: the same file on the host, or TFLM (then every byte must be equal)
    reference: str = "x86-64 host"
    litert_agreement: float | None = None  # a Cortex-M run's top-1 agreement with LiteRT as well
    subset: str = ""  # which test images, when not all of them
    measured: dict | None = None  # a Cortex-M build's flash, RAM and instructions per inference
    target: str = ""  # the --target name (rows written before targets had names: their cpu)
    passed: bool = field(init=False)

    def __post_init__(self):
        """Decide the row and keep plain Python types (for JSON); a row of the wrong types (read back from a
        damaged emulate.json) is a ValueError."""
        if not all(isinstance(v, str) for v in (self.board, self.cpu, self.key, self.file, self.sha256, self.target)) \
                or not isinstance(self.measured, (dict, type(None))):
            raise ValueError("emulate row with fields of the wrong type")
        self.agreement, self.max_abs_diff = float(self.agreement), float(self.max_abs_diff)
        self.passed = bool(self.agreement >= self.limit - EPS
                           and (self.litert_agreement is None or self.litert_agreement >= self.limit - EPS)
                           and (self.reference != "tflm" or self.outputs_differ == 0)
                           and (self.measured or {}).get("no_dsp_same_outputs", True))


def compare(host: np.ndarray, guest: np.ndarray, output_scale: float) -> dict:
    """Top-1 agreement and output difference of the emulated run against the host's: images whose top-1
    differs (the first few listed), images whose outputs differ at all, and the largest difference, also in
    int8 steps when `output_scale` > 0 (an integer output grid)."""
    if host.shape != guest.shape:
        raise EdgeMnistError(f"the emulated run returned outputs of shape {guest.shape}, the host {host.shape}")
    differ = np.flatnonzero(host.argmax(1) != guest.argmax(1))
    gap = np.abs(host.astype(np.float64) - guest.astype(np.float64)).max(1)
    diff = float(gap.max())
    return {"agreement": 1.0 - len(differ) / len(host), "n_samples": len(host), "top1_differ": len(differ),
            "differing": differ[:SHOWN_INDICES].tolist(), "outputs_differ": int((gap > 0).sum()), "max_abs_diff": diff,
            "max_steps": round(diff / output_scale, 3) if output_scale > 0 else None}


@dataclass
class Emulation:
    """What `emulate` measured: one row per emulated CPU and int8 artifact, and how."""

    dataset: str
    n_samples: int
    parity: float
    rows: list[Row]
    host: dict
    guests: dict
    setup: dict
    created: str = field(default_factory=now)

    @property
    def failed(self) -> list[Row]:
        """Rows below the agreement limit."""
        return [r for r in self.rows if not r.passed]

    @property
    def passed(self) -> bool:
        """True when every artifact agrees with the host on every emulated CPU."""
        return not self.failed

    def to_json(self) -> dict:
        """JSON object for DIR/emulate.json."""
        return {"schema": SCHEMA, "verdict": "PASS" if self.passed else "FAIL", "created": self.created,
                "dataset": self.dataset, "n_samples": self.n_samples, "parity": self.parity, "note": NOTE,
                "host": self.host, "guests": self.guests, "setup": self.setup, "rows": [asdict(r) for r in self.rows]}


def _run_guests(out: Path, manifest: Manifest, keys: list[str], images: np.ndarray, threads: int,
                targets: list[PiTarget], env: tuple, host: tuple, parity: float,
                progress: Callable[[str], None], shown) -> tuple[list, dict]:
    """Run the artifacts on each emulated Pi target of one distro and compare with the host's outputs:
    (rows, guest reports)."""
    cache, tarball, site, distro = env
    host_outputs, host_seconds, scales = host
    rows, guests = [], {}
    with guest(cache, tarball, site, distro) as g:
        for target in targets:
            progress(f"running {len(keys)} int8 artifacts on an emulated {target.board} ({target.cpu}, "
                     f"{distro.suite} {distro.arch}, qemu-user)")
            with watching(shown, lambda: worker_status(g, target)):
                outputs, report = run_on(g, target, out, keys, images, threads)
            guests[target.name] = {"board": target.board, "cpu": target.cpu, "distro": distro.name,
                                   "note": target.note, **report}
            for key in keys:
                artifact = manifest.artifacts[key]
                rows.append(Row(target.board, target.cpu, key, artifact.file, artifact.fmt.runtime, artifact.sha256,
                                **compare(host_outputs[key], outputs[key], scales[key]),
                                seconds=report["seconds"][key], host_seconds=host_seconds[key], limit=parity,
                                target=target.name))
            shown.update(1)
    return rows, guests


def _not_runnable(manifest: Manifest, keys: list[str], runtimes: tuple[str, ...]) -> dict[str, str]:
    """{file: why} for the int8 files whose runtime has no install on a distro (ONNX on 32-bit Pi OS)."""
    formats = {manifest.artifacts[k].file: manifest.artifacts[k].fmt for k in keys}
    return {file: f"no {fmt.runtime} runtime for this OS and architecture" for file, fmt in formats.items()
            if fmt.runtime not in runtimes}


def _run_pi(out: Path, manifest: Manifest, dataset: Dataset, names: tuple[str, ...], threads: int, parity: float,
            mirror: str | None, progress: Callable[[str], None]) -> tuple[list[Row], dict, dict]:
    """Every int8 file of DIR on the emulated Pi targets (qemu-user, needs root), one distro (root filesystem
    and runtime install) at a time: (rows, guests, setup)."""
    keys = [k for k, a in manifest.artifacts.items() if a.fmt.is_int8 and a.fmt.runnable]
    if not keys:
        raise EdgeMnistError(f"{out}: no int8 artifact to emulate (run `edge-mnist export --int8`)")
    targets = [PI_TARGETS[name] for name in names]
    distros = list(dict.fromkeys(t.distro for t in targets))
    cache = cache_dir()
    require_environment(cache, distros, progress)
    writable_folder(out)
    images = to_float(dataset.x_test)
    rows, guests, setup = [], {}, {"threads": threads, "cache": str(cache), "distros": {}}
    with step("emulate", 1 + 2 * len(distros) + len(targets), unit="steps", eta=False) as shown:
        progress(f"running {len(keys)} int8 artifacts on this x86-64 host ({len(images)} images)")
        host = predict_all(out, manifest, keys, images, threads)
        shown.update(1)
        setup["mirror"] = mirror = mirror or apt_mirror() or DEFAULT_MIRROR
        for distro in distros:
            with locked(cache):
                sweep(cache / "runs")
                with watching(shown, lambda: debootstrap_status(cache, distro)):
                    tarball = build_rootfs(cache, distro, mirror, progress)
                shown.update(1)
                site, pins = build_site(cache, distro, progress)
                shown.update(1)
            skipped = _not_runnable(manifest, keys, distro.runtimes)
            if skipped:
                progress(f"{distro.name}: not runnable there: {', '.join(skipped)} ({next(iter(skipped.values()))})")
            setup["distros"][distro.name] = {"suite": distro.suite, "arch": distro.arch, "python": distro.python,
                                             "qemu": qemu_version(distro.qemu), "guest_packages": pins,
                                             "not_runnable": skipped}
            runnable = [k for k in keys if manifest.artifacts[k].file not in skipped]
            new_rows, new_guests = _run_guests(out, manifest, runnable, images, threads,
                                               [t for t in targets if t.distro == distro],
                                               (cache, tarball, site, distro), host, parity,
                                               progress, shown)
            rows, guests = rows + new_rows, {**guests, **new_guests}
    return rows, guests, setup


def _run_boards(out: Path, manifest: Manifest, dataset: Dataset, boards: tuple[str, ...], count: int | None,
                parity: float, progress: Callable[[str], None]) -> tuple[list[Row], dict, dict]:
    """The interpreter-free C of DIR on the emulated Cortex-M boards (qemu-system-arm): (rows, guests, setup).
    Each row compares the board's int8 outputs with TFLM's (LiteRT's where TFLM is not installed) and
    records its top-1 agreement with LiteRT as well."""
    keys = micro_keys(out, manifest)
    versions = require_toolchain()
    writable_folder(out)
    indices = chosen_images(dataset, count)
    x = to_float(dataset.x_test[indices])
    subset = "" if len(indices) == len(dataset.y_test) else \
        f"{len(indices)} of {len(dataset.y_test):,} images, stratified by class"
    rows = []
    with step("emulate", len(boards) * len(keys), unit="builds") as shown, \
            tempfile.TemporaryDirectory(prefix="edge-mnist-cortex-m-") as work:
        for key in keys:
            inputs, references = reference_outputs(out, manifest, key, x)
            reference = "tflm" if "tflm" in references else "litert"
            artifact = manifest.artifacts[key]
            for name in boards:
                board = BOARDS[name]
                found = run_board(board, out, manifest, key, inputs, references["litert"].shape[1], Path(work),
                                  progress)
                litert = compare(references["litert"], found["outputs"], 1.0)
                rows.append(Row(board.label, board.name, key, artifact.file, "micro-c", artifact.sha256,
                                **compare(references[reference], found["outputs"], 1.0),
                                seconds=found["seconds"], host_seconds=0.0, limit=parity, reference=reference,
                                litert_agreement=litert["agreement"], subset=subset, measured=found["figures"],
                                target=board.name))
                shown.update(1)
    guests = {name: {"board": BOARDS[name].label, "machine": BOARDS[name].machine,
                     "cflags": " ".join(BOARDS[name].cflags)} for name in boards}
    return rows, guests, {"toolchain": versions, "cortex_m_images": len(indices)}


def _kept(out: Path, manifest: Manifest, targets: set[str], parity: float) -> tuple[list[Row], dict, dict]:
    """(rows, guests, setup) of DIR's previous emulate.json for targets not run this time, while their
    artifact is unchanged; each row judged again at today's `parity`. An unreadable record or row is left out."""
    try:
        previous = json.loads((out / EMULATE_FILE).read_text())
        rows, guests = previous.get("rows", []), dict(previous.get("guests", {}))
        setup = dict(previous.get("setup", {}))
        setup["distros"] = dict(setup.get("distros", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        return [], {}, {}
    kept = []
    for raw in rows if isinstance(rows, list) else []:
        try:
            row = Row(**{**{k: v for k, v in raw.items() if k != "passed"}, "limit": parity})
        except (TypeError, ValueError, AttributeError):
            continue
        row.target = row.target or CPU_ALIASES.get(row.cpu, row.cpu)
        current = manifest.artifacts.get(row.key)
        if row.target not in targets and current is not None and current.sha256 == row.sha256:
            kept.append(row)
    names = {row.target for row in kept}
    return kept, {k: v for k, v in guests.items() if k in names}, setup


def emulate(folder: Folder, config: EmulateConfig = EmulateConfig(),
            progress: Callable[[str], None] = print) -> Emulation:
    """Run DIR's int8 artifacts on each emulated target of `config` and on this host, and write DIR/emulate.json
    atomically.

    Pi targets (targets.PI_TARGETS) run every int8 file their OS has a runtime for under qemu-user (the others
    are listed in setup as not runnable there); Cortex-M targets (targets.BOARDS)
    run the interpreter-free C on config.micro_images test images (stratified; 0 for all) under
    qemu-system-arm. Rows of targets not run this time are kept while their artifact is unchanged.
    The caller decides pass/fail from the result (Emulation.passed) and holds DIR's lock
    (folder.opener.open_folder).
    """
    out, dataset, manifest, config = folder.path.resolve(), folder.dataset, folder.exported, config.validate()
    pis, boards = split_targets(tuple(config.targets))
    threads, parity, mirror, micro_images = config.threads, config.parity, config.mirror, config.micro_images or None
    rows, guests, setup = [], {}, {}
    for chosen, runner in ((boards, lambda: _run_boards(out, manifest, dataset, boards, micro_images, parity,
                                                          progress)),
                           (pis, lambda: _run_pi(out, manifest, dataset, pis, threads, parity, mirror,
                                                 progress))):
        if chosen:
            new_rows, new_guests, new_setup = runner()
            rows, guests, setup = rows + new_rows, {**guests, **new_guests}, {**setup, **new_setup}
    kept, kept_guests, kept_setup = _kept(out, manifest, {*pis, *boards}, parity)
    distros = {**kept_setup.get("distros", {}), **setup.get("distros", {})}
    rows, guests, setup = kept + rows, {**kept_guests, **guests}, {**kept_setup, **setup, "distros": distros}
    result = Emulation(dataset.name, len(dataset.x_test), parity, rows,
                       {"machine": machine_info().to_json(), "versions": tool_versions()}, guests, setup)
    atomic_write_json(out / EMULATE_FILE, result.to_json())
    return result


__all__ = ["Emulation", "Row", "compare", "emulate"]
