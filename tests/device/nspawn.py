"""systemd-nspawn machines: the lab's root file system booted with systemd as PID 1, at native speed.

Each machine is an overlay (the cached rootfs read-only below, its own upper directory) booted with
`systemd-nspawn -b`; or, for power cuts, an ext4 disk image of its own on a loop device: `power_cut()` shuts that
file system down without flushing anything (EXT4_IOC_SHUTDOWN with NOLOGFLUSH, the "godown" that fstests uses to
emulate a power failure: what was not on the disk yet is lost, the journal is replayed at the next mount) and
kills the container. It shares the host's network, so a broker on the host's 127.0.0.1 is reachable and an
sshd inside listens on a loopback port of its own. Facts this relies on (../shared/reference/device-lab.md):
- without `--register=no` nspawn needs a host D-Bus ("Failed to open system bus"); there is no machinectl,
  so commands run through `nsenter` into the container's PID 1;
- on this host's hybrid cgroups `DevicePolicy=` is silently not enforced: the unified hierarchy
  (`SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`) and BPF for the container's systemd (`--system-call-filter=bpf`,
  `CAP_BPF`, `CAP_PERFMON`) make it enforced, and scenario 1 checks that it is.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

from tests.device.host import LabError, kill_group, log, run, spawn, tie, wait_until

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2  # do not flush the journal (nor any dirty data): a power failure
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


class Machine:
    """One nspawn machine over `base` (a root file system directory, never written), working files in `work`.

    Args:
        name: machine and host name.
        base: the lower (read-only) root file system.
        work: a directory for the overlay's upper/work directories, the mount point and the console log.
        binds_ro: {host path: path inside} mounted read-only.
        ssh_port: when set, sshd runs inside on 127.0.0.1:ssh_port (root logs in with the lab key).
        authorized_key: public key text for root's authorized_keys.
    """

    def __init__(self, name: str, base: Path, work: Path, *, binds_ro: dict[Path, str] | None = None,
                 ssh_port: int | None = None, authorized_key: str = "", disk: Path | None = None) -> None:  # fmt: skip
        self.name, self.base, self.work = name, base, work
        self.disk = disk  # an ext4 image holding the root file system (made from `base` when missing)
        self.root = work / "root"
        self.binds_ro = binds_ro or {}
        self.ssh_port = ssh_port
        self.authorized_key = authorized_key
        self.proc: subprocess.Popen | None = None
        self.leader = 0
        self.boot_s = 0.0
        self.console = work / "console.log"

    # -- life cycle ----------------------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> Machine:
        """Mount the overlay, configure it, boot, and wait until systemd reports the system running."""
        for d in ("upper", "ovl", "root"):
            (self.work / d).mkdir(parents=True, exist_ok=True)
        if self.disk is None:
            opts = f"lowerdir={self.base},upperdir={self.work / 'upper'},workdir={self.work / 'ovl'}"
            run(["mount", "-t", "overlay", "overlay", "-o", opts, self.root], f"{self.name}: overlay mount")
        else:
            self._release_disk()
            if not self.disk.exists():
                run(["truncate", "-s", "8G", self.disk], "truncate")  # sparse; each release is ~300 MB
                run(["mkfs.ext4", "-q", "-F", "-d", self.base, self.disk], f"{self.name}: mkfs.ext4 -d")
            run(["mount", "-o", "loop", self.disk, self.root], f"{self.name}: mounting its disk")  # replays the journal
        self._configure()
        cmd = ["systemd-nspawn", "-b", "-D", self.root, "-M", self.name, "--register=no", "--keep-unit",
               "--console=pipe", "--system-call-filter=bpf", "--capability=CAP_BPF,CAP_PERFMON"]  # fmt: skip
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro.items()]
        t0 = time.monotonic()
        self.proc = spawn(cmd, self.console, env={"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"})
        self.leader = wait_until(self._find_leader, 20, f"{self.name}: the container's PID 1")
        tie(self.proc, self.leader)
        # PID 1 exists a moment before systemd listens: until then systemctl answers nothing (or "offline").
        state = wait_until(lambda: self.sh("systemctl is-system-running --wait", check=False,
                                           timeout=timeout).stdout.strip() not in ("", "offline") and
                           self.sh("systemctl is-system-running", check=False).stdout.strip(), timeout,
                           f"{self.name}: systemd to answer", interval=0.2)  # fmt: skip
        self.boot_s = time.monotonic() - t0
        if state not in ("running", "degraded"):
            raise LabError(f"{self.name}: boot ended {state!r}; console: {self.console}")
        if state == "degraded":
            failed = self.sh("systemctl --failed --no-legend --plain", check=False).stdout.strip()
            log.warning("%s: degraded boot: %s", self.name, failed)
        log.info("%s: booted in %.1f s", self.name, self.boot_s)
        return self

    def _configure(self) -> None:
        etc = self.root / "etc"
        (etc / "hostname").write_text(self.name + "\n")
        (etc / "cloud/cloud-init.disabled").touch()  # no datasource here; nspawn machines are configured directly
        # The host's network is shared: nothing inside may configure interfaces.
        for unit in ("systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service"):
            mask = etc / "systemd/system" / unit
            mask.unlink(missing_ok=True)
            mask.symlink_to("/dev/null")
        if self.ssh_port:
            (etc / "ssh/sshd_config.d/lab.conf").write_text(
                f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nMaxStartups 50\n"
            )
            wants = etc / "systemd/system/multi-user.target.wants/ssh.service"
            wants.unlink(missing_ok=True)
            wants.symlink_to("/lib/systemd/system/ssh.service")
            ssh = self.root / "root/.ssh"
            ssh.mkdir(mode=0o700, exist_ok=True)
            (ssh / "authorized_keys").write_text(self.authorized_key)

    def _find_leader(self) -> int:
        """The host PID of the container's PID 1: a descendant of nspawn whose innermost PID is 1."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise LabError(f"{self.name}: systemd-nspawn exited {self.proc.returncode}: {self.console.read_text()}")
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            nspid = next((ln.split()[1:] for ln in text.splitlines() if ln.startswith("NSpid:")), [])
            if len(nspid) == 2 and nspid[1] == "1" and self._descends(int(nspid[0])):
                return int(nspid[0])
        return 0

    def _descends(self, pid: int) -> bool:
        assert self.proc is not None
        while pid > 1:
            if pid == self.proc.pid:
                return True
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                return False
        return False

    def sh(self, script: str, *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a shell script inside the machine as root (all of its namespaces); stdout/stderr captured."""
        cmd = ["nsenter", "-t", str(self.leader), "-a", "/bin/sh", "-c", script]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, check=False)
        if check and proc.returncode != 0:
            out = (proc.stdout + proc.stderr)[-1500:]
            raise LabError(f"{self.name}: `{script[:120]}` exited {proc.returncode}: {out}")
        return proc

    def journal(self, unit: str = "edge-daemon", since: str = "") -> str:
        """`journalctl -u UNIT -o cat` inside the machine."""
        opt = f" --since '{since}'" if since else ""
        return self.sh(f"journalctl -q -u {unit} -o cat --no-pager{opt}", check=False).stdout

    def stop(self, timeout: float = 30) -> None:
        """A clean poweroff (nspawn turns SIGTERM into a halt of the container); killed if it takes too long."""
        if self.proc is None:
            return
        kill_group(self.proc, signal.SIGTERM, wait=timeout)
        self.proc = None

    def power_cut(self) -> None:
        """Lose everything not on the disk yet (ext4 shutdown, no flush) and kill the machine.

        The dead file system is unmounted by the next start(), once whoever ran commands in the machine is gone
        too (a process in its mount namespace keeps the file system, and its loop device, alive).
        """
        assert self.disk is not None, "power cuts need a machine with a disk image"
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)
        if self.proc is not None:
            kill_group(self.proc, signal.SIGKILL)
            self.proc = None

    def _release_disk(self) -> None:
        """Unmount the disk if it is still mounted and wait until no loop device holds it (a fresh mount then
        reads what is on the disk and replays the journal, instead of reusing the old file system)."""
        assert self.disk is not None
        if self.root.is_mount():
            run(["umount", self.root], f"{self.name}: umount", timeout=60)
        if self.disk.exists():
            wait_until(lambda: not run(["losetup", "-j", self.disk], "losetup -j").stdout.strip(), 120,
                       f"{self.name}: its disk's loop device to be released")  # fmt: skip

    def close(self) -> None:
        """Stop the machine, unmount the overlay, remove its working files."""
        try:
            self.stop()
        finally:
            if self.root.is_mount():
                run(["umount", self.root], f"{self.name}: umount", timeout=60)
            shutil.rmtree(self.work, ignore_errors=True)  # (a disk image lives beside `work`, for the next start)

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
