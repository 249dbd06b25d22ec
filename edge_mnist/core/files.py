"""Atomic file writes, whole-folder transactions and hashing: an interruption never loses a complete set.

A single file is written to a temp name, fsynced and renamed over its target. A set of files
that must agree (the trained model and its history, or every artifact and the manifest that
lists them) is built in a staging folder beside the target, starting from hard links to the
current files, and swapped in whole with one atomic exchange of the two directories. So at any
moment the folder holds the old complete set or the new complete set.

Files get the permissions the user's umask gives new files (0644 typically), not the 0600 of
temp files, so a service account on a device can read the artifacts.

For the tests that kill a process at each write boundary, EDGE_MNIST_FAULT_AT names a boundary
("wrote FILE", "swap", "swapped") at which the process sends itself EDGE_MNIST_FAULT_SIGNAL
(KILL by default): a real signal at a reproducible point.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def boundary(name: str) -> None:
    """A write boundary: the process kills itself here when EDGE_MNIST_FAULT_AT names it (tests only)."""
    if os.environ.get("EDGE_MNIST_FAULT_AT") == name:
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("EDGE_MNIST_FAULT_SIGNAL", "KILL")))


def file_mode() -> int:
    """The mode a new file gets under the current umask (0644 with the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target.

    A failed write (full disk, no permission) is a one-line error naming the target; the
    target keeps its old content and the temp file is removed.
    """

    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise EdgeMnistError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        raise
    boundary(f"wrote {path.name}")


def atomic_write_json(path: Path, obj) -> None:
    """Serialize obj as indented JSON and write it atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def atomic_output(path: Path):
    """Context manager giving a temp path to write into; renamed onto `path` only on success."""
    return _AtomicOutput(Path(path))


class _AtomicOutput:
    """Temp-path-then-rename for writers that insist on a file name (Keras, tf2onnx, matplotlib)."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")

    def __enter__(self) -> Path:
        self.tmp.unlink(missing_ok=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            os.chmod(self.tmp, file_mode())
            os.replace(self.tmp, self.path)
            boundary(f"wrote {self.path.name}")
        else:
            self.tmp.unlink(missing_ok=True)
        return False


RENAME_EXCHANGE = 2  # renameat2 flag (linux/fs.h): swap two paths atomically
AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories with renameat2(RENAME_EXCHANGE); False where the OS cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _siblings(out: Path) -> tuple[Path, Path]:
    """The staging folder and the old-set folder of a two-step swap, hidden beside `out`."""
    return out.with_name(f".{out.name}.staging"), out.with_name(f".{out.name}.old")


def recover(out: Path) -> None:
    """Finish what an interrupted swap left: restore the old set if `out` is gone, drop leftovers."""
    stage, old = _siblings(out)
    if not out.exists() and old.is_dir() and not old.is_symlink():
        os.rename(old, out)
    for leftover in (stage, old):
        if leftover.is_symlink():
            leftover.unlink()
        elif leftover.is_dir():
            shutil.rmtree(leftover)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a file into the staging folder (writers there replace names, never bytes), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fsync_dir(path: Path) -> None:
    """Make renames inside a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(stage: Path, out: Path, last: tuple[str, ...]) -> None:
    """Replace `out` by `stage` in one step (or two renames plus `recover` where exchange is impossible;
    file by file, `last` at the end, where `out` is a mount point)."""
    stage_dir, old = _siblings(out)
    boundary("swap")
    if not out.exists():
        os.rename(stage, out)
    elif os.path.ismount(out):
        _swap_files(stage, out, last)
    elif exchange(stage, out):
        boundary("swapped")
        shutil.rmtree(stage_dir)
    else:
        os.rename(out, old)
        os.rename(stage, out)
        boundary("swapped")
        shutil.rmtree(old)
    _fsync_dir(out.parent)


def _swap_files(stage: Path, out: Path, last: tuple[str, ...]) -> None:
    """A mount point cannot be renamed: copy each new staged file in atomically, `last` (the manifest) at the
    end, then remove what the new set no longer has. Each file is whole; the manifest keeps them consistent.
    A file still hard-linked to DIR's own is left as it is (the writers' lock keeps its inode)."""
    _swap_folders(stage, out)
    names = sorted(p.name for p in stage.iterdir() if p.is_file())
    changed = [n for n in names if not (out / n).exists() or not os.path.samefile(stage / n, out / n)]
    for name in sorted(changed, key=lambda n: n in last):
        tmp = out / f".{name}.swap.tmp"
        shutil.copy2(stage / name, tmp)
        os.replace(tmp, out / name)
    for gone in {p.name for p in out.iterdir() if p.is_file()} - set(names):
        (out / gone).unlink()
    boundary("swapped")
    shutil.rmtree(stage)


def _same_tree(a: Path, b: Path) -> bool:
    """True when folder `b` holds exactly `a`'s entries, each file the same inode (an untouched staged copy)."""
    if not b.is_dir() or b.is_symlink():
        return False
    names = sorted(p.relative_to(a) for p in a.rglob("*"))
    return names == sorted(p.relative_to(b) for p in b.rglob("*")) and \
        all(os.path.samefile(a / n, b / n) for n in names if (a / n).is_file() and not (a / n).is_symlink())


def _swap_folders(stage: Path, out: Path) -> None:
    """The changed sub-folders of a mount point's new set (web/): each copied beside its old one and swapped
    in with one atomic exchange where the OS has it (else a rename after removing the old one); a folder the
    new set dropped is removed; symlinked folders are left alone. Before the files, so the manifest still
    comes last."""
    folders = {p.name for p in stage.iterdir() if p.is_dir() and not p.is_symlink()}
    for name in sorted(n for n in folders if not _same_tree(stage / n, out / n)):
        tmp, current = out / f".{name}.swap.tmp", out / name
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(stage / name, tmp, symlinks=True)
        if current.is_dir() and not current.is_symlink() and exchange(tmp, current):
            shutil.rmtree(tmp)
            continue
        if current.is_dir() and not current.is_symlink():
            shutil.rmtree(current)
        os.rename(tmp, current)
    for gone in {p.name for p in out.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                 } - folders:
        shutil.rmtree(out / gone)


def canonical(out: Path) -> Path:
    """The absolute folder `out` names, symlinks resolved (so the swap replaces the real folder, not a link);
    the filesystem root is refused."""

    real = Path(os.path.realpath(out))
    if real.parent == real:
        raise EdgeMnistError(f"{out}: the filesystem root cannot be an artifact folder")
    return real


def writable_folder(out: Path) -> None:
    """Fail before a long run when `out` (or the folder it would be created in) cannot be written."""

    out = canonical(out)
    if out.exists() and not out.is_dir():
        raise EdgeMnistError(f"{out}: exists and is not a folder")
    target = out if out.exists() else next((p for p in out.parents if p.exists()), Path("/"))
    if not os.access(target, os.W_OK | os.X_OK):
        raise EdgeMnistError(f"{target}: folder is not writable by this user")
    if out.exists() and not os.access(out.parent, os.W_OK | os.X_OK) and not os.path.ismount(out):
        raise EdgeMnistError(f"{out.parent}: not writable; the new set is staged beside {out.name}")


@contextmanager
def staged(out: Path, drop: tuple[str, ...] = (), last: tuple[str, ...] = ()):
    """Yield a staging folder holding the current files of `out` minus `drop` (files or folders); swap it in
    whole on success.

    On any exception (or signal) the staging folder is discarded and `out` is untouched. `last`
    names the files that commit a set (the manifest): written last where the swap goes file by file.
    """
    out = canonical(out)
    writable_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    stage, _ = _siblings(out)
    try:
        if out.exists():
            shutil.copytree(out, stage, copy_function=_link_or_copy, symlinks=True)
            os.chmod(stage, stat.S_IMODE(out.stat().st_mode))
        else:
            stage.mkdir()
        for name in drop:
            if (stage / name).is_dir():
                shutil.rmtree(stage / name)
            else:
                (stage / name).unlink(missing_ok=True)
        yield stage
        _fsync_dir(stage)
        _swap_in(stage, out, last)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
