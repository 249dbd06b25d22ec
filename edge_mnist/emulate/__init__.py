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

import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edge_mnist.bench import machine_info
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import atomic_write_json, writable_folder
from edge_mnist.core.jsonio import now
from edge_mnist.core.progress import step
from edge_mnist.data import Dataset, check_dataset, to_float
from edge_mnist.folder.layout import EMULATE_FILE, MANIFEST_FILE
from edge_mnist.folder.records import SCHEMA, Manifest, tool_versions
from edge_mnist.folder.verify import open_artifact, refuse_unlisted
from edge_mnist.gate import EPS

SUITE = "bookworm"  # Raspberry Pi OS 12 is bookworm: the same glibc and Python 3.11 as the device
GUEST_PYTHON = "3.11"
GUEST_GLIBC_MINOR = 36  # bookworm's glibc 2.36: the newest manylinux wheel tag the guest can run
DEFAULT_MIRROR = "http://deb.debian.org/debian"
INSTALL_HINT = "apt-get install qemu-user-static debootstrap binfmt-support"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BUILD_TIMEOUT_S = 3600
WORKER_TIMEOUT_S = 3600
GUEST_DIR = "/opt/edge-mnist"  # inside the chroot: site (the wheels), src (edge_mnist), out, work
SHOWN_INDICES = 20
NOTE = ("ties and one-int8-step differences between ARM and x86 kernels are expected; emulation proves "
        "correctness, not timing (qemu's times are not a Pi's: time on the device with `edge-mnist bench`)")


@dataclass(frozen=True)
class Cpu:
    """An emulated core: qemu's CPU model and the /proc/cpuinfo fields of the board that has it."""

    name: str
    board: str
    model: str
    variant: str
    part: str
    revision: int
    features: str


CPUS: dict[str, Cpu] = {c.name: c for c in (
    Cpu("cortex-a72", "Pi 4", "Raspberry Pi 4 Model B", "0x0", "0xd08", 3, "fp asimd evtstrm crc32 cpuid"),
    Cpu("cortex-a76", "Pi 5", "Raspberry Pi 5 Model B", "0x4", "0xd0b", 1,
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
)}
DEFAULT_CPUS = ("cortex-a72", "cortex-a76")


def cpuinfo(cpu: Cpu, processors: int) -> str:
    """An ARM /proc/cpuinfo for `cpu` with `processors` entries (as many as the guest can really use)."""
    entry = (f"BogoMIPS\t: 108.00\nFeatures\t: {cpu.features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: {cpu.variant}\nCPU part\t: {cpu.part}\nCPU revision\t: {cpu.revision}\n\n")
    return "".join(f"processor\t: {i}\n{entry}" for i in range(processors)) + f"Model\t\t: {cpu.model} (emulated)\n"


def cache_dir() -> Path:
    """The emulation cache: $XDG_CACHE_HOME (or ~/.cache)/edge-mnist/emulate."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-mnist" / "emulate"


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) of the `deb` lines of a sources.list file; [options] are skipped."""
    entries = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    return entries


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) of the enabled `deb` stanzas of a .sources file."""
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        name = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and name:
                fields[name] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                fields[name] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            entries += [(uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split()]
    return entries


def apt_mirror(etc: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive the host's apt uses: the first one serving SUITE, else the first `.../debian` one."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list")),
             *sorted((etc / "sources.list.d").glob("*.sources"))]
    entries = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        entries += _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
    usable = [(uri.rstrip("/"), suites) for uri, suites in entries
              if uri.split(":", 1)[0] in ("http", "https", "ftp", "file")]
    for uri, suites in usable:
        if SUITE in suites:
            return uri
    return next((uri for uri, _ in usable if "debian" in uri.split("/")[3:]), None)


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


def _run(cmd: list[str], log: Path, timeout: float, what: str, remedy: str = "") -> None:
    """Run `cmd` in its own process group with output to `log`; the whole group is killed on timeout,
    error or Ctrl-C. A failure is a one-line error with the log's last line and the remedy."""
    with open(log, "ab") as handle:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if code is None:
        raise EdgeMnistError(f"{what} took longer than {timeout:.0f} s and was stopped; see {log}")
    if code != 0:
        why = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise EdgeMnistError(f"{what} failed ({why}: {_last_line(log)}); {remedy + '; ' if remedy else ''}"
                             f"log: {log}")


