"""The emulated boards: each CPU qemu models, the Raspberry Pi it stands for, and the ARM /proc/cpuinfo
the runtimes are shown in its place."""
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


DEFAULT_CPUS = ("cortex-a72", "cortex-a76")


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
