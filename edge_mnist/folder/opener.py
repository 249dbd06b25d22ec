"""One way into an artifact folder: checked, locked and read once, then handed to each stage.

`open_folder` makes sure DIR exists (and can be written, for a writer), takes its lock (core.lock), reads the
manifest strictly, refuses a registered model file the manifest does not list, loads the folder's dataset (a
registered one by name, a user's own from its record) and checks it is the data the folder was exported with.
The stages (bench, check, debug, export, report, emulate) take the Folder it yields; `run` opens DIR once for
all of them. Readers that write nothing (check without a report in DIR) use `read_folder`, which takes no lock:
the writers' atomic swaps show them one complete set.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edge_mnist.config import DataConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import writable_folder
from edge_mnist.core.jsonio import read_record
from edge_mnist.core.lock import folder_lock
from edge_mnist.data import Dataset
from edge_mnist.folder.layout import MANIFEST_FILE
from edge_mnist.folder.records import History, Manifest
from edge_mnist.folder.verify import refuse_unlisted
from edge_mnist.registry.datasets import UserData
from edge_mnist.userdata import load_for_folder


@dataclass
class Folder:
    """An artifact folder as a stage gets it: its path, its dataset (checked against the manifest), its manifest
    (None before the first export; export puts the new one here) and the sha256 the toolkit recorded for its float
    Keras model (None for a model it did not write)."""

    path: Path
    dataset: Dataset
    manifest: Manifest | None
    keras_sha256: str | None = None

    @property
    def exported(self) -> Manifest:
        """The manifest, or a one-line error when DIR holds no export yet."""
        if self.manifest is None:
            raise EdgeMnistError(f"{self.path / MANIFEST_FILE}: manifest (run `edge-mnist export` first) not found")
        return self.manifest


def need_folder(out: Path) -> None:
    """Commands that read an artifact folder need it to exist."""
    if not Path(out).is_dir():
        raise EdgeMnistError(f"{out}: artifact folder does not exist (run `edge-mnist train` there first, "
                             "or pass --out)")


def check_dataset(manifest: Manifest, dataset: Dataset, where: Path) -> None:
    """The test data must be the data the folder was exported with."""
    if manifest.task.dataset != dataset.name:
        raise EdgeMnistError(f"{where}: the folder holds {manifest.task.dataset} models, not {dataset.name}; "
                             f"pass --dataset {manifest.task.dataset} or leave --dataset out")
    if manifest.dataset_fingerprint != dataset.test_fingerprint():
        raise EdgeMnistError(f"{where}: artifacts were exported with other {dataset.name} test data than "
                             f"{dataset.source}; pass the same --data-dir")


def _previous_manifest(out: Path) -> Manifest | None:
    """DIR's manifest where it still parses (export starts from it), else None."""
    try:
        return Manifest.load(out) if (out / MANIFEST_FILE).is_file() else None
    except EdgeMnistError:
        return None


def _recorded_sha256(out: Path, history: History | None, manifest: Manifest | None) -> str | None:
    """The sha256 recorded for DIR's float Keras model: the training history's, else the manifest's. A manifest this
    version no longer accepts in full (an older edge-mnist's, before a format was added) still vouches for the
    model it was exported from, so re-exporting such a folder works."""
    if history is not None and history.keras_sha256 is not None:
        return history.keras_sha256
    if manifest is not None:
        return manifest.keras_sha256
    if not (out / MANIFEST_FILE).is_file():
        return None
    recorded = read_record(out / MANIFEST_FILE, "manifest").get("keras_sha256")
    return recorded if isinstance(recorded, str) and len(recorded) == 64 else None


def _records(history: History | None, manifest: Manifest | None) -> tuple[str | None, UserData | None]:
    """The dataset DIR belongs to and a user's data record: the manifest's, else the training history's."""
    if manifest is not None:
        return manifest.task.dataset, manifest.user_data
    return (None, None) if history is None else (history.dataset, history.user_data)


def read_folder(out: Path, data: DataConfig | Dataset = DataConfig(), *, exported: bool = True) -> Folder:
    """DIR read once, without its lock: `data` is the dataset already loaded, or what --dataset/--data-dir asked
    for (the folder's own data is loaded by its record). `exported` False: DIR may hold no export yet (export
    itself, after train or an import), and an old or unreadable manifest only starts a new one."""
    out = Path(out)
    need_folder(out)
    manifest = Manifest.load(out) if exported else _previous_manifest(out)
    history = History.load(out)
    if isinstance(data, Dataset):
        dataset = data
    else:
        dataset = load_for_folder(out, data.dataset, data.data_dir, _records(history, manifest))
    if exported:
        refuse_unlisted(out, manifest)
        check_dataset(manifest, dataset, out / MANIFEST_FILE)
    return Folder(out, dataset, manifest, _recorded_sha256(out, history, manifest))


@contextmanager
def open_folder(out: Path, command: str, data: DataConfig | Dataset = DataConfig(), *, wait: bool = False,
                exported: bool = True, lock: bool = True, writable: bool = True) -> Iterator[Folder]:
    """DIR for a command that writes into it: writable, locked for `command` until the block ends (`wait` waits
    for another writer; reentrant, so `run` holds it across its stages), then read as read_folder reads it.
    `lock` False: a reader (check without a report in DIR). `writable` False: the stage checks that itself, after
    what it must say first (emulate: what this host lacks to emulate)."""
    out = Path(out)
    need_folder(out)
    if lock and writable:
        writable_folder(out)
    with folder_lock(out, command, wait) if lock else nullcontext():
        yield read_folder(out, data, exported=exported)


__all__ = ["Folder", "check_dataset", "need_folder", "open_folder", "read_folder"]