def _last_line(log: Path) -> str:
    """The last error line of a log (else its last line), shortened, for a one-line error."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"(E:|ERROR|edge-mnist: error|\w*(Error|Exception)\b)", line)]
    return ((errors or lines)[-1] if lines else "no output")[:200]


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this process's mount namespace."""
    root = os.path.realpath(path)
    points = [line.split()[4].replace("\\040", " ") for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == root or p.startswith(root + "/")]


def _remove(path: Path) -> None:
    """Delete a temporary tree, never one with something mounted inside (that could be the user's files)."""
    if not path.exists():
        return
    mounted = _mounts_under(path)
    if mounted:
        raise EdgeMnistError(f"{path}: still mounted at {mounted[0]}; not deleting it (umount it, then remove it)")
    shutil.rmtree(path)


def _scratch(cache: Path, what: str) -> Path:
    """A working folder of this process under cache/runs (named by pid, so a later run can sweep it)."""
    return cache / "runs" / f"{os.getpid()}-{what}"


def _sweep(runs: Path) -> None:
    """Remove working folders left by emulate processes that no longer exist (killed with SIGKILL)."""
    for folder in runs.glob("*-*"):
        pid = folder.name.split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _remove(folder)
        except PermissionError:
            continue


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Hold the cache's lock, so two runs never build the same entry at once."""
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        import fcntl  # POSIX only: importing edge_mnist must still work everywhere

        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _binfmt_entry() -> str:
    """The text of the kernel's qemu-aarch64 binfmt_misc entry ('' when there is none)."""
    try:
        return (BINFMT / "qemu-aarch64").read_text()
    except OSError:
        return ""


