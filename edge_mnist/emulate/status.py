"""What a long emulate step is doing now, for its progress line: the debootstrap stage of a root filesystem
being built, and how many images the worker in the guest has done.

Emulate's steps differ in length by minutes (a first root-filesystem build against a cached one), so a
count of steps predicts nothing: the line shows the elapsed time and this activity instead, and an
ETA only for the worker's current file, from the rate measured on that file so far.
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from edge_mnist.core.progress import clock
from edge_mnist.emulate.guest import Guest, worker_progress
from edge_mnist.emulate.images import rootfs_log
from edge_mnist.emulate.targets import Distro, PiTarget

POLL_S = 2.0
# debootstrap's "I: <Stage> <package>..." lines, in the order it works
STAGE = re.compile(r"^I: (Retrieving|Validating|Checking|Chosen|Found|Extracting|Installing|Unpacking|Configuring|"
                   r"Base system installed successfully)\b\s*(.*?)\.*$")


def debootstrap_status(cache: Path, distro: Distro) -> str:
    """The stage of the distro's running debootstrap, from its log ('' when there is no log yet)."""
    try:
        lines = rootfs_log(cache, distro).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    stages = [m for m in map(STAGE.match, lines) if m]
    if not stages:
        return f"debootstrap {distro.name}: starting" if lines else ""
    stage, package = stages[-1].groups()
    same = sum(1 for m in stages if m.group(1) == stage)
    return f"debootstrap {distro.name}: {stage.lower()} {package}".rstrip() + f" ({same} so far)"


def worker_status(g: Guest, target: PiTarget) -> str:
    """The guest worker's file and images done, with an ETA for that file from its measured rate."""
    state = worker_progress(g)
    if not state:
        return f"{target.name}: starting Python under qemu"
    done, total, seconds = state["done"], state["total"], state["seconds"]
    eta = f", {clock(seconds / done * (total - done))} left for this file" if 0 < done < total else ""
    return (f"{target.name}: {state['file']} ({state['index'] + 1}/{state['files']}) "
            f"{done:,}/{total:,} images{eta}")


@contextmanager
def watching(shown, activity: Callable[[], str]) -> Iterator[None]:
    """While the block runs, put `activity()` on the step's progress line every POLL_S seconds."""
    done = threading.Event()

    def poll() -> None:
        """Refresh the line until the block ends."""
        while not done.wait(POLL_S):
            try:
                text = activity()
            except Exception:  # a half-written or odd status file: say nothing this time, never a traceback
                continue
            if text:
                shown.update(0, now=text)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        shown.update(0, now="")  # what ran is over: its line must not linger into the next step
