"""emulate/targets.py: the ARM /proc/cpuinfo each emulated Pi core shows, and the --target names."""
from __future__ import annotations

import pytest

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.emulate.targets import BOARDS, CPUS, DEFAULT_TARGETS, PI_TARGETS, cpuinfo, split_targets

pytestmark = pytest.mark.device


@pytest.mark.parametrize("name, part, arch, simd, has_dotprod", [("cortex-a72", "0xd08", "8", "asimd", False),
                                                                 ("cortex-a76", "0xd0b", "8", "asimd", True),
                                                                 ("cortex-a7", "0xc07", "7", "neon", False)])
def test_cpuinfo_describes_the_pi_core_on_every_processor(name, part, arch, simd, has_dotprod):
    text = cpuinfo(CPUS[name], processors=3)
    blocks = [b for b in text.split("\n\n") if b.startswith("processor")]
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}
        assert fields["processor"] == str(i) and fields["CPU implementer"] == "0x41"
        assert fields["CPU architecture"] == arch and fields["CPU part"] == part
        assert simd in fields["Features"].split() and ("asimddp" in fields["Features"].split()) is has_dotprod
        assert ("model name" in fields) is (arch == "7")  # a 32-bit kernel names the core, as on a Pi 2
    assert text.rstrip().endswith("(emulated)")


def test_targets_split_into_pis_and_boards_with_the_old_core_names_as_aliases():
    assert split_targets(("cortex-a72", "pi4", "cortex-m4", "pi-32bit", "cortex-a7")) == (("pi4", "pi-32bit"),
                                                                                       ("cortex-m4",))
    assert split_targets(DEFAULT_TARGETS) == (DEFAULT_TARGETS, ())
    with pytest.raises(EdgeMnistError, match="unknown target \\(none given\\); choose from pi4 \\(cortex-a72"):
        split_targets(())


def test_every_target_names_a_core_qemu_models_and_every_board_a_memory_map():
    assert all(t.cpu in CPUS and t.distro.arch in ("arm64", "armhf") for t in PI_TARGETS.values())
    assert {t.distro.arch for t in PI_TARGETS.values() if CPUS[t.cpu].architecture == 7} == {"armhf"}
    for board in BOARDS.values():
        assert f"-mcpu={board.name}" in board.cflags and board.flash != board.ram
        assert board.label == f"{board.core} ({board.machine})"
