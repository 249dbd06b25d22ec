"""machine.py: the CPU's name and flags read from an x86 and an ARM /proc/cpuinfo, and the Machine record."""
from __future__ import annotations

import platform

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.machine import Machine, cpu_name_and_flags, machine_info

pytestmark = pytest.mark.device

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512_vnni amx_int8 aes

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512_vnni amx_int8 aes
"""

ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp

Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


@pytest.fixture(params=[("x86", X86), ("arm", ARM)], ids=["x86", "arm"])
def cpuinfo(request, tmp_path):
    """(name, path) of a written /proc/cpuinfo sample."""
    name, text = request.param
    path = tmp_path / f"cpuinfo-{name}"
    path.write_text(text)
    return name, path


EXPECTED = {
    "x86": ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "avx512_vnni",
            ["amx_int8", "avx", "avx2", "avx512_vnni", "avx512f", "fma", "sse4_1", "sse4_2"]),
    "arm": ("Raspberry Pi 5 Model B Rev 1.0", "asimddp", ["asimd", "asimddp", "asimdhp", "asimdrdm"]),
}


def test_name_and_flags_of_the_first_processor(cpuinfo):
    name, path = cpuinfo
    cpu, flags = cpu_name_and_flags(path)
    model, flag, _ = EXPECTED[name]
    assert cpu == model and flag in flags and "aes" in flags and len(flags) == len(set(flags))


def test_machine_info_keeps_the_kernel_flags_sorted(cpuinfo):
    name, path = cpuinfo
    machine = machine_info(path)
    assert (machine.cpu, machine.flags) == (EXPECTED[name][0], EXPECTED[name][2])
    assert machine.machine == platform.machine() and machine.cores >= 1


def test_an_unreadable_cpuinfo_falls_back_to_what_platform_says(tmp_path):
    cpu, flags = cpu_name_and_flags(tmp_path / "absent")
    assert cpu == (platform.processor() or platform.machine()) and flags == []


def test_the_machine_record_round_trips_and_is_strict(cpuinfo):
    machine = machine_info(cpuinfo[1])
    written = machine.to_json()
    assert list(written) == ["cpu", "cores", "machine", "system", "flags"]
    assert Machine.from_json(written, "bench.json: machine") == machine
    assert Machine.from_json({**written, "cores": None}, "m").cores is None
    with pytest.raises(EdgeMnistError, match=r"bench.json: machine.flags\[1\]: expected str, got int"):
        Machine.from_json({**written, "flags": ["avx", 2]}, "bench.json: machine")
    with pytest.raises(EdgeMnistError, match="bench.json: machine.cores: 0 is below 1"):
        Machine.from_json({**written, "cores": 0}, "bench.json: machine")
