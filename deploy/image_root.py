"""The image's root file system in three cached layers (`deploy.image_cache`), from Debian packages and wheels only.

- `base`: Debian `SUITE` for arm64 made by mmdebstrap in foreign-architecture mode (binfmt_misc + qemu-user):
  systemd, sshd, cloud-init, the Debian arm64 kernel and `raspi-firmware` (which fills /boot/firmware with the
  Pi's boot files, config.txt, the kernel, the initramfs and the device trees);
- `wheels`: the daemon's dependencies as aarch64 wheels for the suite's CPython (cp313 on trixie, cp311 on
  bookworm), and the project's own wheel;
- `system`: base + the daemon installed by `deploy/install.sh` offline from those wheels (run in a qemu-user
  chroot), the unit enabled, the Pi's cmdline.txt, fstab by label, cloud-init's NoCloud seed on the boot
  partition, the boot-partition pickup of `edge/config.toml` and `edge/model.tflite`.

Each key is a hash of what the layer is made of (suite, packages, mirror, requirements, the project's files, this
file's build steps): the same inputs give the same package set, recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

from deploy import image_cache, image_manifest
from edge.errors import EdgeError

REPO = Path(__file__).resolve().parents[1]
MIRROR = os.environ.get("EDGE_IMAGE_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("EDGE_IMAGE_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
PYTHON = {"trixie": "3.13", "bookworm": "3.11"}
PACKAGES = (
    "systemd", "systemd-sysv", "systemd-timesyncd", "dbus", "udev", "kmod", "iproute2", "procps", "e2fsprogs",
    "dosfstools", "python3", "python3-venv", "ca-certificates", "openssh-server", "cloud-init", "cloud-guest-utils",
    "initramfs-tools", "linux-image-arm64", "raspi-firmware", "libusb-1.0-0", "ifupdown", "isc-dhcp-client",
)  # fmt: skip
WHEEL_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{m}_aarch64" for m in range(17, 37)), "linux_aarch64")
CHROOT_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
FILES = Path(__file__).resolve().parent / "image"


def run(cmd: Sequence[str | os.PathLike], what: str, *, timeout: float = 1800, **kw) -> subprocess.CompletedProcess:
    """Run a command to completion; EdgeError (one line, the tool's last output) when it fails."""
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", **kw.pop("env", {})}
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env,
                              check=False, **kw)  # fmt: skip
    except FileNotFoundError:
        raise EdgeError(f"{what}: {cmd[0]} is not installed (apt-get install mmdebstrap qemu-user-static "
                        "arch-test dosfstools mtools fdisk e2fsprogs)") from None  # fmt: skip
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise EdgeError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc


def check_host() -> None:
    """Root, the tools, and aarch64 binaries runnable through binfmt_misc (registered here if it can be)."""
    if os.geteuid() != 0:
        raise EdgeError("edge-deploy image: run it as root (mmdebstrap, chroot and mkfs need it)")
    need = {"mmdebstrap": "mmdebstrap", "arch-test": "arch-test", "qemu-aarch64-static": "qemu-user-static",
            "mkfs.vfat": "dosfstools", "mcopy": "mtools", "sfdisk": "fdisk", "mkfs.ext4": "e2fsprogs"}  # fmt: skip
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    gone = [f"{t} ({p})" for t, p in need.items() if not shutil.which(t, path=path)]
    if gone:
        raise EdgeError("edge-deploy image: missing " + ", ".join(gone) + "; apt-get install them")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", binfmt], "mounting binfmt_misc")
    entry = binfmt / "qemu-aarch64"
    if not entry.exists():
        conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
        if not conf.exists():
            raise EdgeError("edge-deploy image: no /usr/lib/binfmt.d/qemu-aarch64.conf; install qemu-user-static")
        (binfmt / "register").write_text(conf.read_text())
    if "enabled" not in entry.read_text():
        raise EdgeError(f"edge-deploy image: {entry} is disabled; echo 1 > {entry}")


def sources(suite: str) -> list[str]:
    comps = "main non-free-firmware"
    return [f"deb {MIRROR} {suite} {comps}", f"deb {MIRROR} {suite}-updates {comps}",
            f"deb {SECURITY} {suite}-security {comps}"]  # fmt: skip


def base(cache: Path, suite: str) -> Path:
    """The cached mmdebstrap root (`<layer>/root`)."""

    def build(out: Path) -> None:
        # the package lists stay (the manifest takes each package's sha256 from them; the image drops them)
        run(["mmdebstrap", "--mode=root", "--architectures=arm64", "--variant=minbase", "--skip=cleanup/apt/lists",
             "--include=" + ",".join(PACKAGES), suite, out / "root", *sources(suite)],
            f"mmdebstrap {suite} arm64 (about 15 minutes under emulation)", timeout=3600)  # fmt: skip

    k = image_cache.key(suite, sources(suite), PACKAGES, inspect.getsource(build))
    return image_cache.layer(cache, f"base-{suite}", k, build) / "root"


