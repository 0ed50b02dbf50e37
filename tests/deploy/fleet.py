"""A fleet of real SSH "devices" on this machine for the Ansible tests.

Each device is its own OpenSSH server (Debian's /usr/sbin/sshd) on a free loopback port with a generated host
key, accepting one generated client key for root, plus its own install root (`EDGE_ROOT`) where install.sh puts
the release venvs, config, models and account files. Ansible reaches every device over a real SSH connection.
Where systemd is not PID 1 (here) the service manager is `supervise.sh`, which runs the installed daemon the way
the unit does (check-config, then run); that is the only replaced step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.mosquitto import free_port, port_open

SSHD = "/usr/sbin/sshd"
SUPERVISE = Path(__file__).resolve().parent / "supervise.sh"
REPO = Path(__file__).resolve().parents[2]


def fleet_prerequisites() -> str | None:
    """Why the fleet tests cannot run here, or None."""
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "OpenSSH server/client not installed (apt-get install openssh-server openssh-client)"
    if not shutil.which("ansible-playbook"):
        return "ansible-core not installed (pip install -e '.[deploy]')"
    if os.geteuid() != 0:
        return "the fleet tests log in as root over SSH and install as root; run them as root"
    return None


@dataclass
class Device:
    """One simulated device: an sshd on 127.0.0.1:port and an install root."""

    name: str
    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def service_command(self) -> str:
        return f"{SUPERVISE} {self.root}"

    def supervise(self, verb: str) -> subprocess.CompletedProcess:
        """Run the stand-in service manager for this device."""
        return subprocess.run([str(SUPERVISE), str(self.root), verb], capture_output=True, text=True, check=False)

    def log(self) -> str:
        """The daemon's log (stdout+stderr of every start)."""
        p = self.root / "var/log/edge-daemon.log"
        return p.read_text(errors="replace") if p.exists() else ""


class Fleet:
    """Start `n` sshd devices under `base`; `close()` stops their daemons and sshds."""

    def __init__(self, base: Path, names: list[str]) -> None:
        self.base = base
        self.key = base / "id_ed25519"
        self.devices = [Device(n, base / n, free_port()) for n in names]
        # ssh connection sharing (each new connection costs ~1 s here); sockets in a short path, closed by close()
        self.control_dir = Path(tempfile.mkdtemp(prefix="edge-ssh-", dir="/tmp"))

    def start(self) -> Fleet:
        self.base.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        (self.base / "authorized_keys").write_text((self.base / "id_ed25519.pub").read_text())
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        for d in self.devices:
            d.root.mkdir(parents=True, exist_ok=True)
            etc = self.base / f"sshd-{d.name}"
            etc.mkdir()
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "host_key")], check=True)
            (etc / "sshd_config").write_text(
                f"Port {d.port}\nListenAddress 127.0.0.1\nHostKey {etc / 'host_key'}\nPidFile {etc / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {self.base / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "Subsystem sftp internal-sftp\nMaxStartups 50\n"
            )
            d.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(etc / "sshd_config")],
                stdout=subprocess.DEVNULL,
                stderr=open(etc / "sshd.log", "w"),  # noqa: SIM115 - closed with the process
            )
        deadline = time.monotonic() + 10
        while not all(port_open(d.port) for d in self.devices):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start; see {self.base}/sshd-*/sshd.log")
            time.sleep(0.05)
        return self

    def inventory(self, path: Path, group_vars: dict[str, object], host_vars: dict[str, dict] | None = None) -> Path:
        """Write an INI inventory: every device with its port, root and service command, plus the given vars."""
        lines = ["[edge]"]
        for d in self.devices:
            extra = " ".join(f"{k}={v}" for k, v in (host_vars or {}).get(d.name, {}).items())
            lines.append(
                f"{d.name} ansible_host=127.0.0.1 ansible_port={d.port} edge_root={d.root} "
                f"edge_service_command='{d.service_command}' {extra}".rstrip()
            )
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": "'-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
            "ansible_python_interpreter": "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
            "ansible_ssh_args": f"'-o ControlMaster=auto -o ControlPersist=60s -o ControlPath={self.control_dir}/%C'",
            "ansible_pipelining": "true",
            "edge_become": "false",
            "edge_service_manager": "command",
        }
        lines += ["", "[edge:vars]"] + [f"{k}={v}" for k, v in {**common, **group_vars}.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def close(self) -> None:
        for d in self.devices:
            d.supervise("stop")
            subprocess.run(
                ["ssh", "-O", "exit", "-o", f"ControlPath={self.control_dir}/%C", "-p", str(d.port), "root@127.0.0.1"],
                capture_output=True,
                check=False,
            )
            if d.proc and d.proc.poll() is None:
                d.proc.terminate()
                try:
                    d.proc.wait(5)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait()
        shutil.rmtree(self.control_dir, ignore_errors=True)
