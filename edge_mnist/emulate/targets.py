"""The emulated targets: each Raspberry Pi core qemu-user models (and the ARM /proc/cpuinfo the runtimes
are shown in its place), and each Cortex-M board qemu-system-arm models (its compiler flags and memory
map); `--target` names them."""
from __future__ import annotations

from dataclasses import dataclass

from edge_mnist.config import EmulateConfig
from edge_mnist.core.errors import EdgeMnistError

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
    architecture: int = 8  # the ARM architecture /proc/cpuinfo states (7 for a 32-bit core)


CPUS: dict[str, Cpu] = {c.name: c for c in (
    Cpu("cortex-a72", "Pi 4", "Raspberry Pi 4 Model B", "0x0", "0xd08", 3, "fp asimd evtstrm crc32 cpuid"),
    Cpu("cortex-a76", "Pi 5", "Raspberry Pi 5 Model B", "0x4", "0xd0b", 1,
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
    # qemu 7.2 models no 32-bit Cortex-A53 (the Pi 3's and Zero 2 W's core), so the Pi 2's ARMv7 Cortex-A7 stands in
    Cpu("cortex-a7", "Pi 2", "Raspberry Pi 2 Model B", "0x0", "0xc07", 5,
        "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm", architecture=7),
)}



def cpuinfo(cpu: Cpu, processors: int) -> str:
    """An ARM /proc/cpuinfo for `cpu` with `processors` entries (as many as the guest can really use)."""
    name = f"model name\t: ARMv7 Processor rev {cpu.revision} (v7l)\n" if cpu.architecture == 7 else ""
    entry = (f"{name}BogoMIPS\t: 108.00\nFeatures\t: {cpu.features}\nCPU implementer\t: 0x41\n"
             f"CPU architecture: {cpu.architecture}\nCPU variant\t: {cpu.variant}\nCPU part\t: {cpu.part}\n"
             f"CPU revision\t: {cpu.revision}\n\n")
    return "".join(f"processor\t: {i}\n{entry}" for i in range(processors)) + f"Model\t\t: {cpu.model} (emulated)\n"


@dataclass(frozen=True)
class Board:
    """A Cortex-M core on a qemu-system-arm MPS2 board: gcc's flags for it and where its code and data go."""

    name: str
    machine: str
    core: str
    cflags: tuple[str, ...]
    flash: int
    ram: int
    dsp: bool = True

    @property
    def label(self) -> str:
        """The board as tables show it."""
        return f"{self.core} ({self.machine})"


# FLASH and RAM are the boards' 4 MiB SSRAMs; the AN505's Cortex-M33 boots secure, so its program runs from
# the secure aliases (0x1000_0000 and 0x3800_0000), which the IDAU marks secure and the MPCs leave open.
BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("cortex-m4", "mps2-an386", "Cortex-M4F", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
          0x0000_0000, 0x2000_0000),
    Board("cortex-m7", "mps2-an500", "Cortex-M7", ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
          0x0000_0000, 0x2000_0000),
    Board("cortex-m33", "mps2-an505", "Cortex-M33", ("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
          0x1000_0000, 0x3800_0000),
)}
@dataclass(frozen=True)
class Distro:
    """A Debian release and architecture a Pi target runs: one cached root filesystem and runtime install.

    `runtimes` are the registry runtimes with wheels for it (the others' files are listed as not runnable);
    `system` pairs a Python requirement PyPI has no wheel of there with the Debian package that serves it."""

    suite: str
    arch: str  # debootstrap's name: arm64 | armhf
    machine: str  # what platform.machine() says inside: aarch64 | armv7l
    qemu: str  # qemu-user's name for the architecture (its binfmt handler is qemu-<qemu>)
    python: str
    glibc_minor: int  # the newest manylinux_2_N wheel tag its glibc loads
    runtimes: tuple[str, ...] = ("tflite", "onnx")
    system: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """e.g. bookworm-arm64: names its cache entries."""
        return f"{self.suite}-{self.arch}"


BOOKWORM_ARM64 = Distro("bookworm", "arm64", "aarch64", "aarch64", "3.11", 36)
TRIXIE_ARM64 = Distro("trixie", "arm64", "aarch64", "aarch64", "3.13", 41)
# 32-bit Pi OS: PyPI has no armv7l wheel of onnxruntime, ai-edge-litert, numpy < 2 or Pillow; Debian's numpy and
# Pillow serve and tflite-runtime 2.14 runs the .tflite files.
BOOKWORM_ARMHF = Distro("bookworm", "armhf", "armv7l", "arm", "3.11", 36, runtimes=("tflite",),
                        system=(("numpy", "python3-numpy"), ("pillow", "python3-pil")))


@dataclass(frozen=True)
class PiTarget:
    """A --target name for a Raspberry Pi: its core under qemu-user and the OS it runs."""

    name: str
    board: str  # how tables name it
    cpu: str  # a key of CPUS
    distro: Distro
    note: str = ""


PI_TARGETS: dict[str, PiTarget] = {t.name: t for t in (
    PiTarget("pi4", "Pi 4", "cortex-a72", BOOKWORM_ARM64),
    PiTarget("pi5", "Pi 5", "cortex-a76", BOOKWORM_ARM64),
    PiTarget("pi5-trixie", "Pi 5 trixie", "cortex-a76", TRIXIE_ARM64, "Debian 13 (trixie) arm64, Python 3.13"),
    PiTarget("pi-32bit", "Pi 32-bit", "cortex-a7", BOOKWORM_ARMHF,
             "32-bit Pi OS (armhf) with tflite-runtime; qemu 7.2 has no 32-bit Cortex-A53 model, so the Pi 2's "
             "Cortex-A7 (ARMv7) stands in for the Pi 3 and Zero 2 W"),
)}
CPU_ALIASES = {"cortex-a72": "pi4", "cortex-a76": "pi5", "cortex-a7": "pi-32bit"}  # the old --cpu names
DEFAULT_TARGETS = EmulateConfig().targets


def split_targets(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Pi targets, Cortex-M boards) of --target names; the Pi cores' names (--cpu cortex-a72) are accepted too."""
    known = [*PI_TARGETS, *BOARDS, *CPU_ALIASES]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise EdgeMnistError(f"unknown target {', '.join(unknown) or '(none given)'}; choose from "
                             + ", ".join([*(f"{t.name} ({t.cpu}, {t.distro.name})"
                                            for t in PI_TARGETS.values()),
                                          *(f"{b.name} ({b.machine})" for b in BOARDS.values())]))
    pis = tuple(dict.fromkeys(CPU_ALIASES.get(n, n) for n in names if n not in BOARDS))
    return pis, tuple(n for n in names if n in BOARDS)
