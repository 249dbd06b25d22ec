"""The main job as a library call: train -> export --int8 -> bench -> check -> report, and the folder's dataset.

The CLI's `run` is a thin wrapper over `run`; the stage functions stay usable one by one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge_mnist.bench import bench
from edge_mnist.check import evaluate
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.lock import folder_lock
from edge_mnist.data import DEFAULT_DATASET, Dataset, need_folder
from edge_mnist.export import export
from edge_mnist.folder.layout import CHECK_FILE
from edge_mnist.folder.records import BenchResult, Manifest
from edge_mnist.gate import Criteria, Verdict
from edge_mnist.registry.formats import TFLM_IMAGES
from edge_mnist.render.tables import write_reports
from edge_mnist.report import write_report
from edge_mnist.train import TrainConfig, train
from edge_mnist.train.user_model import import_model, require_model_file
from edge_mnist.userdata import load_for_folder, resolve_dataset


def validate_run(config: TrainConfig, model: Path | None) -> None:
    """Refuse training options with an imported model (callers may check before loading the data)."""
    chosen, default = ((c.architecture, c.augment, c.strategy, c.learning_rate, c.lr_schedule)
                       for c in (config, TrainConfig()))
    if model is not None and chosen != default:
        raise EdgeMnistError("--model imports a trained model; --arch, --augment, --strategy, --learning-rate and "
                             "--lr-schedule are for training")
    if model is not None:
        require_model_file(model)


@dataclass
class RunResult:
    """What the main job produced."""

    history: dict
    manifest: Manifest
    bench: BenchResult
    verdict: Verdict
    report: Path


def run(out: Path, dataset: Dataset, config: TrainConfig | None = None, *, model: Path | None = None,
        methods: tuple[str, ...] = ("ptq",), calib_samples: int = 500, qat_epochs: int = 1, threads: int = 1,
        runs: int = 1000, warmup: int = 100, criteria: Criteria | None = None,
        progress: Callable[[str], None] = print, skip_runtimes: tuple[str, ...] = (),
        fallback=None, equalize: bool | None = None, wait: bool = False,
        tflm_images: int = TFLM_IMAGES) -> RunResult:
    """Train by `config` (or import the user's `model` file instead), export int8 by `methods` (with the
    float fallback of edge_mnist.quantize.fallback when `fallback` is a Request; `equalize`: cross-layer
    equalization, as export's), bench every artifact, evaluate
    the gate (recorded in DIR/check.json; TFLM on `tflm_images` test images stratified by class, 0: all)
    and write DIR/report.html. DIR's lock is held from start to end (core.lock; `wait` waits for another
    writer), so no other command writes between the stages."""

    config = config or TrainConfig()
    validate_run(config, model)
    criteria = (criteria or Criteria()).validate()
    stages = ("train" if model is None else "import", "export", "bench", "check", "report")
    with folder_lock(out, "run", wait, create=True):
        progress(f"[1/{len(stages)}] {stages[0]}")
        if model is None:
            history = train(dataset, out, config)
        else:
            history = import_model(model, out, dataset)
        progress(f"[2/{len(stages)}] export ({', '.join(methods)})")
        manifest = export(out, dataset, methods, calib_samples, config.seed, qat_epochs, config.batch_size,
                          progress=progress, fallback=fallback, equalize=equalize)
        progress(f"[3/{len(stages)}] bench")
        result = bench(out, dataset, threads=threads, runs=runs, warmup=warmup, progress=progress,
                       skip_runtimes=skip_runtimes, tflm_images=tflm_images)
        progress(f"[4/{len(stages)}] check")
        verdict = evaluate(out, dataset, criteria, threads, skip_runtimes=skip_runtimes, tflm_images=tflm_images)
        write_reports(verdict, json_path=Path(out) / CHECK_FILE)
        progress(f"[5/{len(stages)}] report")
        page = write_report(out, manifest, dataset, result, verdict)
        return RunResult(history, manifest, result, verdict, page)


def export_folder(out: Path, dataset: str | None, data_dir: Path | None, methods: tuple[str, ...], *,
                  model: Path | None = None, calib_samples: int = 500, seed: int = 0, qat_epochs: int = 1,
                  batch_size: int = 128, progress: Callable[[str], None] = print,
                  fallback=None, equalize: bool | None = None, wait: bool = False,
                  channels: int | None = None,
                  image_size: tuple[int, int] | None = None) -> tuple[dict | None, Manifest]:
    """`edge-mnist export`: with `model`, first import the user's Keras file as DIR's float model (for
    `dataset`, default mnist, a registered name or a path; `channels` and `image_size` shape a user's data);
    then export DIR for the folder's recorded dataset. Returns the import's history record (None without
    `model`) and the manifest. DIR's lock is held across both (core.lock)."""
    if fallback is not None and "float" in methods:
        raise EdgeMnistError("--fallback goes with --int8")
    if model is None and (channels is not None or image_size is not None):
        raise EdgeMnistError("--channels and --image-size go with --model (an artifact folder records its data's)")
    if model is not None:
        require_model_file(model)
    history = None
    with folder_lock(out, "export", wait, create=model is not None):
        if model is not None:
            history = import_model(model, out, resolve_dataset(dataset or DEFAULT_DATASET, data_dir, channels,
                                                               image_size))
        need_folder(out)
        data = load_for_folder(out, dataset, data_dir)
        return history, export(out, data, methods, calib_samples, seed, qat_epochs, batch_size, progress=progress,
                               fallback=fallback, equalize=equalize)
