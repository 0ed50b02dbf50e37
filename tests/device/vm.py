"""The lab VM: QEMU (TCG, both cores) booting the cached disk with the Debian kernel, loopback networking only.

- disk `vda`: the device's root file system (a per-run copy of the cached image), `vdb`: its FAT boot partition
  (label `bootfs`, mounted on /boot/firmware as on Raspberry Pi OS), `vdc`: an optional cloud-init NoCloud seed.
- network: slirp with `restrict=on` (no route out); the broker is `10.0.2.100:1883`, forwarded per connection to
  the host's mosquitto by `guestfwd=...-cmd:nc 127.0.0.1 PORT` (the `-tcp:` form connects only once), and sshd
  is reachable on a host loopback port for the harness and Ansible.
- camera: `modules-load=vivid` on the kernel command line plugs the `vivid` V4L2 camera in at boot.
- power cut: `kill -9` of QEMU (what the guest had not written to its disk is lost); a clean reboot is
  `systemctl reboot` in the guest (QEMU runs with -no-reboot, so it exits and the lab boots it again).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.device import images
from tests.device.host import LabError, kill_group, log, run, spawn, wait_until
from tests.support.mosquitto import free_port

BROKER_IN_GUEST = "10.0.2.100"


def ssh_options(key: Path, port: int) -> list[str]:
    """OpenSSH options for the lab's machines: the lab key, no host key bookkeeping, a shared connection."""
    return ["-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]  # fmt: skip


def boot_partition(work: Path, contents: Path) -> Path:
    """A FAT image labelled `bootfs` holding `contents` (a directory) at its top level."""
    img = work / "bootfs.img"
    size_kb = (sum(f.stat().st_size for f in contents.rglob("*") if f.is_file()) // 1024) * 5 // 4 + 16384
    img.unlink(missing_ok=True)
    run(["mkfs.fat", "-C", "-n", "bootfs", img, str(size_kb)], "mkfs.fat")
    run(["mcopy", "-s", "-i", img, *sorted(contents.iterdir()), "::/"], "mcopy to the boot partition",
        env={"MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    return img


def seed_iso(work: Path, user_data: str, instance_id: str) -> Path:
    """A cloud-init NoCloud seed (volume id `cidata`) with this user-data."""
    src = work / "seed"
    src.mkdir(exist_ok=True)
    (src / "user-data").write_text(user_data)
    (src / "meta-data").write_text(f"instance-id: {instance_id}\nlocal-hostname: {instance_id}\n")
    iso = work / "seed.iso"
    run(["genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
         src / "user-data", src / "meta-data"], "genisoimage")  # fmt: skip
    return iso


class VM:
    """One lab VM; `boot()` powers it on, `power_cut()` kills it, `reboot()` is a clean reboot."""

    def __init__(self, work: Path, broker_port: int, *, boot_img: Path, seed: Path | None = None,
                 disk: Path | None = None) -> None:  # fmt: skip
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        cached = images.vm_disk()
        self.kernel, self.initrd = cached / "vmlinuz", cached / "initrd.img"
        self.disk = disk or work / "disk.raw"  # `disk`: an existing device disk (a kept run), else a fresh copy
        if disk is None:
            run(["cp", "--sparse=always", cached / "disk.raw", self.disk], "copying the VM disk")
        self.boot_img, self.seed = boot_img, seed
        self.broker_port = broker_port
        self.ssh_port = free_port()
        self.key = images.lab_key()
        self.proc: subprocess.Popen | None = None
        self.powered_on = 0.0
        self.boots = 0

    def boot(self, camera: bool = True, cloud_init: bool = True) -> VM:
        """Power on (the camera plugged in at boot when `camera`); returns at once: see wait_ssh()/the broker.

        `cloud_init=False` puts `cloud-init=disabled` on the kernel command line: cloud-init has nothing left to
        do after the first boot, and its stages cost tens of seconds per boot under emulation.
        """
        if self.proc is not None and self.proc.poll() is None:
            raise LabError("the VM is already running")
        append = "root=/dev/vda rw console=ttyS0 quiet" + (" modules-load=vivid" if camera else "")
        append += "" if cloud_init else " cloud-init=disabled"
        net = (f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
               f"guestfwd=tcp:{BROKER_IN_GUEST}:1883-cmd:nc 127.0.0.1 {self.broker_port}")  # fmt: skip
        console = self.work / f"console-{self.boots + 1}.log"
        cmd = ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", "1024", "-smp", "2",
               "-display", "none", "-monitor", "none", "-no-reboot", "-serial", f"file:{console}",
               "-kernel", self.kernel, "-initrd", self.initrd, "-append", append,
               # cache=unsafe: the host skips flushing the image file; the guest still loses on a kill -9 whatever it
               # had not written to its disk (its page cache), which is what a power cut is.
               "-drive", f"file={self.disk},format=raw,if=virtio,cache=unsafe",
               "-drive", f"file={self.boot_img},format=raw,if=virtio",
               "-netdev", net, "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"]  # fmt: skip
        if self.seed is not None:
            cmd += ["-drive", f"file={self.seed},format=raw,if=virtio,readonly=on"]
        self.boots += 1
        self.powered_on = time.monotonic()
        self.proc = spawn(cmd, self.work / "qemu.log")
        log.info("VM: power on #%d (camera %s)", self.boots, "plugged" if camera else "absent")
        return self

    def since_power_on(self) -> float:
        return time.monotonic() - self.powered_on

    def ssh(self, script: str, *, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a shell script in the VM as root over SSH."""
        cmd = ["ssh", *ssh_options(self.key, self.ssh_port), "root@127.0.0.1", script]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"VM: `{script[:100]}` exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
        return proc

    def ssh_popen(self, script: str, logfile: Path) -> subprocess.Popen:
        """Start a script in the VM over SSH without waiting (its output goes to `logfile`)."""
        cmd = ["ssh", *ssh_options(self.key, self.ssh_port), "root@127.0.0.1", script]
        return spawn(cmd, logfile)

    def wait_ssh(self, timeout: float = 300) -> float:
        """Seconds from power-on until sshd answers."""

        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise LabError(f"QEMU exited while booting; see {self.work / f'console-{self.boots}.log'}")
            try:
                return self.ssh("true", check=False, timeout=15).returncode == 0
            except subprocess.TimeoutExpired:
                return False

        wait_until(up, timeout, "the VM's sshd", interval=1.0)
        return self.since_power_on()

    def power_cut(self) -> None:
        """Pull the plug: SIGKILL to QEMU (and the nc helpers it started)."""
        if self.proc is not None:
            kill_group(self.proc, signal.SIGKILL)
            self.proc = None
            log.info("VM: power cut")

    def halt_wait(self, timeout: float = 120) -> None:
        """Wait for QEMU to exit after the guest shut down or rebooted (it runs with -no-reboot)."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"the VM did not shut down within {timeout} s") from None
        kill_group(self.proc, signal.SIGKILL)
        self.proc = None

    def reboot(self, camera: bool = True) -> VM:
        """A clean reboot: `systemctl reboot` in the guest, then power on again."""
        # the connection may hang while the guest goes down; QEMU's exit below is what counts
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("systemctl reboot", check=False, timeout=30)
        self.halt_wait()
        return self.boot(camera)

    def console(self) -> str:
        """The serial console of the current (last) boot."""
        path = self.work / f"console-{self.boots}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self, keep: bool = False) -> None:
        """Power off hard (the disk is thrown away) and remove the working files unless `keep`."""
        self.power_cut()
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)


def edited(text: str, edits: list[tuple[str, str]]) -> str:
    """`text` with each (old, new) replaced once; LabError when an expected value is not there."""
    for old, new in edits:
        if text.count(old) != 1:
            raise LabError(f"user-data: expected exactly one {old!r} to edit, found {text.count(old)}")
        text = text.replace(old, new)
    return text

