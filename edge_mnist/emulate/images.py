"""What emulation runs in, built once and cached: the host checks (root, qemu-user, binfmt, debootstrap),
the Debian arm64 root filesystem and the cross-installed wheels of the device runtime."""
from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

from edge_mnist.core.errors import EdgeMnistError

SUITE = "bookworm"  # Raspberry Pi OS 12 is bookworm: the same glibc and Python 3.11 as the device
GUEST_PYTHON = "3.11"
GUEST_GLIBC_MINOR = 36  # bookworm's glibc 2.36: the newest manylinux wheel tag the guest can run
DEFAULT_MIRROR = "http://deb.debian.org/debian"
INSTALL_HINT = "apt-get install qemu-user-static debootstrap binfmt-support"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BUILD_TIMEOUT_S = 3600


def cache_dir() -> Path:
    """The emulation cache: $XDG_CACHE_HOME (or ~/.cache)/edge-mnist/emulate."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-mnist" / "emulate"


def _one_line_entries(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) of the `deb` lines of a sources.list file; [options] are skipped."""
    entries = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    return entries


def _deb822_entries(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) of the enabled `deb` stanzas of a .sources file."""
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        name = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and name:
                fields[name] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                fields[name] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            entries += [(uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split()]
    return entries


def apt_mirror(etc: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive the host's apt uses: the first one serving SUITE, else the first `.../debian` one."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list")),
             *sorted((etc / "sources.list.d").glob("*.sources"))]
    entries = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        entries += _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
    usable = [(uri.rstrip("/"), suites) for uri, suites in entries
              if uri.split(":", 1)[0] in ("http", "https", "ftp", "file")]
    for uri, suites in usable:
        if SUITE in suites:
            return uri
    return next((uri for uri, _ in usable if "debian" in uri.split("/")[3:]), None)


def run_logged(cmd: list[str], log: Path, timeout: float, what: str, remedy: str = "") -> None:
    """Run `cmd` in its own process group with output to `log`; the whole group is killed on timeout,
    error or Ctrl-C. A failure is a one-line error with the log's last line and the remedy."""
    with open(log, "ab") as handle:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if code is None:
        raise EdgeMnistError(f"{what} took longer than {timeout:.0f} s and was stopped; see {log}")
    if code != 0:
        why = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise EdgeMnistError(f"{what} failed ({why}: {_last_line(log)}); {remedy + '; ' if remedy else ''}"
                             f"log: {log}")


def _last_line(log: Path) -> str:
    """The last error line of a log (else its last line), shortened, for a one-line error."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"(E:|ERROR|edge-mnist: error|\w*(Error|Exception)\b)", line)]
    return ((errors or lines)[-1] if lines else "no output")[:200]


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this process's mount namespace."""
    root = os.path.realpath(path)
    points = [line.split()[4].replace("\\040", " ") for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == root or p.startswith(root + "/")]


def remove_tree(path: Path) -> None:
    """Delete a temporary tree, never one with something mounted inside (that could be the user's files)."""
    if not path.exists():
        return
    mounted = _mounts_under(path)
    if mounted:
        raise EdgeMnistError(f"{path}: still mounted at {mounted[0]}; not deleting it (umount it, then remove it)")
    shutil.rmtree(path)


def _scratch(cache: Path, what: str) -> Path:
    """A working folder of this process under cache/runs (named by pid, so a later run can sweep it)."""
    return cache / "runs" / f"{os.getpid()}-{what}"


def sweep(runs: Path) -> None:
    """Remove working folders left by emulate processes that no longer exist (killed with SIGKILL)."""
    for folder in runs.glob("*-*"):
        pid = folder.name.split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            remove_tree(folder)
        except PermissionError:
            continue


@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache's lock, so two runs never build the same entry at once."""
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        import fcntl  # POSIX only: importing edge_mnist must still work everywhere

        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _binfmt_entry() -> str:
    """The text of the kernel's qemu-aarch64 binfmt_misc entry ('' when there is none)."""
    try:
        return (BINFMT / "qemu-aarch64").read_text()
    except OSError:
        return ""


