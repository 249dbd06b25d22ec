"""What emulation runs in, built once per Distro and cached: the host checks (root, qemu-user, binfmt,
debootstrap), the Debian root filesystem and the cross-installed wheels of the device runtime."""
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
from edge_mnist.emulate.targets import BOOKWORM_ARM64, Distro

HOST_SUITE = "bookworm"  # the release whose archive apt_mirror looks for first (Pi OS 12 is bookworm)
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
    """The Debian archive the host's apt uses: the first one serving HOST_SUITE, else the first `.../debian` one."""
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
        if HOST_SUITE in suites:
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


def _binfmt_entry(handler: str) -> str:
    """The text of the kernel's binfmt_misc entry `handler` (qemu-aarch64, qemu-arm; '' when there is none)."""
    try:
        return (BINFMT / handler).read_text()
    except OSError:
        return ""


def ensure_binfmt(qemu: str, progress: Callable[[str], None]) -> None:
    """Make the kernel run the distro's ARM binaries through qemu-`qemu`, inside a chroot too: mount binfmt_misc
    and enable the handler when they are missing; it must have the F flag (qemu loaded at registration)."""
    handler = f"qemu-{qemu}"
    if not (BINFMT / "status").exists():
        progress(f"mounting binfmt_misc on {BINFMT}")
        if subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True).returncode:
            raise EdgeMnistError(f"cannot mount binfmt_misc on {BINFMT} (a container needs --privileged); "
                                 f"run `mount -t binfmt_misc binfmt_misc {BINFMT}` on the host")
    if not _binfmt_entry(handler).startswith("enabled") and shutil.which("update-binfmts"):
        progress(f"enabling the {handler} binfmt handler (update-binfmts --enable {handler})")
        subprocess.run(["update-binfmts", "--enable", handler], capture_output=True)
    entry = _binfmt_entry(handler)
    if not entry.startswith("enabled"):
        raise EdgeMnistError(f"no enabled {handler} binfmt handler in {BINFMT}: {INSTALL_HINT}, then "
                             f"update-binfmts --enable {handler}")
    flags = next((line.split(":", 1)[1].strip() for line in entry.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        raise EdgeMnistError(f"{BINFMT / handler}: flags {flags!r} lack F, so qemu cannot start inside a "
                             "chroot; use Debian's qemu-user-static, whose handler has it")


def require_environment(cache: Path, distros: list[Distro], progress: Callable[[str], None]) -> None:
    """Refuse, with the remedy, a host that cannot emulate: not x86-64, not root, tools or binfmt missing."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise EdgeMnistError(f"emulate compares arm64 under qemu with an x86-64 host; this machine is "
                             f"{platform.machine()} (on a Pi, run `edge-mnist check` there instead)")
    if os.geteuid() != 0:
        raise EdgeMnistError("emulate needs root (debootstrap, chroot and mounts): rerun it as root, e.g. "
                             "sudo $(command -v edge-mnist) emulate ...")
    built = all(rootfs_tarball(cache, distro).is_file() for distro in distros)
    tools = ["unshare", "chroot", "mount", "tar"] + ([] if built else ["debootstrap"])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise EdgeMnistError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    for qemu in dict.fromkeys(distro.qemu for distro in distros):
        ensure_binfmt(qemu, progress)


def qemu_version(qemu: str = "aarch64") -> str:
    """qemu-user's version line, recorded with the results (qemu bugs are version-specific)."""
    exe = shutil.which(f"qemu-{qemu}-static") or shutil.which(f"qemu-{qemu}")
    if exe is None:
        return "unknown"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def rootfs_tarball(cache: Path, distro: Distro) -> Path:
    """Where the cache keeps the distro's packed root filesystem."""
    return cache / f"rootfs-{distro.name}.tar.gz"


def rootfs_log(cache: Path, distro: Distro) -> Path:
    """The debootstrap log of the distro's root filesystem (read for progress while it is built)."""
    return cache / f"rootfs-build-{distro.name}.log"


def build_rootfs(cache: Path, distro: Distro, mirror: str, progress: Callable[[str], None]) -> Path:
    """The distro's cached Debian root filesystem with python3 (built by debootstrap the first time)."""
    tarball = rootfs_tarball(cache, distro)
    if tarball.is_file():
        return tarball
    build = _scratch(cache, f"rootfs-{distro.name}")
    remove_tree(build)
    build.mkdir(parents=True)
    log = rootfs_log(cache, distro)
    log.unlink(missing_ok=True)
    progress(f"building the {distro.arch} {distro.suite} root filesystem from {mirror} (once; several minutes "
             f"under emulation, log in {log})")
    try:
        root = build / "root"
        packages = ",".join(("python3", *(apt for _, apt in distro.system)))
        run_logged(["unshare", "--mount", "--propagation", "private", "debootstrap", f"--arch={distro.arch}",
                    "--variant=minbase", f"--include={packages}", distro.suite, str(root), mirror], log,
                   BUILD_TIMEOUT_S, f"debootstrap of {distro.suite} {distro.arch} from {mirror}",
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


def _marker_environment(distro: Distro) -> dict[str, str]:
    """The PEP 508 marker values of the distro's python3, so the requirements are chosen as its pip would."""
    return {"platform_machine": distro.machine, "python_version": distro.python,
            "python_full_version": f"{distro.python}.0", "sys_platform": "linux", "platform_system": "Linux",
            "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "extra": ""}


def runtime_requirements(distro: Distro = BOOKWORM_ARM64) -> list[str]:
    """edge-mnist's runtime-only dependencies (the base install, no extras) that the distro's pip would install by
    their markers, pinned to this host's versions where it has them (else as the requirement says); the ones
    Debian serves on the distro (Distro.system) are left out."""
    from packaging.requirements import Requirement  # pip's own dependency, on every host that runs emulate

    try:
        requires = metadata.requires("edge-mnist") or []
    except metadata.PackageNotFoundError as exc:
        raise EdgeMnistError("edge-mnist's package metadata is missing; install it (pip install -e .)") from exc
    system, environment = {name for name, _ in distro.system}, _marker_environment(distro)
    pins = []
    for text in requires:
        requirement = Requirement(text)
        if (requirement.marker and not requirement.marker.evaluate(environment)) or \
                requirement.name.lower() in system:
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            version = None
        if version is not None and requirement.specifier.contains(version, prereleases=True):
            pins.append(f"{requirement.name}=={version}")
        elif requirement.marker:  # another platform's requirement (tflite-runtime on armv7l): as it says
            pins.append(f"{requirement.name}{requirement.specifier}")
        elif version is not None:
            raise EdgeMnistError(f"{requirement.name} {version} here does not satisfy {requirement}; install "
                                 "edge-mnist's runtime (pip install .)")
        else:
            raise EdgeMnistError(f"{requirement.name} is not installed here; install edge-mnist's runtime "
                                 "(pip install .)")
    return pins


def _platform_args(distro: Distro) -> list[str]:
    """pip options selecting CPython wheels of the distro's Python for its architecture that its glibc loads."""
    machine = distro.machine
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(distro.glibc_minor, 16, -1)] + \
        [f"manylinux2014_{machine}"]
    version = distro.python.replace(".", "")
    return ["--only-binary=:all:", *(a for tag in tags for a in ("--platform", tag)), "--python-version",
            distro.python, "--implementation", "cp", "--abi", f"cp{version}"]


def build_site(cache: Path, distro: Distro, progress: Callable[[str], None]) -> tuple[Path, list[str]]:
    """The distro's cached install of the runtime dependencies (pip download, then pip install --target, both
    on the host), keyed by the distro and the pinned versions. Where Debian serves some of them (Distro.system),
    pip installs the listed ones alone (--no-deps): their own dependencies are those Debian packages."""
    pins = runtime_requirements(distro)
    key = f"{distro.name}-cp{distro.python.replace('.', '')}-{distro.machine}-" + \
        "-".join(re.sub(r"[^A-Za-z0-9.]+", "", p) for p in pins).lower()
    site = cache / f"site-{key}"
    if site.is_dir():
        return site, pins
    wheels, staging = cache / "wheels" / key, _scratch(cache, f"site-{distro.name}")
    log = cache / f"wheels-{distro.name}.log"
    log.unlink(missing_ok=True)
    remove_tree(staging)
    pip = [sys.executable, "-m", "pip"]
    options = [*_platform_args(distro), *(["--no-deps"] if distro.system else [])]
    try:
        if not wheels.is_dir():
            progress(f"downloading {distro.machine} wheels for Python {distro.python}: {' '.join(pins)}")
            run_logged([*pip, "download", "-q", *options, "-d", str(staging / "wheels"), *pins], log,
                       BUILD_TIMEOUT_S, f"pip download of the {distro.machine} wheels",
                       "check that PyPI (or the index pip is configured with) is reachable")
            wheels.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / "wheels", wheels)
        progress(f"installing the {distro.machine} wheels for the {distro.name} guest")
        run_logged([*pip, "install", "-q", "--no-index", "--find-links", str(wheels), "--target", str(staging / "site"),
                    *options, *pins], log, BUILD_TIMEOUT_S, f"pip install of the {distro.machine} wheels")
        os.replace(staging / "site", site)
    finally:
        remove_tree(staging)
    return site, pins
