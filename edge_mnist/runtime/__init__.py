"""Run exported models with the device runtimes only: LiteRT and ONNX Runtime, no TensorFlow.

`open_model(path)` picks the runner the runtime registry (edge_mnist.registry.formats.RUNTIMES) names
for the file's suffix. Every runner takes float32 images in [0, 1] shaped (N, H, W, C), quantizes
them itself when the model wants integers, and returns float probabilities, so callers never
care which runtime or precision they hold.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry.datasets import Task
from edge_mnist.registry.formats import RUNTIMES, runtime_for
from edge_mnist.runtime.base import Runner, check_images

__all__ = ["Runner", "open_model", "check_images"]


def open_model(path: Path | str, threads: int = 1, task: Task | None = None, runtime: str | None = None,
               content: bytes | None = None) -> Runner:
    """Open a model file with a fixed thread count.

    `runtime` names the registry's runtime (a format entry says which); without it the file's
    suffix picks one. With `task`, a model of another input shape or class count is refused.
    `content` is the file's bytes when the caller has read and verified them (see verify.py).
    """
    path = Path(path)
    if content is None and not path.is_file():
        raise EdgeMnistError(f"{path}: model file not found")
    if threads < 1:
        raise EdgeMnistError(f"--threads must be >= 1, not {threads}")
    module, cls = (RUNTIMES[runtime] if runtime else runtime_for(path)).runner.split(":")
    runner = getattr(importlib.import_module(module), cls)(path, threads, content)
    if task is not None:
        runner.check_task(task)
    return runner
