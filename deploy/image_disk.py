"""A flashable disk image from the system layer's root, without loop devices (the file systems are made as files).

Layout (as Debian's own Raspberry Pi images): an MBR; partition 1 at 8 MiB, 512 MiB FAT32 (LBA, type 0c,
bootable) labelled RASPIFIRM, mounted on /boot/firmware, holding raspi-firmware's files, config.txt,
cmdline.txt, the kernel, the initramfs and the device trees; partition 2 the rest, ext4 labelled RASPIROOT
(cloud-init's growpart grows it to the card at first boot). fstab and cmdline.txt name the labels, so the same
file boots as mmcblk0 on a Pi and as vda under QEMU's virt machine. The boot partition's device may take longer
than systemd's default 90 s to show up on a slow (emulated) machine, where udev's coldplug is slow: its fstab line
waits 300 s (a real Pi has it within a second).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from deploy.image_root import run
from edge.errors import EdgeError

MIB = 1 << 20
BOOT_START, BOOT_SIZE = 8 * MIB, 512 * MIB
ROOT_START = BOOT_START + BOOT_SIZE
MODELS = Path("var/lib/edge-daemon/models")
FSTAB = ("LABEL=RASPIROOT / ext4 rw,errors=remount-ro 0 1\n"
         "LABEL=RASPIFIRM /boot/firmware vfat rw,nofail,x-systemd.device-timeout=300s 0 2\n")
HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
USER_DATA = """#cloud-config
# Read by cloud-init at first boot (NoCloud from this partition). Add users, Wi-Fi-less network tweaks or
# runcmd here; edge/config.toml and edge/model.tflite beside this file are picked up at every boot.
"""


@dataclass
class Inputs:
    """What goes into one image besides the system layer (all checked by deploy.image_inputs)."""

    hostname: str
    ssh_keys: str = ""
    config: bytes | None = None
    model: Path | None = None


def _ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise EdgeError(f"the image's root has no user {user}: the system layer is incomplete; remove it from the cache")


def customise(root: Path, inp: Inputs, instance: str) -> None:
    """Host name, root's SSH keys, the model and config, fstab; the boot partition's cloud-init seed."""
    (root / "etc/hostname").write_text(inp.hostname + "\n")
    hosts = root / "etc/hosts"
    known = hosts.read_text() if hosts.exists() else HOSTS  # bookworm's minbase has none
    hosts.write_text(f"127.0.1.1\t{inp.hostname}\n" + known)
    (root / "etc/fstab").write_text(FSTAB)
    if inp.ssh_keys:
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(inp.ssh_keys)
        os.chmod(ssh / "authorized_keys", 0o600)
    uid, gid = _ids(root, "edge-daemon")
    config = root / "etc/edge-daemon/config.toml"
    if inp.model is not None:
        dest = root / MODELS / inp.model.name
        shutil.copy(inp.model, dest)
        os.chown(dest, uid, gid)
        os.chmod(dest, 0o640)
        if inp.config is None:  # install.sh's default config names the demo model: name this one instead
            text = re.sub(r'(?m)^path = ".*"$', f'path = "/{MODELS / inp.model.name}"', config.read_text(), count=1)
            config.write_text(text)
    if inp.config is not None:
        config.write_bytes(inp.config)
    os.chown(config, 0, gid)
    os.chmod(config, 0o640)
    fw = root / "boot/firmware"
    (fw / "edge").mkdir(exist_ok=True)
    (fw / "edge/README.txt").write_text(
        "Put config.toml and/or model.tflite here (e.g. from your desktop after flashing): edge-daemon takes them\n"
        "at the next boot (renamed *.applied; a config that does not validate is renamed *.rejected with the reason\n"
        "in *.rejected.txt, and the installed one stays). Models go to /var/lib/edge-daemon/models/model.tflite.\n"
    )  # fmt: skip
    (fw / "user-data").write_text(USER_DATA)
    (fw / "meta-data").write_text(f"instance-id: {instance}\nlocal-hostname: {inp.hostname}\n")


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def assemble(root: Path, work: Path, out: Path, size: int) -> None:
    """Write the image to `out` (a new file): FAT from root/boot/firmware, ext4 from the rest of `root`."""
    need = tree_bytes(root) * 6 // 5 + 256 * MIB  # inodes, journal and room for the first boot
    root_size = size - ROOT_START
    if root_size < need:
        least = (ROOT_START + need) // MIB // 1024 + 1
        raise EdgeError(f"--size {size // MIB}M: too small; this image needs at least {least}G")
    fw = work / "firmware"
    shutil.move(root / "boot/firmware", fw)
    (root / "boot/firmware").mkdir()
    boot, ext4 = work / "boot.vfat", work / "root.ext4"
    run(["truncate", "-s", str(BOOT_SIZE), boot], "truncate")
    run(["mkfs.vfat", "-F", "32", "-n", "RASPIFIRM", boot], "mkfs.vfat")
    run(["mcopy", "-s", "-i", boot, *sorted(fw.iterdir()), "::/"], "mcopy to the boot partition",
        env={"MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    run(["truncate", "-s", str(root_size), ext4], "truncate")
    run(["mkfs.ext4", "-q", "-L", "RASPIROOT", "-d", root, ext4], "mkfs.ext4 -d", timeout=1800)
    run(["truncate", "-s", str(size), out], "truncate")
    layout = (f"label: dos\nstart={BOOT_START // 512}, size={BOOT_SIZE // 512}, type=c, bootable\n"
              f"start={ROOT_START // 512}, type=83\n")  # fmt: skip
    run(["sfdisk", "-q", out], "sfdisk", input=layout)
    for part, start in ((boot, BOOT_START), (ext4, ROOT_START)):
        run(["dd", f"if={part}", f"of={out}", "bs=1M", f"seek={start // MIB}", "conv=notrunc,sparse", "status=none"],
            "dd")  # fmt: skip
        part.unlink()
