"""Every stage's settings as one frozen dataclass, built once (by the CLI, from its options) and handed down whole.

A field's name is the name of the option that sets it, so `from_options` fills a config from a command's options
by name alone: adding an option to `run` is the click option and one field here (docs/layout.md shows it). A field
whose type is itself a config (ExportConfig.criteria, RunConfig.bench) is filled from the same options, and one
option may set a field of the same name in several configs (--threads: bench and the gate; --seed: training and
calibration). Each config's defaults are the toolkit's defaults; `validate` refuses what no stage could run.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.gate import Criteria
from edge_mnist.registry import methods
from edge_mnist.registry.formats import TFLM_IMAGES, check_skippable

STRATEGIES = ("default", "mirrored", "multiworker")
LR_SCHEDULES = ("constant", "cosine")
THROUGHPUT_SECONDS = 1.0  # bench: time per timed artifact for batch throughput


@dataclass(frozen=True)
class DataConfig:
    """Which data a command reads: a registered dataset's name or the path of the user's own (None: the folder's,
    else mnist), where a registered one's files are (`data_dir`), and how to load a user's (grey or RGB, resized)."""

    dataset: str | None = None
    data_dir: Path | None = None
    channels: int | None = None
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Options of `edge-mnist train`; recorded in history.json."""

    epochs: int = 2
    batch_size: int = 128
    seed: int = 0
    learning_rate: float = 1e-3
    architecture: str = "reference_cnn"
    mixed_precision: bool = False
    augment: bool = False
    strategy: str = "default"
    devices: int | None = None
    lr_schedule: str = "constant"

    def validate(self) -> TrainConfig:
        """Refuse a strategy or schedule no trainer knows."""
        for name, known in (("strategy", STRATEGIES), ("lr_schedule", LR_SCHEDULES)):
            if getattr(self, name) not in known:
                raise EdgeMnistError(f"{name} must be one of {', '.join(known)}, not {getattr(self, name)!r}")
        return self

    def trains(self) -> bool:
        """True when a training option differs from its default: what an imported model (--model) cannot take."""
        chosen = ("architecture", "augment", "strategy", "learning_rate", "lr_schedule")
        return any(getattr(self, name) != getattr(TrainConfig(), name) for name in chosen)


@dataclass(frozen=True)
class ExportConfig:
    """How `export` makes the int8 files: the methods (registry.methods names), calibration, the QAT fine-tune,
    cross-layer equalization (None: quantize.equalize.BY_DEFAULT, and the fallback may try it) and `--fallback`,
    which keeps the fewest layers float until the files pass `criteria`."""

    methods: tuple[str, ...] = (methods.DEFAULT.name,)
    calib_samples: int = 500
    seed: int = 0
    qat_epochs: int = 1
    batch_size: int = 128
    equalize: bool | None = None
    fallback: bool = False
    max_float_layers: int | None = None
    criteria: Criteria = field(default_factory=Criteria)

    @property
    def quantized(self) -> tuple[methods.Method, ...]:
        """The quantized methods chosen, in registry order."""
        return tuple(m for m in methods.QUANTIZED if m.name in self.methods)

    def validate(self) -> ExportConfig:
        """Refuse an unknown method and fallback options that cannot apply."""
        for name in self.methods:
            methods.get(name)
        if self.max_float_layers is not None and not self.fallback:
            raise EdgeMnistError("--max-float-layers goes with --fallback")
        if self.fallback and not self.quantized:
            raise EdgeMnistError("--fallback goes with --int8")
        self.criteria.validate()
        return self


@dataclass(frozen=True)
class BenchConfig:
    """How `bench` measures: threads per runtime, timed runs after a warm-up, batch throughput's time budget,
    optional runtimes left out, and the test images TFLM runs on (0: all)."""

    threads: int = 1
    runs: int = 1000
    warmup: int = 100
    throughput_seconds: float = THROUGHPUT_SECONDS
    skip_runtimes: tuple[str, ...] = ()
    tflm_images: int = TFLM_IMAGES

    def validate(self) -> BenchConfig:
        """Refuse counts no measurement can use."""
        if self.threads < 1 or self.runs < 1 or self.warmup < 0 or self.tflm_images < 0:
            raise EdgeMnistError("bench: threads and runs must be 1 or more, warmup and tflm_images 0 or more")
        check_skippable(self.skip_runtimes)
        return self


@dataclass(frozen=True)
class GateConfig:
    """How `check` (and `report`) run the gate: its limits, threads, the QAT-source checks a device without
    TensorFlow leaves out, optional runtimes left out, and the test images TFLM runs on (0: all)."""

    criteria: Criteria = field(default_factory=Criteria)
    threads: int = 1
    skip_qat_source: bool = False
    skip_runtimes: tuple[str, ...] = ()
    tflm_images: int = TFLM_IMAGES

    def validate(self) -> GateConfig:
        """Validate the limits and the runtimes left out."""
        self.criteria.validate()
        check_skippable(self.skip_runtimes)
        if self.tflm_images < 0:
            raise EdgeMnistError(f"the number of test images must be 0 (all) or more, not {self.tflm_images}")
        return self


@dataclass(frozen=True)
class EmulateConfig:
    """Where `emulate` runs DIR's int8 files: the targets (emulate.targets names), threads, the top-1 agreement
    each run must reach, the Debian mirror of the Pis' root filesystem (None: the host's apt source) and the test
    images the Cortex-M boards run (stratified; 0: all)."""

    targets: tuple[str, ...] = ("pi4", "pi5")
    threads: int = 1
    parity: float = 0.99
    mirror: str | None = None
    micro_images: int = TFLM_IMAGES

    def validate(self) -> EmulateConfig:
        """Refuse an agreement outside 0..1 and a negative image count."""
        Criteria(parity=self.parity).validate()
        if self.micro_images < 0:
            raise EdgeMnistError(f"the number of test images must be 0 (all) or more, not {self.micro_images}")
        return self


@dataclass(frozen=True)
class RunConfig:
    """The main job's settings: the data, training (or the user's `model` file to import instead), export,
    bench and the gate."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    model: Path | None = None

    def validate(self) -> RunConfig:
        """Validate every part, and refuse training options with an imported model."""
        for part in (self.train, self.export, self.bench, self.gate):
            part.validate()
        if self.model is not None and self.train.trains():
            raise EdgeMnistError("--model imports a trained model; --arch, --augment, --strategy, --learning-rate and "
                                 "--lr-schedule are for training")
        return self


T = typing.TypeVar("T")


def from_options(kind: type[T], options: dict[str, Any], used: set[str] | None = None) -> T:
    """A `kind` config from options by field name (nested configs from the same options), validated; the names
    it took are added to `used`, so a caller can refuse an option no config has."""
    hints, values = typing.get_type_hints(kind), {}
    for item in dataclasses.fields(kind):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            values[item.name] = from_options(hint, options, used)
        elif item.name in options:
            values[item.name] = options[item.name]
            if used is not None:
                used.add(item.name)
    made = kind(**values)
    return made.validate() if hasattr(made, "validate") else made


__all__ = ["BenchConfig", "DataConfig", "EmulateConfig", "ExportConfig", "GateConfig", "LR_SCHEDULES", "RunConfig",
           "STRATEGIES", "THROUGHPUT_SECONDS", "TrainConfig", "from_options"]