def ensure_binfmt(progress: Callable[[str], None]) -> None:
    """Make the kernel run arm64 binaries through qemu, inside a chroot too: mount binfmt_misc and enable the
    qemu-aarch64 handler when they are missing; the handler must have the F flag (qemu loaded at registration)."""
    if not (BINFMT / "status").exists():
        progress(f"mounting binfmt_misc on {BINFMT}")
        if subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True).returncode:
            raise EdgeMnistError(f"cannot mount binfmt_misc on {BINFMT} (a container needs --privileged); "
                                 f"run `mount -t binfmt_misc binfmt_misc {BINFMT}` on the host")
    if not _binfmt_entry().startswith("enabled") and shutil.which("update-binfmts"):
        progress("enabling the qemu-aarch64 binfmt handler (update-binfmts --enable qemu-aarch64)")
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    entry = _binfmt_entry()
    if not entry.startswith("enabled"):
        raise EdgeMnistError(f"no enabled qemu-aarch64 binfmt handler in {BINFMT}: {INSTALL_HINT}, then "
                             "update-binfmts --enable qemu-aarch64")
    flags = next((line.split(":", 1)[1].strip() for line in entry.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        raise EdgeMnistError(f"{BINFMT / 'qemu-aarch64'}: flags {flags!r} lack F, so qemu cannot start inside a "
                             "chroot; use Debian's qemu-user-static, whose handler has it")


def require_environment(cache: Path, progress: Callable[[str], None]) -> None:
    """Refuse, with the remedy, a host that cannot emulate: not x86-64, not root, tools or binfmt missing."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise EdgeMnistError(f"emulate compares arm64 under qemu with an x86-64 host; this machine is "
                             f"{platform.machine()} (on a Pi, run `edge-mnist check` there instead)")
    if os.geteuid() != 0:
        raise EdgeMnistError("emulate needs root (debootstrap, chroot and mounts): rerun it as root, e.g. "
                             "sudo $(command -v edge-mnist) emulate ...")
    tools = ["unshare", "chroot", "mount", "tar"] + ([] if rootfs_tarball(cache).is_file() else ["debootstrap"])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise EdgeMnistError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    ensure_binfmt(progress)


def qemu_version() -> str:
    """qemu-user's version line, recorded with the results (qemu bugs are version-specific)."""
    exe = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if exe is None:
        return "unknown"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def rootfs_tarball(cache: Path) -> Path:
    """Where the cache keeps the packed root filesystem."""
    return cache / f"rootfs-{SUITE}-arm64.tar.gz"


def build_rootfs(cache: Path, mirror: str, progress: Callable[[str], None]) -> Path:
    """The cached arm64 Debian root filesystem with python3 (built by debootstrap the first time)."""
    tarball = rootfs_tarball(cache)
    if tarball.is_file():
        return tarball
    build = _scratch(cache, "rootfs")
    _remove(build)
    build.mkdir(parents=True)
    log = cache / "rootfs-build.log"
    log.unlink(missing_ok=True)
    progress(f"building the arm64 {SUITE} root filesystem from {mirror} (once; several minutes under emulation, "
             f"log in {log})")
    try:
        root = build / "root"
        _run(["unshare", "--mount", "--propagation", "private", "debootstrap", "--arch=arm64", "--variant=minbase",
              "--include=python3", SUITE, str(root), mirror], log, BUILD_TIMEOUT_S,
             f"debootstrap of {SUITE} arm64 from {mirror}", "check that the mirror is reachable or pass --mirror URL")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        _run(["tar", "-C", str(root), "--numeric-owner", "-czf", str(build / tarball.name), "."], log,
             BUILD_TIMEOUT_S, f"packing {tarball.name}")
        os.replace(build / tarball.name, tarball)
    finally:
        _remove(build)
    return tarball


def runtime_requirements() -> list[str]:
    """edge-mnist's runtime-only dependencies (the base install, no extras), pinned to this host's versions."""
    try:
        requires = metadata.requires("edge-mnist") or []
    except metadata.PackageNotFoundError as exc:
        raise EdgeMnistError("edge-mnist's package metadata is missing; install it (pip install -e .)") from exc
    pins = []
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as exc:
            raise EdgeMnistError(f"{name} is not installed here; install edge-mnist's runtime (pip install .)") from exc
    return pins


def _platform_args() -> list[str]:
    """pip options selecting CPython 3.11 wheels for arm64 Linux that the guest's glibc can load."""
    tags = [f"manylinux_2_{minor}_aarch64" for minor in range(GUEST_GLIBC_MINOR, 16, -1)] + ["manylinux2014_aarch64"]
    abi = "cp" + GUEST_PYTHON.replace(".", "")
    return ["--only-binary=:all:", *(a for tag in tags for a in ("--platform", tag)), "--python-version",
            GUEST_PYTHON, "--implementation", "cp", "--abi", abi]


def build_site(cache: Path, progress: Callable[[str], None]) -> tuple[Path, list[str]]:
    """The cached arm64 install of the runtime dependencies (pip download, then pip install --target,
    both on the host), keyed by their pinned versions."""
    pins = runtime_requirements()
    key = "-".join(p.replace("==", "") for p in pins).lower()
    site = cache / f"site-cp{GUEST_PYTHON.replace('.', '')}-aarch64-{key}"
    if site.is_dir():
        return site, pins
    wheels, staging = cache / "wheels" / key, _scratch(cache, "site")
    log = cache / "wheels.log"
    log.unlink(missing_ok=True)
    _remove(staging)
    pip = [sys.executable, "-m", "pip"]
    try:
        if not wheels.is_dir():
            progress(f"downloading arm64 wheels: {' '.join(pins)}")
            _run([*pip, "download", "-q", *_platform_args(), "-d", str(staging / "wheels"), *pins], log,
                 BUILD_TIMEOUT_S, "pip download of the arm64 wheels",
                 "check that PyPI (or the index pip is configured with) is reachable")
            wheels.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / "wheels", wheels)
        progress("installing the arm64 wheels for the guest")
        _run([*pip, "install", "-q", "--no-index", "--find-links", str(wheels), "--target", str(staging / "site"),
              *_platform_args(), *pins], log, BUILD_TIMEOUT_S, "pip install of the arm64 wheels")
        os.replace(staging / "site", site)
    finally:
        _remove(staging)
    return site, pins


@dataclass
class Guest:
    """An extracted root filesystem for one run, with edge_mnist copied in and the mount points made."""

    cache: Path
    run: Path
    root: Path
    site: Path

    def command(self, cpu: Cpu, out: Path, threads: int) -> list[str]:
        """The host command running the worker on `cpu`: a private mount namespace (mounts die with it), proc
        with an ARM cpuinfo and sysfs (the runtimes' CPU detection reads both, else they crash or fall back to
        generic kernels), the artifact folder read-only, then chroot with QEMU_CPU pinned."""
        r, g = shlex.quote(str(self.root)), GUEST_DIR
        cpuinfo_file = shlex.quote(str(self.run / f"cpuinfo-{cpu.name}"))
        env = {"QEMU_CPU": cpu.name, "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
               "PYTHONPATH": f"{g}/src:{g}/site", "PYTHONNOUSERSITE": "1"}
        call = f"from edge_mnist.emulate import worker; worker({g + '/work'!r}, {threads})"
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
def guest(cache: Path, tarball: Path, site: Path) -> Iterator[Guest]:
    """Extract the root filesystem into a run folder of the cache and copy edge_mnist in; removed afterwards,
    also on error or Ctrl-C."""
    run = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=cache / "runs"))
    try:
        root = run / "root"
        root.mkdir()
        (run / "work").mkdir()
        (cache / "extract.log").unlink(missing_ok=True)
        _run(["tar", "-C", str(root), "--numeric-owner", "-xzf", str(tarball)], cache / "extract.log",
             BUILD_TIMEOUT_S, f"extracting {tarball}", f"delete {tarball} to rebuild it")
        for sub in ("out", "site", "work", "src"):
            (root / GUEST_DIR.lstrip("/") / sub).mkdir(parents=True, exist_ok=True)
        package = Path(__file__).resolve().parent
        shutil.copytree(package, root / GUEST_DIR.lstrip("/") / "src" / package.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
        yield Guest(cache, run, root, site)
    finally:
        _remove(run)


def run_on(g: Guest, cpu: Cpu, out: Path, keys: list[str], images: np.ndarray, threads: int) -> tuple[dict, dict]:
    """Run the worker on one emulated CPU: (probabilities per key, the worker's report)."""
    work = g.run / "work"
    for stale in work.iterdir():
        stale.unlink()
    np.save(work / "images.npy", images)
    (work / "keys.json").write_text(json.dumps(keys))
    (g.run / f"cpuinfo-{cpu.name}").write_text(cpuinfo(cpu, os.cpu_count() or 1))
    log = g.cache / f"worker-{cpu.name}.log"  # kept after the run folder is gone
    log.unlink(missing_ok=True)
    _run(g.command(cpu, out, threads), log, WORKER_TIMEOUT_S, f"the arm64 worker on {cpu.board} ({cpu.name})")
    report = json.loads((work / "report.json").read_text())
    with np.load(work / "outputs.npz") as arrays:
        outputs = {k: arrays[k] for k in keys}
    if report["machine"]["machine"] != "aarch64":
        raise EdgeMnistError(f"the worker on {cpu.board} ran on {report['machine']['machine']}, not aarch64")
    return outputs, report


def predict_all(out: Path, manifest: Manifest, keys: list[str], images: np.ndarray,
                threads: int) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    """Probabilities, seconds and output scale of each artifact, opened verified (the same code on host and guest)."""
    outputs, seconds, scales = {}, {}, {}
    for key in keys:
        runner = open_artifact(out, manifest, key, threads)
        start = time.perf_counter()
        outputs[key] = runner.predict(images)
        seconds[key] = time.perf_counter() - start
        scales[key] = float(runner.output_scale)
    return outputs, seconds, scales


def worker(work: str, threads: int) -> None:
    """Guest side, inside the arm64 chroot: run the listed artifacts of the read-only folder on the images and
    write outputs.npz and report.json for the host. An expected failure is one line and exit 2."""
    work_dir = Path(work)
    try:
        out = work_dir.parent / "out"
        keys = json.loads((work_dir / "keys.json").read_text())
        outputs, seconds, _ = predict_all(out, Manifest.load(out), keys, np.load(work_dir / "images.npy"), threads)
        np.savez(work_dir / "outputs.npz", **outputs)
        (work_dir / "report.json").write_text(json.dumps({"seconds": seconds, "machine": machine_info(),
                                                          "versions": tool_versions()}))
    except EdgeMnistError as exc:
        print(f"edge-mnist: error: {exc}", file=sys.stderr)
        sys.exit(2)


def known_cpus(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` when each is an emulated CPU this module knows, else a one-line error listing them."""
    unknown = [n for n in names if n not in CPUS]
    if unknown or not names:
        raise EdgeMnistError(f"unknown CPU {', '.join(unknown) or '(none given)'}; choose from "
                             + ", ".join(f"{c.name} ({c.board})" for c in CPUS.values()))
    return names


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
            progress: Callable[[str], None] = print) -> Emulation:
    """Run every int8 artifact of DIR on each emulated CPU and on this host, and write DIR/emulate.json atomically.

    The caller decides pass/fail from the result (Emulation.passed).
    """
    out = Path(out).resolve()
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
        with _locked(cache):
            _sweep(cache / "runs")
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


__all__ = ["CPUS", "Cpu", "Emulation", "Row", "apt_mirror", "compare", "cpuinfo", "emulate"]