def ensure_binfmt(progress: Callable[[str], None]) -> None:
    """Make the kernel run arm64 binaries through qemu, inside a chroot too: mount binfmt_misc and enable the
    qemu-aarch64 handler when they are missing; the handler must have the F flag (qemu loaded at registration)."""
    if not (BINFMT / "status").exists():
        progress(f"mounting binfmt_misc on {BINFMT}")
        if subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True).returncode:
            raise EdgeMnistError(f"cannot mount binfmt_misc on {BINFMT} (a container needs --privileged); "
                                 f"run `mount -t binfmt_misc binfmt_misc {BINFMT}` on the host")
    if not _binfmt_entry().startswith("enabled") and shutil.which("update-binfmts"):
        progress("enabling the qemu-aarch64 binfmt handler (update-binfmts --enable qemu-aarch64)")
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    entry = _binfmt_entry()
    if not entry.startswith("enabled"):
        raise EdgeMnistError(f"no enabled qemu-aarch64 binfmt handler in {BINFMT}: {INSTALL_HINT}, then "
                             "update-binfmts --enable qemu-aarch64")
    flags = next((line.split(":", 1)[1].strip() for line in entry.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        raise EdgeMnistError(f"{BINFMT / 'qemu-aarch64'}: flags {flags!r} lack F, so qemu cannot start inside a "
                             "chroot; use Debian's qemu-user-static, whose handler has it")


def require_environment(cache: Path, progress: Callable[[str], None]) -> None:
    """Refuse, with the remedy, a host that cannot emulate: not x86-64, not root, tools or binfmt missing."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise EdgeMnistError(f"emulate compares arm64 under qemu with an x86-64 host; this machine is "
                             f"{platform.machine()} (on a Pi, run `edge-mnist check` there instead)")
    if os.geteuid() != 0:
        raise EdgeMnistError("emulate needs root (debootstrap, chroot and mounts): rerun it as root, e.g. "
                             "sudo $(command -v edge-mnist) emulate ...")
    tools = ["unshare", "chroot", "mount", "tar"] + ([] if rootfs_tarball(cache).is_file() else ["debootstrap"])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise EdgeMnistError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    ensure_binfmt(progress)


def qemu_version() -> str:
    """qemu-user's version line, recorded with the results (qemu bugs are version-specific)."""
    exe = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if exe is None:
        return "unknown"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def rootfs_tarball(cache: Path) -> Path:
    """Where the cache keeps the packed root filesystem."""
    return cache / f"rootfs-{SUITE}-arm64.tar.gz"


def build_rootfs(cache: Path, mirror: str, progress: Callable[[str], None]) -> Path:
    """The cached arm64 Debian root filesystem with python3 (built by debootstrap the first time)."""
    tarball = rootfs_tarball(cache)
    if tarball.is_file():
        return tarball
    build = _scratch(cache, "rootfs")
    remove_tree(build)
    build.mkdir(parents=True)
    log = cache / "rootfs-build.log"
    log.unlink(missing_ok=True)
    progress(f"building the arm64 {SUITE} root filesystem from {mirror} (once; several minutes under emulation, "
             f"log in {log})")
    try:
        root = build / "root"
        run_logged(["unshare", "--mount", "--propagation", "private", "debootstrap", "--arch=arm64",
                    "--variant=minbase", "--include=python3", SUITE, str(root), mirror], log, BUILD_TIMEOUT_S,
                   f"debootstrap of {SUITE} arm64 from {mirror}",
                   "check that the mirror is reachable or pass --mirror URL")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        run_logged(["tar", "-C", str(root), "--numeric-owner", "-czf", str(build / tarball.name), "."], log,
                   BUILD_TIMEOUT_S, f"packing {tarball.name}")
        os.replace(build / tarball.name, tarball)
    finally:
        remove_tree(build)
    return tarball


def runtime_requirements() -> list[str]:
    """edge-mnist's runtime-only dependencies (the base install, no extras), pinned to this host's versions."""
    try:
        requires = metadata.requires("edge-mnist") or []
    except metadata.PackageNotFoundError as exc:
        raise EdgeMnistError("edge-mnist's package metadata is missing; install it (pip install -e .)") from exc
    pins = []
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as exc:
            raise EdgeMnistError(f"{name} is not installed here; install edge-mnist's runtime (pip install .)") from exc
    return pins


def _platform_args() -> list[str]:
    """pip options selecting CPython 3.11 wheels for arm64 Linux that the guest's glibc can load."""
    tags = [f"manylinux_2_{minor}_aarch64" for minor in range(GUEST_GLIBC_MINOR, 16, -1)] + ["manylinux2014_aarch64"]
    abi = "cp" + GUEST_PYTHON.replace(".", "")
    return ["--only-binary=:all:", *(a for tag in tags for a in ("--platform", tag)), "--python-version",
            GUEST_PYTHON, "--implementation", "cp", "--abi", abi]


def build_site(cache: Path, progress: Callable[[str], None]) -> tuple[Path, list[str]]:
    """The cached arm64 install of the runtime dependencies (pip download, then pip install --target,
    both on the host), keyed by their pinned versions."""
    pins = runtime_requirements()
    key = "-".join(p.replace("==", "") for p in pins).lower()
    site = cache / f"site-cp{GUEST_PYTHON.replace('.', '')}-aarch64-{key}"
    if site.is_dir():
        return site, pins
    wheels, staging = cache / "wheels" / key, _scratch(cache, "site")
    log = cache / "wheels.log"
    log.unlink(missing_ok=True)
    remove_tree(staging)
    pip = [sys.executable, "-m", "pip"]
    try:
        if not wheels.is_dir():
            progress(f"downloading arm64 wheels: {' '.join(pins)}")
            run_logged([*pip, "download", "-q", *_platform_args(), "-d", str(staging / "wheels"), *pins], log,
                       BUILD_TIMEOUT_S, "pip download of the arm64 wheels",
                       "check that PyPI (or the index pip is configured with) is reachable")
            wheels.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / "wheels", wheels)
        progress("installing the arm64 wheels for the guest")
        run_logged([*pip, "install", "-q", "--no-index", "--find-links", str(wheels), "--target", str(staging / "site"),
                    *_platform_args(), *pins], log, BUILD_TIMEOUT_S, "pip install of the arm64 wheels")
        os.replace(staging / "site", site)
    finally:
        remove_tree(staging)
    return site, pins
