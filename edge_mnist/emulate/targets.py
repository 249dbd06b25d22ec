"""The emulated targets: each Raspberry Pi core qemu-user models (and the ARM /proc/cpuinfo the runtimes
are shown in its place), and each Cortex-M board qemu-system-arm models (its compiler flags and memory
map); `--target` names them."""
from __future__ import annotations

from dataclasses import dataclass

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


CPUS: dict[str, Cpu] = {c.name: c for c in (
    Cpu("cortex-a72", "Pi 4", "Raspberry Pi 4 Model B", "0x0", "0xd08", 3, "fp asimd evtstrm crc32 cpuid"),
    Cpu("cortex-a76", "Pi 5", "Raspberry Pi 5 Model B", "0x4", "0xd0b", 1,
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
)}




def cpuinfo(cpu: Cpu, processors: int) -> str:
    """An ARM /proc/cpuinfo for `cpu` with `processors` entries (as many as the guest can really use)."""
    entry = (f"BogoMIPS\t: 108.00\nFeatures\t: {cpu.features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: {cpu.variant}\nCPU part\t: {cpu.part}\nCPU revision\t: {cpu.revision}\n\n")
    return "".join(f"processor\t: {i}\n{entry}" for i in range(processors)) + f"Model\t\t: {cpu.model} (emulated)\n"


def known_cpus(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` when each is an emulated CPU this module knows, else a one-line error listing them."""
    unknown = [n for n in names if n not in CPUS]
    if unknown or not names:
        raise EdgeMnistError(f"unknown CPU {', '.join(unknown) or '(none given)'}; choose from "
                             + ", ".join(f"{c.name} ({c.board})" for c in CPUS.values()))
    return names


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
# --target names: the Pi boards run the int8 files under qemu-user (their cores in CPUS), the Cortex-M
# boards the interpreter-free C under qemu-system-arm.
PI_TARGETS = {"pi4": "cortex-a72", "pi5": "cortex-a76"}
DEFAULT_TARGETS = ("pi4", "pi5")


def split_targets(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Pi cores, Cortex-M boards) of --target names; Pi core names (--cpu cortex-a72) are accepted too."""
    known = [*PI_TARGETS, *BOARDS, *CPUS]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise EdgeMnistError(f"unknown target {', '.join(unknown) or '(none given)'}; choose from "
                             + ", ".join([*(f"{t} ({CPUS[c].board}, {c})" for t, c in PI_TARGETS.items()),
                                          *(f"{b.name} ({b.machine})" for b in BOARDS.values())]))
    cpus = tuple(dict.fromkeys(PI_TARGETS.get(n, n) for n in names if n not in BOARDS))
    return cpus, tuple(n for n in names if n in BOARDS)
