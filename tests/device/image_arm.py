"""The flashable image (`edge-deploy image`) booted on emulated ARM: QEMU TCG, the image file itself as the disk.

- `lab_image()`: the trixie image built by `edge-deploy image` with the lab's config (broker 10.0.2.100, user
  `edge`), host name and SSH key, cached in the lab's cache under a key of the system layer and those inputs
  (the layers themselves are `deploy.image_root`'s, in `<lab cache>/image`). No secret is in it: the broker
  password reaches the device as cloud-init user-data written onto the boot partition, as a user would.
- `ArmVM`: a per-run copy of the image booted either on QEMU's `virt` machine (virtio disk and network: the
  broker through guestfwd, sshd on a host port) or as the SD card of QEMU's `raspi3b` (no network: QEMU's Pi 3
  has only USB networking, not tried; the serial console is the mini UART, QEMU's second `-serial`). Both boot
  the kernel and initramfs named by the image's own config.txt, with the image's cmdline.txt; raspi3b with the
  image's Pi 3 device tree.
- The boot partition is edited in the image file with mtools at its offset (`IMG@@8M`), no loop device.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

from deploy import image_cache, image_root
from tests.device import images
from tests.device.host import LabError, cache_dir, kill_group, log, run, spawn, wait_until
from tests.device.vm import BROKER_IN_GUEST, ssh_options
from tests.support.mosquitto import free_port

HOSTNAME = "edge-arm"
FAT = "@@8M"  # mtools: the boot partition's offset in the image (deploy.image_disk.BOOT_START)
CONFIG = f"""[camera]
source = "/dev/video0"

[model]
path = "/var/lib/edge-daemon/models/demo_model.tflite"

[mqtt]
host = "{BROKER_IN_GUEST}"
port = 1883
username = "edge"
password_file = "edge-daemon.mqtt-password"

