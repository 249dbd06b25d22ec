"""The interpreter-free C on emulated Cortex-M boards: built for each core, run bare metal, compared byte for byte.

For each `MODEL_micro.c` of DIR (checked against the manifest) and each board of `targets.BOARDS`,
the C is cross-compiled with arm-none-eabi-gcc (-O2, the core's FPU and DSP flags, the board's
memory map) beside a test program (firmware/: harness.c, startup.c) that reads the test images from
the host over Arm semihosting and writes the outputs back. qemu-system-arm runs it on the MPS2 board
(no root needed), and every int8 output is compared with TensorFlow Lite Micro's and LiteRT's for
the same .tflite on this host.

Measured on the ELF: flash (text + rodata), RAM (data + bss + the peak stack, found by painting the
stack at reset and finding the deepest word overwritten) and instructions per inference. Debian's
qemu 7.2 has no TCG plugins, but under `-icount shift=0` virtual time advances one nanosecond per
instruction, so SysTick ticks around the call convert to instructions: the program times a loop of a
known instruction count to find the ratio. Those are counted on a few images, and on DSP cores also
with the DSP path compiled out (-DEDGE_MNIST_NO_DSP): the same outputs, the two counts side by side.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mnist.core.errors import EdgeMnistError, MissingDependency
from edge_mnist.data import Dataset, stratified_indices
from edge_mnist.emulate.targets import BOARDS, Board
from edge_mnist.folder.records import Manifest
from edge_mnist.folder.verify import read_verified
from edge_mnist.registry.formats import BY_KEY, FORMATS
from edge_mnist.runtime.tflite import TFLiteRunner
from edge_mnist.runtime.tflm import TFLMRunner

APT_LINE = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
COUNTED_IMAGES = 3  # images whose instructions are counted under -icount (deterministic: a few suffice)
STACK_BYTES = 0x10000
SECONDS_PER_IMAGE = 2.0  # qemu's time limit per image, beyond a fixed minute (a hung program fails, not waits)
FIRMWARE = ("harness.c", "startup.c", "platform.h")


class ToolchainMissing(EdgeMnistError):
    """arm-none-eabi-gcc or qemu-system-arm is not installed (exit 2, with the apt line)."""


def require_toolchain() -> dict[str, str]:
    """The cross compiler's and qemu's versions, or ToolchainMissing naming what is absent."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise ToolchainMissing(f"{', '.join(missing)} not found: the Cortex-M targets need Debian's Arm toolchain "
                               f"and qemu ({APT_LINE})")
    versions = {}
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        printed = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.splitlines()
        versions[tool] = printed[0] if printed else "unknown"
    return versions


@dataclass
class Program:
    """One build of the test program for a board: its ELF and section sizes."""

    elf: Path
    sections: dict[str, int]


def _firmware(name: str) -> str:
    """A file of firmware/ (the test program's sources and the linker script template)."""
    return resources.files("edge_mnist.emulate").joinpath("firmware", name).read_text(encoding="utf-8")


def glue(prefix: str) -> str:
    """glue.h of the test program (firmware/harness.c) for the model `prefix`: its header, its invoke
    function and its input and output sizes, under the names the program uses."""
    upper = prefix.upper()
    return (f'#include "{prefix}_micro.h"\n#define EM_INVOKE {prefix}_invoke\n'
            f"#define EM_INPUT_BYTES {upper}_INPUT_BYTES\n#define EM_OUTPUT_BYTES {upper}_OUTPUT_BYTES\n")


