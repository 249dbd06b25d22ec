"""The emulate stage: every int8 artifact on an emulated Raspberry Pi 4 / Pi 5, compared with this x86-64 host.

The int8 kernels of LiteRT (XNNPACK) and ONNX Runtime differ between ARM and x86, so an artifact
that passes the gate here could still answer differently on a Pi. Without owning one, the
artifacts are run on arm64 under qemu-user in a Debian root filesystem, by the same runner code
and the same runtime versions as on the host, and top-1 agreement with the host is gated.
Emulation proves correctness, not timing.

The root filesystem (debootstrap) and the arm64 install of edge-mnist's runtime dependencies
(pip cross-installs the wheels on the host; no pip runs under emulation) are built once into a
user cache folder. Each run extracts the root filesystem into a temporary folder, copies this
edge_mnist package in, and runs a worker inside a chroot in a private mount namespace (unshare),
so its mounts vanish with it on success, crash or Ctrl-C. Two qemu traps are handled: the
runtimes crash on the host's x86 /proc/cpuinfo (an ARM one is bind-mounted over it, with sysfs
for their CPU detection), and qemu's default CPU model `max` miscomputes int8 TFLite (QEMU_CPU
names the Pi's core).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.bench import machine_info
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_json, writable_folder
from edge_mnist.core.jsonio import now
from edge_mnist.core.lock import folder_lock
from edge_mnist.core.progress import step
from edge_mnist.data import Dataset, check_dataset, to_float
from edge_mnist.emulate.guest import guest, predict_all, run_on
from edge_mnist.emulate.images import (
    DEFAULT_MIRROR,
    SUITE,
    apt_mirror,
    build_rootfs,
    build_site,
    cache_dir,
    locked,
    qemu_version,
    require_environment,
    sweep,
)
from edge_mnist.emulate.targets import CPUS, DEFAULT_CPUS, NOTE, known_cpus
from edge_mnist.folder.layout import EMULATE_FILE, MANIFEST_FILE
from edge_mnist.folder.records import SCHEMA, Manifest, tool_versions
from edge_mnist.folder.verify import refuse_unlisted
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
    passed: bool = field(init=False)

    def __post_init__(self):
        """Decide the row and keep plain Python types (for JSON)."""
        self.agreement, self.max_abs_diff = float(self.agreement), float(self.max_abs_diff)
        self.passed = bool(self.agreement >= self.limit - EPS)


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
                cpus: tuple[str, ...], env: tuple, host_seconds: dict, host: tuple, parity: float,
                progress: Callable[[str], None], shown) -> tuple[list, dict]:
    """Run the artifacts on each emulated CPU and compare with the host's outputs: (rows, guest reports)."""
    cache, tarball, site = env
    host_outputs, scales = host
    rows, guests = [], {}
    with guest(cache, tarball, site) as g:
        for name in cpus:
            cpu = CPUS[name]
            progress(f"running {len(keys)} int8 artifacts on an emulated {cpu.board} ({cpu.name}, qemu-user)")
            outputs, report = run_on(g, cpu, out, keys, images, threads)
            guests[cpu.name] = {"board": cpu.board, **report}
            for key in keys:
                artifact = manifest.artifacts[key]
                rows.append(Row(cpu.board, cpu.name, key, artifact.file, artifact.fmt.runtime, artifact.sha256,
                                **compare(host_outputs[key], outputs[key], scales[key]),
                                seconds=report["seconds"][key], host_seconds=host_seconds[key], limit=parity))
            shown.update(1)
    return rows, guests


def emulate(out: Path, dataset: Dataset, cpus: tuple[str, ...] = DEFAULT_CPUS, threads: int = 1,
            parity: float = 0.99, mirror: str | None = None,
            progress: Callable[[str], None] = print, *, wait: bool = False) -> Emulation:
    """Run every int8 artifact of DIR on each emulated CPU and on this host, and write DIR/emulate.json atomically.

    The caller decides pass/fail from the result (Emulation.passed). DIR's lock is held throughout
    (core.lock; `wait` waits for another writer).
    """
    out = Path(out).resolve()
    with folder_lock(out, "emulate", wait):
        manifest = Manifest.load(out)
        refuse_unlisted(out, manifest)
        check_dataset(manifest, dataset, out / MANIFEST_FILE)
        keys = [k for k, a in manifest.artifacts.items() if a.fmt.is_int8 and a.fmt.runnable]
        if not keys:
            raise EdgeMnistError(f"{out}: no int8 artifact to emulate (run `edge-mnist export --int8`)")
        known_cpus(cpus)
        cache = cache_dir()
        require_environment(cache, progress)
        writable_folder(out)
        images = to_float(dataset.x_test)
        with step("emulate", 3 + len(cpus), unit="steps") as shown:
            progress(f"running {len(keys)} int8 artifacts on this x86-64 host ({len(images)} images)")
            host, host_seconds, scales = predict_all(out, manifest, keys, images, threads)
            shown.update(1)
            mirror = mirror or apt_mirror() or DEFAULT_MIRROR
            with locked(cache):
                sweep(cache / "runs")
                tarball = build_rootfs(cache, mirror, progress)
                shown.update(1)
                site, pins = build_site(cache, progress)
                shown.update(1)
            rows, guests = _run_guests(out, manifest, keys, images, threads, cpus, (cache, tarball, site), host_seconds,
                               (host, scales), parity, progress, shown)
        setup = {"suite": SUITE, "mirror": mirror, "qemu": qemu_version(), "guest_packages": pins,
                 "cache": str(cache), "threads": threads}
        result = Emulation(dataset.name, len(images), parity, rows, {"machine": machine_info(),
                                                                    "versions": tool_versions()}, guests, setup)
        atomic_write_json(out / EMULATE_FILE, result.to_json())
        return result


__all__ = ["Emulation", "Row", "compare", "emulate"]