[smoothing]
mode = "off"
"""


def user_data(password: str) -> str:
    return ("#cloud-config\nwrite_files:\n  - path: /etc/credstore/edge-daemon.mqtt-password\n"
            f"    permissions: '0600'\n    content: \"{password}\"\n")  # fmt: skip


def lab_image() -> Path:
    """Cache entry holding `edge.img` (+ `.manifest.json`, `build.txt` with the command's output and time)."""
    cache = cache_dir() / "image"
    layer = image_root.system(image_cache.cache_root(str(cache)), "trixie")
    pub = images.lab_key().with_suffix(".pub")

    def build(out: Path) -> None:
        (out / "config.toml").write_text(CONFIG)
        t0 = time.monotonic()
        proc = run([sys.executable, "-m", "deploy.cli", "image", "--out", out / "edge.img", "--cache", cache,
                    "--config", out / "config.toml", "--hostname", HOSTNAME, "--ssh-key", pub],
                   "edge-deploy image", timeout=3600)  # fmt: skip
        shown = proc.stdout.replace(f"{out}/", "")  # the cache entry's final name, not its .partial folder
        (out / "build.txt").write_text(shown + f"assembly {time.monotonic() - t0:.0f} s\n")

    steps = [image_cache.file_sha256(image_root.REPO / "deploy" / f) for f in ("image.py", "image_disk.py")]
    k = image_cache.key(layer.name, CONFIG, HOSTNAME, pub.read_text(), steps)  # the assembly's code too
    return image_cache.layer(cache_dir(), "arm-image", k, build)


def fat_read(img: Path, name: str) -> str:
    return run(["mtype", "-i", f"{img}{FAT}", f"::{name}"], f"mtype {name}", env={"MTOOLS_SKIP_CHECK": "1"}).stdout


def fat_list(img: Path, folder: str = "") -> list[str]:
    out = run(["mdir", "-b", "-i", f"{img}{FAT}", f"::{folder}"], "mdir", env={"MTOOLS_SKIP_CHECK": "1"}).stdout
    return [Path(line.strip()).name for line in out.splitlines() if line.strip()]


def fat_write(img: Path, name: str, text: str, work: Path) -> None:
    src = work / Path(name).name
    src.write_text(text)
    run(["mcopy", "-o", "-i", f"{img}{FAT}", src, f"::{name}"], f"mcopy {name}", env={"MTOOLS_SKIP_CHECK": "1"})


def boot_files(img: Path, work: Path) -> tuple[Path, Path, str]:
    """(kernel, initramfs, cmdline) as the image's config.txt and cmdline.txt name them, copied out of the FAT."""
    config = fat_read(img, "config.txt")
    kernel = re.search(r"(?m)^kernel=(\S+)", config)
    initrd = re.search(r"(?m)^initramfs (\S+)", config)
    if not kernel or not initrd:
        raise LabError(f"config.txt names no kernel= or initramfs: {config!r}")
    out = []
    for name in (kernel.group(1), initrd.group(1)):
        run(["mcopy", "-o", "-i", f"{img}{FAT}", f"::{name}", work / name], f"mcopy {name}",
            env={"MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
        out.append(work / name)
    return out[0], out[1], fat_read(img, "cmdline.txt").strip()


class ArmVM:
    """One device: a copy of the lab image, booted on `virt` or `raspi3b`; `power_cut()` kills QEMU."""

    def __init__(self, work: Path, broker_port: int) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.cached = lab_image()
        self.disk = work / "edge.img"
        run(["cp", "--sparse=always", self.cached / "edge.img", self.disk], "copying the image")
        self.broker_port, self.ssh_port, self.key = broker_port, free_port(), images.lab_key()
        self.proc: subprocess.Popen | None = None
        self.powered_on, self.boots = 0.0, 0

    def boot(self, machine: str = "virt") -> ArmVM:
        kernel, initrd, cmdline = boot_files(self.disk, self.work)
        self.boots += 1
        console = self.work / f"console-{self.boots}.log"
        common = ["qemu-system-aarch64", "-m", "1024", "-display", "none", "-monitor", "none", "-no-reboot",
                  "-kernel", kernel, "-initrd", initrd]  # fmt: skip
        if machine == "virt":
            net = (f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                   f"guestfwd=tcp:{BROKER_IN_GUEST}:1883-cmd:nc 127.0.0.1 {self.broker_port}")  # fmt: skip
            cmd = [*common, "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-accel", "tcg,thread=multi",
                   "-append", f"{cmdline} console=ttyAMA0 modules-load=vivid", "-serial", f"file:{console}",
                   "-drive", f"file={self.disk},format=raw,if=virtio,cache=unsafe",
                   "-netdev", net, "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"]  # fmt: skip
        else:
            dtb = self.work / "bcm2837-rpi-3-b.dtb"
            run(["mcopy", "-o", "-i", f"{self.disk}{FAT}", "::bcm2837-rpi-3-b.dtb", dtb], "mcopy the Pi 3 DTB",
                env={"MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
            cmd = [
                *common,
                "-M",
                "raspi3b",
                "-dtb",
                dtb,
                "-sd",
                self.disk,
                "-serial",
                "null",
                "-serial",
                f"file:{console}",
                "-append",
                # systemd's log lines (not only its coloured status) on the console: "Reached target
                # multi-user.target", "Started edge-daemon.service" are what the test waits for
                f"{cmdline} console=ttyS1,115200 modules-load=vivid systemd.log_target=kmsg",
            ]
        self.powered_on = time.monotonic()
        self.proc = spawn(cmd, self.work / "qemu.log")
        log.info("ARM VM: power on #%d on %s", self.boots, machine)
        return self

    def since_power_on(self) -> float:
        return time.monotonic() - self.powered_on

    def console(self) -> str:
        path = self.work / f"console-{self.boots}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_console(self, text: str, timeout: float) -> float:
        """Seconds from power-on until `text` is on the serial console."""

        def seen() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise LabError(f"QEMU exited; console tail: {self.console()[-800:]}")
            return text in self.console()

        wait_until(seen, timeout, f"{text!r} on the console", interval=1.0)
        return self.since_power_on()

    def ssh(self, script: str, *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = ["ssh", *ssh_options(self.key, self.ssh_port), "root@127.0.0.1", script]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"ARM VM: `{script[:100]}` exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
        return proc

    def wait_ssh(self, timeout: float = 600) -> float:
        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise LabError(f"QEMU exited; console tail: {self.console()[-800:]}")
            try:
                return self.ssh("true", check=False, timeout=20).returncode == 0
            except subprocess.TimeoutExpired:
                return False

        wait_until(up, timeout, "the ARM VM's sshd", interval=2.0)
        return self.since_power_on()

    def shutdown(self, timeout: float = 180) -> None:
        """A clean power-off from inside (QEMU exits with -no-reboot)."""
        with contextlib.suppress(subprocess.TimeoutExpired):  # the connection may drop while it goes down
            self.ssh("systemctl poweroff", check=False, timeout=30)
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"the ARM VM did not power off within {timeout} s") from None
        kill_group(self.proc)
        self.proc = None

    def power_cut(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None