def build(board: Board, source: Path, header: Path, work: Path, dsp: bool = True) -> Program:
    """Cross-compile DIR's MODEL_micro.c with the test program for `board` (dsp=False compiles the DSP path out)."""
    prefix = source.stem.removesuffix("_micro")
    build_dir = work / f"{board.name}{'' if dsp else '-nodsp'}-{prefix}"
    build_dir.mkdir(parents=True)
    for name in FIRMWARE:
        (build_dir / name).write_text(_firmware(name))
    shutil.copy(source, build_dir / source.name)
    shutil.copy(header, build_dir / header.name)
    (build_dir / "glue.h").write_text(glue(prefix))
    (build_dir / "board.ld").write_text(_firmware("board.ld").format(flash=hex(board.flash), ram=hex(board.ram),
                                                                      stack=hex(STACK_BYTES)))
    elf = build_dir / "program.elf"
    # -fno-tree-loop-distribute-patterns: the program's own memcpy/memset must not become calls to themselves
    command = ["arm-none-eabi-gcc", "-std=c99", "-O2", "-mthumb", *board.cflags,
               *(() if dsp else ("-DEDGE_MNIST_NO_DSP",)),
               "-ffreestanding", "-nostdlib", "-fno-tree-loop-distribute-patterns", "-Wall", "-Wextra", "-I",
               str(build_dir), source.name, "harness.c",
               "startup.c", "-T", "board.ld", "-lgcc", "-o", str(elf)]
    done = subprocess.run(command, cwd=build_dir, capture_output=True, text=True)
    if done.returncode != 0:
        raise EdgeMnistError(f"{source}: arm-none-eabi-gcc failed for {board.name}: "
                             f"{(done.stderr.strip().splitlines() or ['no output'])[-1][:200]}")
    return Program(elf, _sections(elf))


def _sections(elf: Path) -> dict[str, int]:
    """Section name -> bytes, from arm-none-eabi-size -A."""
    done = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True)
    if done.returncode != 0:
        raise EdgeMnistError(f"{elf}: arm-none-eabi-size failed: {done.stderr.strip()[:200]}")
    listing = done.stdout
    sizes = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


@dataclass
class BoardRun:
    """What one run of the test program wrote: outputs, per-image ticks, and its four statistics."""

    outputs: np.ndarray
    ticks: np.ndarray
    stack_bytes: int
    instructions_per_tick: float
    seconds: float


