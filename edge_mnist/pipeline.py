"""The main job as a library call: train -> export --int8 -> bench -> check -> report, and `export --model`.

The CLI's `run` and `export` are thin wrappers over these; the stage functions stay usable one by one on a folder
opened with folder.opener.open_folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge_mnist.bench import bench
from edge_mnist.check import evaluate
from edge_mnist.config import DataConfig, ExportConfig, RunConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.lock import folder_lock
from edge_mnist.data import Dataset
from edge_mnist.export import export
from edge_mnist.folder.layout import CHECK_FILE
from edge_mnist.folder.opener import open_folder
from edge_mnist.folder.records import BenchResult, Manifest
from edge_mnist.gate import Verdict
from edge_mnist.render.tables import write_reports
from edge_mnist.report import write_report
from edge_mnist.train import train
from edge_mnist.train.user_model import import_model, require_model_file
from edge_mnist.userdata import load_data


@dataclass
class RunResult:
    """What the main job produced."""

    history: dict
    manifest: Manifest
    bench: BenchResult
    verdict: Verdict
    report: Path


def run(out: Path, dataset: Dataset, config: RunConfig = RunConfig(), *, progress: Callable[[str], None] = print,
        wait: bool = False) -> RunResult:
    """Train by config.train (or import the user's config.model file instead), export by config.export (with
    --fallback's float layers when it asks), bench every artifact, evaluate the gate (recorded in DIR/check.json)
    and write DIR/report.html. DIR is opened once (folder.opener), its lock held from start to end (`wait` waits
    for another writer), so no other command writes between the stages."""

    config = config.validate()
    if config.model is not None:
        require_model_file(config.model)
    stages = ("train" if config.model is None else "import", "export", "bench", "check", "report")
    with folder_lock(out, "run", wait, create=True):
        progress(f"[1/{len(stages)}] {stages[0]}")
        history = train(dataset, out, config.train) if config.model is None else import_model(config.model, out,
                                                                                                  dataset)
        with open_folder(out, "run", dataset, exported=False) as folder:
            progress(f"[2/{len(stages)}] export ({', '.join(config.export.methods)})")
            manifest = export(folder, config.export, progress)
            progress(f"[3/{len(stages)}] bench")
            result = bench(folder, config.bench, progress)
            progress(f"[4/{len(stages)}] check")
            verdict = evaluate(folder, config.gate)
            write_reports(verdict, json_path=Path(out) / CHECK_FILE)
            progress(f"[5/{len(stages)}] report")
            page = write_report(folder, result, verdict)
        return RunResult(history, manifest, result, verdict, page)


def export_folder(out: Path, data: DataConfig, config: ExportConfig, *, model: Path | None = None,
                  progress: Callable[[str], None] = print, wait: bool = False) -> tuple[dict | None, Manifest]:
    """`edge-mnist export`: with `model`, first import the user's Keras file as DIR's float model (for the data
    `data` names, default mnist); then export DIR for the folder's recorded dataset. Returns the import's history
    record (None without `model`) and the manifest. DIR's lock is held across both (core.lock)."""
    if model is None and (data.channels is not None or data.image_size is not None):
        raise EdgeMnistError("--channels and --image-size go with --model (an artifact folder records its data's)")
    if model is not None:
        require_model_file(model)
    history = None
    with folder_lock(out, "export", wait, create=model is not None):
        if model is not None:
            history = import_model(model, out, load_data(data))
        with open_folder(out, "export", data, exported=False) as folder:
            return history, export(folder, config, progress)


__all__ = ["RunResult", "export_folder", "run"]
