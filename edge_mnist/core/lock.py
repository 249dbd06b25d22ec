"""One writer at a time in an artifact folder: an flock on DIR/.edge-mnist.lock, held for a whole command.

Two commands writing one folder at once would share its staging folder (files.staged), and one would
die mid-way or record figures of files the other had just replaced. So every stage that writes into DIR
holds this lock from its first read to its last write. Readers (check without a report in DIR, info,
predict) take none: the writers' atomic swaps already show them one complete set.

flock, not a pid file: the kernel releases it when its holder exits, SIGKILL included, so it is never
stale. The file stays when released (deleting it would race with a process waiting on it); its holder
writes "pid command start-time host" into it, for the message a second writer gives. It lives inside DIR
and follows it through the staged swap as a hard link: the same inode, so the same lock. The lock is
reentrant within a process: `run` holds it while its train, export, bench and report take it again.
Where flock does not exist (Windows) nothing is locked. Known limits: where the staged swap falls back to
two renames (no RENAME_EXCHANGE) a `create` caller arriving between them makes DIR before it can lock it,
and where hard links fail the swapped-in lock file is a copy (another inode); both need a lock outside DIR.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import canonical, recover
from edge_mnist.core.progress import say

try:
    import fcntl
except ImportError:  # not POSIX: importing edge_mnist must still work there
    fcntl = None

LOCK_FILE = ".edge-mnist.lock"
LOOK_INTERVAL_S, LOOK_TRIES = 0.05, 20  # how long a second writer looks for the holder to say who it is
_held: set[str] = set()  # the folders this process holds, by real path


@dataclass(frozen=True)
class Holder:
    """Who holds a folder's lock, as its lock file says."""

    pid: int
    command: str
    since: str  # local time, ISO 8601
    host: str

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The "pid command start-time host" line, or None for an empty or foreign file."""
        fields = text.split()
        if len(fields) != 4 or not fields[0].isdigit():
            return None
        return cls(int(fields[0]), fields[1], fields[2], fields[3])

    def alive(self) -> bool:
        """Whether the process still runs (taken as yes on another host, where it cannot be asked)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it runs, as another user
            pass
        return True

    def __str__(self) -> str:
        """pid 1234 (edge-mnist export, since 10:51:02), the day and host added when they are not this one's."""
        day, _, clock = self.since.partition("T")
        when = clock if day == _dt.date.today().isoformat() else f"{day} {clock}"
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where} (edge-mnist {self.command}, since {when})"


@contextmanager
def folder_lock(folder: Path, command: str, wait: bool = False, create: bool = False) -> Iterator[None]:
    """Hold DIR's writers' lock for the block. Held by another process: EdgeMnistError naming it, or with
    `wait` block until it is released (said once). `create` makes a missing DIR first (train, import, run).

    Where no lock file can be made (DIR missing, or not writable by this user), this process could not write
    DIR either: the block runs unlocked and the stage's own checks say what is wrong.
    """
    real = canonical(folder)
    if str(real) in _held or fcntl is None:
        yield
        return
    fd = _open(real, create)
    if fd is None:
        yield
        return
    try:
        _acquire(fd, folder, command, wait)
        _held.add(str(real))
        _say_who(fd, command)
        yield
    finally:
        _held.discard(str(real))
        os.close(fd)  # the only descriptor of this open file: closing it releases the lock


def _open(real: Path, create: bool) -> int | None:
    """The lock file's descriptor: read-write, else read-only (another user's file locks all the same);
    None when it cannot be made."""
    if create and not real.exists():
        recover(real)  # a swap killed mid-way (two renames) left the old set beside DIR: restore it first
        try:
            real.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(real / LOCK_FILE, flags | os.O_NOFOLLOW, 0o666)
        except OSError:
            continue
    return None


def _acquire(fd: int, folder: Path, command: str, wait: bool) -> None:
    """Take the lock now, or name its holder: in an error, or (with `wait`) in a message before blocking."""
    who = "another process"  # one that has not said who it is (another user's read-only lock file)
    for _ in range(LOOK_TRIES):  # the holder writes its line just after locking; a dead one's line may linger
        if _try_lock(fd):
            return
        holder = _read_holder(fd)
        if holder is not None and holder.alive():
            who = str(holder)
            break
        time.sleep(LOOK_INTERVAL_S)
    if not wait:
        raise EdgeMnistError(f"{command}: {folder} is being written by {who}; wait for it or pass --wait")
    say(f"{command}: {folder} is being written by {who}; waiting for it to finish")
    fcntl.flock(fd, fcntl.LOCK_EX)


def _try_lock(fd: int) -> bool:
    """The lock, if nobody holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> Holder | None:
    """The holder the lock file names (None while it is empty)."""
    return Holder.parse(os.pread(fd, 4096, 0).decode(errors="replace"))


def _say_who(fd: int, command: str) -> None:
    """Write "pid command start-time host" into the held lock file, for a second writer's message (not
    possible in another user's read-only lock file: that writer is then told "another process")."""
    line = f"{os.getpid()} {command} {_dt.datetime.now().isoformat(timespec='seconds')} {socket.gethostname()}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, line.encode(), 0)
    except OSError:
        pass


def writes_into(folder: Path, paths) -> bool:
    """Whether one of `paths` (report files; None for none) lies in `folder`, so writing it takes the lock."""
    real = canonical(folder)
    return any(p is not None and Path(os.path.realpath(p)).is_relative_to(real) for p in paths)


__all__ = ["LOCK_FILE", "Holder", "folder_lock", "writes_into"]
