"""`edge-mnist doctor`: what this device is and what it can run, on one screen (or as JSON).

The OS and its version, the architecture, Python, each runtime of the registry with its version or
the one line of why it does not import (and how to install it), the CPU features int8 kernels use
(NEON, the dot-product instructions, AVX2, AVX-512 VNNI, AMX), memory, the tools `emulate` needs,
and, for an artifact folder, which of its files can run here. Each runtime is really imported, as an
app would import it, so a wheel that installs but does not load (a missing system library, an old
glibc, a CPU it was not built for) shows here with its error. Runs without TensorFlow.
"""
from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from edge_mnist.core.machine import cpu_name_and_flags
from edge_mnist.core.tfenv import filtered_stderr, setup_env
from edge_mnist.core.version import __version__
from edge_mnist.folder.records import Manifest
from edge_mnist.registry.formats import RUNTIMES

# CPU feature -> the names /proc/cpuinfo uses for it (x86 "flags", ARM "Features").
CPU_FEATURES = {"neon": ("asimd", "neon"), "dotprod": ("asimddp",), "i8mm": ("i8mm",), "avx2": ("avx2",),
                "avx512_vnni": ("avx512_vnni",), "amx": ("amx_int8",)}
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "qemu-aarch64-static", "qemu-arm-static", "debootstrap")


@dataclass
class RuntimeStatus:
    """One runtime: its package's version when it imports, else why not and how to install it."""

    name: str
    package: str
    version: str | None
    error: str = ""
    install: str = ""

    @property
    def available(self) -> bool:
        """True when the package imported."""
        return self.version is not None


@dataclass
class FileStatus:
    """One file of an artifact folder: whether it runs here, and if not, why."""

    file: str
    runtimes: list[str]
    runs_here: bool
    note: str = ""


@dataclass
class Diagnosis:
    """Everything doctor reports."""

    os: str
    kernel: str
    architecture: str
    python: str
    edge_mnist: str
    runtimes: list[RuntimeStatus]
    cpu: str
    cpu_features: dict[str, bool]
    memory_total_mb: int | None
    memory_available_mb: int | None
    tools: dict[str, bool]
    folder: str | None = None
    files: list[FileStatus] = field(default_factory=list)

    def to_json(self) -> dict:
        """JSON object for --json."""
        return asdict(self)


def os_release(path: Path = Path("/etc/os-release")) -> str:
    """The OS's name and version (PRETTY_NAME of os-release), else what platform says."""
    try:
        fields = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or platform.platform()
    except OSError:
        return platform.platform()


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> tuple[str, dict[str, bool]]:
    """(the CPU's name, CPU_FEATURES present) from /proc/cpuinfo; unknown features are False."""
    name, listed = cpu_name_and_flags(path)
    return name, {feature: bool(set(listed) & set(names)) for feature, names in CPU_FEATURES.items()}


def memory_mb(path: Path = Path("/proc/meminfo")) -> tuple[int | None, int | None]:
    """(total, available) memory in MB from /proc/meminfo; None where it cannot be read."""
    try:
        fields = {k.strip(): v.split()[0] for k, _, v in (line.partition(":") for line in path.read_text().splitlines())
                  if v.split()}
        return int(fields["MemTotal"]) // 1024, int(fields["MemAvailable"]) // 1024
    except (OSError, KeyError, ValueError):
        return None, None


def runtime_status(name: str) -> RuntimeStatus:
    """Import the runtime's package (else its fallback, tflite-runtime for LiteRT) as an app would and report
    its version, or the first package's error in one line."""
    runtime = RUNTIMES[name]
    setup_env()  # TensorFlow's own settings (legacy Keras, quiet C++ logs) before it can be imported
    failure = None
    for package, distribution in ((runtime.package, runtime.distribution), *filter(None, [runtime.fallback])):
        try:
            with filtered_stderr():  # TensorFlow's C++ start-up lines are not the report
                module = importlib.import_module(package)
        except Exception as exc:  # an installed wheel can fail to load in many ways; each is reported, not raised
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            failure = failure or f"{type(exc).__name__}: {reason}"[:200]
            continue
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            version = str(getattr(module, "__version__", "unknown"))
        return RuntimeStatus(name, package, version)
    return RuntimeStatus(name, runtime.package, None, failure or "", runtime.install)


def folder_files(out: Path, runtimes: dict[str, RuntimeStatus]) -> list[FileStatus]:
    """Each file of DIR's manifest: the runtimes that open it and whether one of them is available here."""
    manifest = Manifest.load(out)
    files = []
    for artifact in manifest.artifacts.values():
        names = [run.runtime for run in artifact.fmt.runs]
        if not names:
            files.append(FileStatus(artifact.file, [], False, "no runtime: source for a microcontroller or an app "
                                                               "build, not a model file"))
            continue
        ready = [n for n in names if runtimes[n].available]
        missing = [n for n in names if not runtimes[n].available]
        note = "; ".join(f"{n}: {runtimes[n].install}" for n in missing) if missing else ""
        files.append(FileStatus(artifact.file, names, bool(ready), note))
    return files


def diagnose(out: Path | None = None) -> Diagnosis:
    """The device and, with `out`, which of DIR's files run on it (bad input: one-line EdgeMnistError)."""
    runtimes = {name: runtime_status(name) for name in RUNTIMES}
    cpu, features = cpu_info()
    total, available = memory_mb()
    diagnosis = Diagnosis(os_release(), platform.release(), platform.machine(),
                          f"{platform.python_version()} ({sys.executable})", __version__, list(runtimes.values()), cpu,
                          features, total, available, {tool: shutil.which(tool) is not None for tool in TOOLS})
    if out is not None:
        diagnosis.folder = os.fspath(out)
        diagnosis.files = folder_files(Path(out), runtimes)
    return diagnosis


__all__ = ["Diagnosis", "diagnose", "cpu_info", "memory_mb", "os_release", "runtime_status"]