def run(board: Board, program: Program, inputs: np.ndarray, output_bytes: int, work: Path, icount: bool) -> BoardRun:
    """Run the program on qemu-system-arm's `board` over `inputs` (int8, one row per image)."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    (run_dir / "input.bin").write_bytes(np.ascontiguousarray(inputs, np.int8).tobytes())
    command = ["qemu-system-arm", "-M", board.machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", *(("-icount", "shift=0") if icount else ()),
               "-kernel", str(program.elf)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=run_dir, capture_output=True, text=True,
                              timeout=60 + SECONDS_PER_IMAGE * len(inputs))
    except subprocess.TimeoutExpired as exc:
        raise EdgeMnistError(f"{board.machine}: the program did not finish in {exc.timeout:.0f} s") from None
    seconds = time.perf_counter() - start
    stats_file = run_dir / "stats.bin"
    if done.returncode != 0 or not stats_file.is_file():
        raise EdgeMnistError(f"{board.machine}: the program failed (qemu exit {done.returncode}"
                             f"{': ' + done.stderr.strip()[:200] if done.stderr.strip() else ''})")
    images, stack, calibration_ticks, calibration_instructions = np.fromfile(stats_file, np.uint32)[:4].tolist()
    outputs = np.fromfile(run_dir / "output.bin", np.int8)
    if images != len(inputs) or outputs.size != images * output_bytes:
        raise EdgeMnistError(f"{board.machine}: the program ran {images} of {len(inputs)} images")
    return BoardRun(outputs.reshape(images, output_bytes), np.fromfile(run_dir / "ticks.bin", np.uint32), int(stack),
                    calibration_instructions / calibration_ticks if calibration_ticks else 0.0, seconds)


def instructions(board: Board, program: Program, inputs: np.ndarray, output_bytes: int,
                 work: Path) -> tuple[int, np.ndarray]:
    """(median instructions per inference, the outputs) on the first COUNTED_IMAGES images, under -icount shift=0."""
    counted = run(board, program, inputs[:COUNTED_IMAGES], output_bytes, work, icount=True)
    return int(round(float(np.median(counted.ticks)) * counted.instructions_per_tick)), counted.outputs


def memory(program: Program, stack_bytes: int) -> dict[str, int]:
    """Flash and RAM of a build: flash = code + constants (the weights); RAM = data + bss (the activation
    buffer, the test program's image and output buffers) + the painted peak stack."""
    s = program.sections
    flash = s.get(".text", 0) + s.get(".rodata", 0) + s.get(".ARM.exidx", 0)
    return {"flash_bytes": flash + s.get(".data", 0), "ram_bytes": s.get(".data", 0) + s.get(".bss", 0) + stack_bytes,
            "text_bytes": s.get(".text", 0), "rodata_bytes": s.get(".rodata", 0), "data_bytes": s.get(".data", 0),
            "bss_bytes": s.get(".bss", 0), "stack_bytes": stack_bytes}


def micro_keys(out: Path, manifest: Manifest) -> list[str]:
    """The interpreter-free C formats of DIR (source keys); a one-line error when an int8 .tflite has none,
    naming the operator that stopped export (recorded in the manifest) or asking for a re-export."""
    keys = []
    for fmt in FORMATS:
        if not fmt.exporter.endswith("micro_c:export_source") or fmt.built_from not in manifest.artifacts:
            continue
        if fmt.key in manifest.artifacts:
            keys.append(fmt.key)
            continue
        reason = manifest.artifacts[fmt.built_from].details.get(f"not_written:{fmt.file}")
        raise EdgeMnistError(f"{out / fmt.file}: not in the folder: " + (reason or "exported by an older edge-mnist; "
                                                                        "re-export with `edge-mnist export`"))
    if not keys:
        raise EdgeMnistError(f"{out}: no int8 .tflite to emulate on a Cortex-M (run `edge-mnist export --int8`)")
    return keys


def reference_outputs(out: Path, manifest: Manifest, key: str, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """(int8 inputs, {runtime: raw int8 outputs}) of the .tflite the C was made from, on this host: LiteRT
    always, TFLM where tflite-micro is installed."""
    tflite = manifest.artifacts[BY_KEY[key].built_from]
    content = read_verified(out / tflite.file, tflite.sha256, tflite.size_bytes)
    litert = TFLiteRunner(out / tflite.file, content=content)
    inputs = litert.prepare(x)
    found = {"litert": litert.run(inputs)}
    try:
        found["tflm"] = TFLMRunner(out / tflite.file, content=content).run(inputs)
    except MissingDependency:
        pass
    return inputs, found


def chosen_images(dataset: Dataset, count: int | None) -> np.ndarray:
    """Test-set indices the boards run: `count` stratified by class (bench's TFLM subset), None for all."""
    indices = stratified_indices(dataset.y_test, count) if count else None
    return np.arange(len(dataset.y_test)) if indices is None else indices


def run_board(board: Board, out: Path, manifest: Manifest, key: str, inputs: np.ndarray, output_bytes: int,
              work: Path, progress: Callable[[str], None]) -> dict:
    """Build and run one MODEL_micro.c (checked against the manifest) on one board over the int8 `inputs`:
    its outputs, wall seconds and the board figures. On DSP cores the build without the DSP path is
    counted too, and its outputs on the counted images must be the DSP build's (no_dsp_same_outputs)."""
    fmt, header_fmt = BY_KEY[key], BY_KEY[f"{key}_h"]
    for f in (fmt, header_fmt):
        artifact = manifest.artifacts[f.key]
        read_verified(out / artifact.file, artifact.sha256, artifact.size_bytes)
    source, header = out / fmt.file, out / header_fmt.file
    program = build(board, source, header, work)
    progress(f"running {fmt.file} on an emulated {board.label}, {len(inputs)} images")
    result = run(board, program, inputs, output_bytes, work, icount=False)
    count, _ = instructions(board, program, inputs, output_bytes, work)
    figures = {**memory(program, result.stack_bytes), "instructions": count}
    if board.dsp:
        scalar, scalar_outputs = instructions(board, build(board, source, header, work, dsp=False), inputs,
                                              output_bytes, work)
        figures["instructions_no_dsp"] = scalar
        figures["no_dsp_same_outputs"] = bool((scalar_outputs == result.outputs[:COUNTED_IMAGES]).all())
    return {"outputs": result.outputs, "seconds": result.seconds, "figures": figures}


__all__ = ["BOARDS", "ToolchainMissing", "require_toolchain", "build", "run", "run_board", "micro_keys",
           "chosen_images", "memory", "reference_outputs", "glue", "APT_LINE"]
