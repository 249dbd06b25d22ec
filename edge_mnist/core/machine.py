"""The machine a measurement ran on: the CPU's name and feature flags from /proc/cpuinfo, and the record
bench, emulate, doctor and the benchmark scripts keep of it."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from edge_mnist.core.jsonio import Record, json_field

CPUINFO = Path("/proc/cpuinfo")
KERNEL_FLAGS = ("avx", "fma", "sse4", "amx", "asimd", "neon")  # the prefixes of the SIMD flags int8/float kernels use


def cpu_name_and_flags(path: Path = CPUINFO) -> tuple[str, list[str]]:
    """The CPU's name and feature flags from /proc/cpuinfo (x86 says "flags", ARM "Features"; an ARM board
    names itself in "Model"); what platform says where the file cannot be read."""
    try:
        fields = [line.partition(":") for line in Path(path).read_text().splitlines()]
    except OSError:
        fields = []
    first: dict[str, str] = {}
    for key, _, value in fields:
        first.setdefault(key.strip(), value.strip())
    name = first.get("Model") or first.get("model name") or platform.processor() or platform.machine()
    return name, (first.get("flags") or first.get("Features", "")).split()


@dataclass(frozen=True)
class Machine(Record):
    """CPU model, the SIMD flags that matter for int8/float kernels, core count and platform, recorded with
    every measurement."""

    cpu: str = json_field(str)
    cores: int | None = json_field(int, low=1, nullable=True)  # None where os.cpu_count() cannot tell
    machine: str = json_field(str)
    system: str = json_field(str)
    flags: list[str] = json_field(list, items=str)


def machine_info(cpuinfo: Path = CPUINFO) -> Machine:
    """This machine, its CPU read from `cpuinfo`."""
    cpu, listed = cpu_name_and_flags(cpuinfo)
    return Machine(cpu, os.cpu_count(), platform.machine(), platform.platform(),
                   sorted(f for f in listed if f.startswith(KERNEL_FLAGS)))


__all__ = ["Machine", "cpu_name_and_flags", "machine_info"]
