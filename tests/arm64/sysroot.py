"""A Debian bookworm arm64 userland (Python 3.11.2, glibc 2.36: what Raspberry Pi OS bookworm ships), unpacked
from Debian's own packages into a cache directory. Nothing is installed into `/` and no chroot is needed:
`qemu-aarch64-static -L SYSROOT` serves files from it.

apt runs with a private configuration (APT_CONFIG): its own sources (Debian bookworm, arm64 only), lists,
cache and an empty dpkg status, so it computes the whole dependency closure and only downloads; each .deb is
then unpacked with `dpkg -x`. The result is reused while the package set is unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGES = ("python3.11", "libstdc++6", "libgcc-s1")
MIRROR = os.environ.get("EDGE_ARM64_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("EDGE_ARM64_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SOURCES = (
    f"{MIRROR} bookworm main",
    f"{MIRROR} bookworm-updates main",
    f"{SECURITY} bookworm-security main",
)
STAMP = ".edge-arm64-sysroot.json"
FORMAT = 1  # bump to force a rebuild of cached sysroots


class SysrootError(RuntimeError):
    """The sysroot could not be built; the message says which step and how to fix it."""


def default_cache() -> Path:
    """`$EDGE_ARM64_CACHE`, else `$XDG_CACHE_HOME/edge-daemon-arm64` (`~/.cache/edge-daemon-arm64`)."""
    if os.environ.get("EDGE_ARM64_CACHE"):
        return Path(os.environ["EDGE_ARM64_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-daemon-arm64"


def _run(cmd: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SysrootError(f"{what} failed ({' '.join(cmd[:3])} ...): " + " | ".join(tail))
    return proc


def _apt_config(apt: Path) -> Path:
    """Write a private apt configuration under `apt` and return its path."""
    for sub in ("state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/sources"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "state/status").touch()
    (apt / "etc/sources.list").write_text("".join(f"deb [arch=arm64 signed-by={KEYRING}] {line}\n" for line in SOURCES))
    conf = apt / "apt.conf"
    conf.write_text(
        "\n".join(
            [
                'APT::Architecture "arm64";',
                'APT::Architectures { "arm64"; };',
                'APT::Install-Recommends "false";',
                'APT::Install-Suggests "false";',
                'APT::Sandbox::User "root";',
                'Debug::NoLocking "true";',
                f'Dir::State "{apt}/state";',
                f'Dir::State::Lists "{apt}/state/lists";',
                f'Dir::State::status "{apt}/state/status";',
                f'Dir::Cache "{apt}/cache";',
                f'Dir::Etc::SourceList "{apt}/etc/sources.list";',
                f'Dir::Etc::SourceParts "{apt}/etc/sources";',
                f'Dir::Etc::Parts "{apt}/etc/apt.conf.d";',
                f'Dir::Etc::Preferences "{apt}/etc/preferences";',
                f'Dir::Etc::PreferencesParts "{apt}/etc/preferences.d";',
                "",
            ]
        )
    )
    return conf


def _download_debs(apt: Path) -> list[Path]:
    if not KEYRING.exists():
        raise SysrootError(f"{KEYRING} missing: apt-get install debian-archive-keyring")
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise SysrootError("apt-get and dpkg are needed to build the arm64 sysroot (run on Debian or Raspberry Pi OS)")
    env = {**os.environ, "APT_CONFIG": str(_apt_config(apt)), "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "-qq", "update"], "apt-get update (arm64 lists)", env=env, timeout=300)
    _run(["apt-get", "-qq", "-y", "install", "--download-only", *PACKAGES], "apt-get download", env=env, timeout=600)
    debs = sorted((apt / "cache/archives").glob("*.deb"))
    if not debs:
        raise SysrootError("apt-get downloaded no packages")
    return debs


def _stamp() -> dict:
    return {"format": FORMAT, "packages": list(PACKAGES), "sources": list(SOURCES)}


# /proc/cpuinfo identity per emulated core: (CPU part, Features, board). The features are what the real kernel
# reports on that board (cortex-a72: Pi 4; cortex-a76: Pi 5, which adds the int8 dot-product `asimddp`).
CPUS = {
    "cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid", "Raspberry Pi 4 Model B Rev 1.5"),
    "cortex-a76": (
        "0xd0b",
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        "Raspberry Pi 5 Model B Rev 1.0",
    ),
}


def write_cpuinfo(root: Path, cpu: str = "cortex-a72", cpus: int | None = None) -> None:
    """A Raspberry Pi style /proc/cpuinfo in the sysroot for the emulated `cpu`, one entry per host CPU.

    LiteRT's CPU detection reads /proc/cpuinfo; on the host's x86 text it crashes in allocate_tensors().
    qemu's -L serves this file in place of the host's.
    """
    part, features, model = CPUS[cpu]
    entry = (
        "processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 1\n\n"
    )
    text = "".join(entry.format(n=n, features=features, part=part) for n in range(cpus or os.cpu_count() or 1))
    text += f"Model\t\t: {model}\n"
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text(text)


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache's lock (blocking): two harness runs at once must not rebuild the same files."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_sysroot(cache: Path) -> Path:
    """Return a ready sysroot under `cache`, building it from Debian packages when absent or outdated.

    Args:
        cache: the harness's cache directory (outside the repository).

    Returns:
        The sysroot directory (contains usr/bin/python3.11).

    Raises:
        SysrootError: apt, the network or dpkg failed; the message names the step.
    """
    root = cache / "sysroot"
    stamp = root / STAMP
    if (root / "usr/bin/python3.11").exists() and stamp.exists() and json.loads(stamp.read_text()) == _stamp():
        log.info("arm64 sysroot: reusing %s", root)
    else:
        log.info("arm64 sysroot: building %s from Debian bookworm arm64 packages", root)
        apt = cache / "apt"
        shutil.rmtree(apt / "cache/archives", ignore_errors=True)  # only this run's closure gets unpacked
        debs = _download_debs(apt)
        tmp = cache / "sysroot.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for deb in debs:
            _run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}", timeout=120)
        # Debian's debs carry no bytecode; precompiling with the host's 3.11 (same magic number) halves the
        # emulated start-up. Skipped when the harness runs on another Python version.
        if sys.version_info[:2] == (3, 11):
            subprocess.run(
                [sys.executable, "-m", "compileall", "-qq", "-j0", str(tmp / "usr/lib/python3.11")],
                capture_output=True,
                check=False,
                timeout=300,
            )
        # Make the interpreter's site directories exist inside the sysroot so nothing from the host's
        # /usr/lib/python3 can leak in.
        for site in ("usr/lib/python3/dist-packages", "usr/local/lib/python3.11/dist-packages"):
            (tmp / site).mkdir(parents=True, exist_ok=True)
        (tmp / STAMP).write_text(json.dumps(_stamp()))
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        shutil.rmtree(apt, ignore_errors=True)  # ~170 MB of package lists and debs, only needed for a rebuild
        log.info("arm64 sysroot: %d packages unpacked", len(debs))
    return root
