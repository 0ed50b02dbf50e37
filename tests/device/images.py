"""The lab's images, built from Debian packages and cached under keys of their inputs.

- `rootfs`: Debian bookworm made by mmdebstrap (minbase + systemd, Python, sshd, cloud-init, initramfs-tools):
  what a flashed Raspberry Pi OS Lite image has, without the daemon. nspawn machines boot it through overlays.
- `kernel`: the Debian kernel package of this machine's apt (`linux-image-amd64`'s dependency), fetched with
  `apt-get download` and unpacked with `dpkg -x`: nothing goes into the host's /boot.
- `dependency_wheels`: the daemon's dependencies as wheels for the image's Python (CPython 3.11, x86_64,
  glibc 2.36), the "wheels folder" of an offline install.
- `vm_disk`: the rootfs plus the kernel modules the VM needs (virtio, ext4, vfat, isofs, vivid), an initramfs,
  networkd and sshd, as an ext4 disk image; the kernel and initramfs are booted directly by QEMU.

Each is built into `<name>.partial` and renamed when complete, so an interrupted build is never used; a key
that changes (package list, kernel version, pyproject dependencies, this file's build steps) rebuilds it and
removes the older ones.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import shutil
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from tests.device.host import LabError, cache_dir, log, run

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "udev", "kmod", "iproute2", "procps", "python3", "python3-venv",
    "ca-certificates", "libusb-1.0-0", "openssh-server", "cloud-init", "initramfs-tools",
)  # fmt: skip
# Units that only cost boot time in an emulated VM and have nothing to do with the daemon.
MASKED = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
          "fstrim.timer", "dpkg-db-backup.timer", "man-db.timer")  # fmt: skip
# Kernel modules the VM loads (their dependencies are added): disk, network, file systems, the camera.
VM_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "ext4", "crc32c_generic", "vfat",
              "nls_cp437", "nls_ascii", "nls_utf8", "isofs", "vivid")  # fmt: skip
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")
PY_PLATFORMS = ("manylinux_2_36_x86_64", *(f"manylinux_2_{m}_x86_64" for m in range(35, 16, -1)),
                "manylinux2014_x86_64", "linux_x86_64")  # fmt: skip


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _cached(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """`cache/<name>-<key>`, built by `build(tmpdir)` unless it exists; older keys of `name` are removed."""
    cache = cache_dir()
    dest = cache / f"{name}-{key}"
    if dest.exists():
        return dest
    partial = cache / f"{name}-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log.info("building %s (cache key %s)", name, key)
    build(partial)
    partial.rename(dest)
    for old in cache.glob(f"{name}-*"):
        if old != dest and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return dest


def rootfs() -> Path:
    """The bookworm root file system (directory `root/` inside the returned cache entry)."""

    def build(out: Path) -> None:
        root = out / "root"
        run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, root, *SOURCES],
            "mmdebstrap", timeout=900)  # fmt: skip
        run(["chroot", root, "systemctl", "mask", *MASKED], "masking timers")
        # sshd listens only where a machine asks for it (nspawn machines share the host's network).
        run(["chroot", root, "systemctl", "disable", "ssh.service"], "disabling sshd")
        (root / "etc/hostname").write_text("edge-lab\n")

    return _cached("rootfs", _key(SUITE, SOURCES, PACKAGES, MASKED, inspect.getsource(build)), build) / "root"


def kernel() -> Path:
    """The unpacked Debian kernel package (boot/vmlinuz-*, lib/modules/*)."""
    deps = run(["apt-cache", "depends", "linux-image-amd64"], "apt-cache depends linux-image-amd64").stdout
    m = re.search(r"Depends: (linux-image-[0-9][^\s]*)", deps)
    if not m:
        raise LabError(f"no kernel package behind linux-image-amd64 in this machine's apt: {deps.strip()}")
    package = m.group(1)

    def build(out: Path) -> None:
        try:
            run(["apt-get", "download", package], f"apt-get download {package}", cwd=out)
        except LabError:
            run(["apt-get", "update", "-qq"], "apt-get update")
            run(["apt-get", "download", package], f"apt-get download {package}", cwd=out)
        deb = next(out.glob("*.deb"))
        run(["dpkg", "-x", deb, out / "tree"], f"dpkg -x {deb.name}")
        deb.unlink()

    return _cached("kernel", _key(package), build) / "tree"


def kernel_files(tree: Path) -> tuple[Path, str]:
    """(vmlinuz, version) of an unpacked kernel package."""
    vmlinuz = next(tree.glob("boot/vmlinuz-*"))
    return vmlinuz, vmlinuz.name.removeprefix("vmlinuz-")


def daemon_requirements() -> list[str]:
    """The daemon's declared dependencies (pyproject.toml `[project] dependencies`)."""
    return list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def dependency_wheels() -> Path:
    """A folder with the daemon's dependency wheels for the image's CPython 3.11 on x86_64 (glibc 2.36)."""
    reqs = daemon_requirements()

    def build(out: Path) -> None:
        args = ["--only-binary=:all:", "--python-version", "3.11.2", "--implementation", "cp",
                "--abi", "cp311", "--abi", "abi3", "--abi", "none"]  # fmt: skip
        for platform in PY_PLATFORMS:
            args += ["--platform", platform]
        run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", out, *args, *reqs],
            "pip download (the daemon's dependency wheels)", timeout=600)  # fmt: skip

    return _cached("wheels", _key(reqs, PY_PLATFORMS), build)


def lab_key() -> Path:
    """The lab's SSH key pair (private key path; `.pub` beside it): root logs in with it on machines and the VM."""
    key = cache_dir() / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edge-lab", "-f", key], "ssh-keygen")
    return key


def module_closure(root: Path, version: str, names: tuple[str, ...]) -> set[str]:
    """Paths (relative to lib/modules/VERSION) of `names` and every module they depend on (from modules.dep)."""
    deps: dict[str, list[str]] = {}
    for line in (root / "usr/lib/modules" / version / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    todo = [by_name[n.replace("-", "_")] for n in names]
    seen: set[str] = set()
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += deps[p]
    return seen


def vm_disk() -> Path:
    """Cache entry with `disk.raw` (ext4 root file system), `vmlinuz` and `initrd.img` for the lab VM."""
    base, tree, key = rootfs(), kernel(), lab_key()
    vmlinuz, version = kernel_files(tree)

    def build(out: Path) -> None:
        root = out / "root"
        run(["cp", "-a", base, root], "copying the root file system")
        mods = root / "usr/lib/modules" / version
        shutil.copytree(tree / "lib/modules" / version, mods, symlinks=True)
        run(["chroot", root, "depmod", version], "depmod (all modules)")
        keep = module_closure(root, version, VM_MODULES)
        for ko in mods.rglob("*.ko*"):
            if str(ko.relative_to(mods)) not in keep:
                ko.unlink()
        run(["chroot", root, "depmod", version], "depmod (the VM's modules)")
        shutil.copy(tree / "boot" / f"config-{version}", root / "boot")
        (root / "etc/initramfs-tools/modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
        conf = root / "etc/initramfs-tools/initramfs.conf"
        conf.write_text(re.sub(r"(?m)^MODULES=.*$", "MODULES=list", conf.read_text()))
        run(["chroot", root, "mkinitramfs", "-o", "/boot/initrd.img", version], "mkinitramfs")
        shutil.move(root / "boot/initrd.img", out / "initrd.img")
        shutil.copy(vmlinuz, out / "vmlinuz")
        # The boot partition of a Raspberry Pi OS image is FAT, labelled "bootfs", mounted on /boot/firmware.
        (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
                                        "LABEL=bootfs /boot/firmware vfat defaults,nofail 0 2\n")  # fmt: skip
        (root / "boot/firmware").mkdir(parents=True, exist_ok=True)
        net = root / "etc/systemd/network/20-wired.network"
        net.parent.mkdir(parents=True, exist_ok=True)
        net.write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        run(["chroot", root, "systemctl", "enable", "systemd-networkd", "systemd-networkd-wait-online", "ssh"],
            "enabling networkd and sshd")  # fmt: skip
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        (root / "etc/hostname").write_text("localhost\n")  # cloud-init's user-data names the device
        run(["truncate", "-s", "3G", out / "disk.raw"], "truncate")
        run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", root, out / "disk.raw"], "mkfs.ext4 -d")
        shutil.rmtree(root)

    pub = key.with_suffix(".pub").read_text()
    return _cached("vm", _key(base, version, VM_MODULES, pub, inspect.getsource(vm_disk)), build)