def requirements() -> list[str]:
    return list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def project_files() -> list[Path]:
    """What the project's wheel and install.sh are made of (its key)."""
    files = [REPO / "pyproject.toml", REPO / "deploy" / "install.sh", *sorted((REPO / "systemd").iterdir())]
    files += sorted(p for p in (REPO / "edge").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def wheels(cache: Path, suite: str) -> Path:
    """The cached wheels folder: the dependencies for aarch64 + the suite's CPython, and edge_daemon's wheel."""
    if not (REPO / "pyproject.toml").is_file():
        raise EdgeError("edge-deploy image: run it from a checkout of the project (it builds the daemon's wheel)")
    py, reqs = PYTHON[suite], requirements()

    def build(out: Path) -> None:
        abi = "cp" + py.replace(".", "")
        args = ["--only-binary=:all:", "--python-version", py, "--implementation", "cp", "--abi", abi,
                "--abi", "abi3", "--abi", "none"]  # fmt: skip
        for platform in WHEEL_PLATFORMS:
            args += ["--platform", platform]
        run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", out / "deps",
             *args, *reqs], f"pip download (the daemon's aarch64 {abi} wheels)", timeout=900)  # fmt: skip
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out / "project", REPO],
            "building the project wheel", timeout=600)  # fmt: skip

    k = image_cache.key(py, reqs, WHEEL_PLATFORMS, [image_cache.file_sha256(f) for f in project_files()],
                        inspect.getsource(build))  # fmt: skip
    return image_cache.layer(cache, f"wheels-{suite}", k, build)


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[list[str]]:
    """/proc and /dev of the host in `root` for chroot steps; yields the chroot command prefix."""
    done: list[Path] = []
    try:
        for src, dst, args in (("proc", root / "proc", ["-t", "proc"]), ("/dev", root / "dev", ["--bind"])):
            run(["mount", *args, src, dst], f"mount {dst}")
            done.append(dst)
        yield [*CHROOT_ENV, "chroot", str(root)]
    finally:
        for dst in reversed(done):
            subprocess.run(["umount", "-l", str(dst)], check=False)


def system(cache: Path, suite: str) -> Path:
    """The cached root with the daemon installed (`<layer>/root`, the boot partition's files in
    `root/boot/firmware`) and `<layer>/packages.json`, `<layer>/wheels.json` for the manifest."""
    root_base, wh = base(cache, suite), wheels(cache, suite)

    def build(out: Path) -> None:
        root = out / "root"
        run(["cp", "-a", root_base, root], "copying the base root file system")
        shutil.copytree(wh, root / "tmp/edge-wheels")
        bundle = root / "tmp/edge-bundle"
        (bundle / "deploy").mkdir(parents=True)
        shutil.copy(REPO / "deploy/install.sh", bundle / "deploy")
        shutil.copytree(REPO / "systemd", bundle / "systemd")
        shutil.copytree(FILES / "root", root, dirs_exist_ok=True)
        wheel = next((root / "tmp/edge-wheels/project").glob("edge_daemon-*.whl")).name
        with mounted(root) as ch:
            run([*ch, "bash", "/tmp/edge-bundle/deploy/install.sh", "--wheel", f"/tmp/edge-wheels/project/{wheel}",
                 "--find-links", "/tmp/edge-wheels/deps", "--offline", "--no-apt", "--no-systemd",
                 "--python", "/usr/bin/python3"], "install.sh in the arm64 root (a few minutes under emulation)",
                timeout=3600)  # fmt: skip
            run([*ch, "systemctl", "enable", "edge-daemon.service", "edge-boot-files.service",
                 "systemd-timesyncd.service"], "enabling the units")  # fmt: skip
            defaults = root / "etc/default/raspi-firmware"
            defaults.write_text(defaults.read_text() + '\nROOTPART=LABEL=RASPIROOT\nCONSOLES="ttyS1,115200 tty0"\n')
            run([*ch, "/etc/initramfs/post-update.d/z50-raspi-firmware"], "writing the boot partition's files")
            dpkg = run([*ch, "dpkg-query", "-W", "-f", "${Package} ${Version} ${Architecture}\n"], "dpkg-query")
        packages = image_manifest.package_hashes(root, dpkg.stdout)
        (out / "packages.json").write_text(json.dumps(packages, indent=0))
        (out / "wheels.json").write_text(json.dumps(image_manifest.wheel_hashes(root / "tmp/edge-wheels")))
        for lst in (root / "var/lib/apt/lists").glob("*_*"):
            lst.unlink()  # 100+ MB; `apt update` on the device fetches them
        shutil.rmtree(root / "tmp/edge-wheels")
        shutil.rmtree(bundle)
        (root / "etc/machine-id").write_text("")  # made at first boot: every device its own
        for key in root.glob("etc/ssh/ssh_host_*"):
            key.unlink()  # regenerated at first boot (cloud-init's ssh module / sshd-keygen)

    extra = sorted(str(p.relative_to(FILES)) + image_cache.file_sha256(p) for p in FILES.rglob("*") if p.is_file())
    k = image_cache.key(root_base.parent.name, wh.name, extra, inspect.getsource(build))
    return image_cache.layer(cache, f"system-{suite}", k, build)
