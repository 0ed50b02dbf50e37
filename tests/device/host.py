"""What the lab needs from this machine, and the few process helpers every part of it shares.

Processes the lab starts (systemd-nspawn, QEMU) are started in their own session and remembered here; `stop_all`
(also run at interpreter exit) kills those and only those, by their process group.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("tests.device")
T = TypeVar("T")

# Host tools and the Debian packages that provide them (all in tests/run.sh's APT_PACKAGES).
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "qemu-system-x86_64": "qemu-system-x86",
    "genisoimage": "genisoimage",
    "nc": "netcat-openbsd",
    "mkfs.fat": "dosfstools",
    "mcopy": "mtools",
    "mkfs.ext4": "e2fsprogs",
    "mosquitto": "mosquitto",
    "ssh": "openssh-client",
}


class LabError(RuntimeError):
    """A step of the lab failed; the message says which and carries the tool's last output lines."""


def missing_capability() -> str | None:
    """Why this machine cannot run the lab at all (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "the device lab boots containers and VMs and mounts overlays: run it as root"
    gone = [f"{tool} ({pkg})" for tool, pkg in TOOLS.items() if not shutil.which(tool, path=_path())]
    if gone:
        return "missing on this machine: " + ", ".join(gone) + "; tests/run.sh installs them"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay file system (needed for the nspawn machines)"
    return None


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def cache_dir() -> Path:
    """Where built images live between runs: $EDGE_LAB_CACHE or ~/.cache/edge-daemon/device-lab."""
    root = os.environ.get("EDGE_LAB_CACHE") or Path.home() / ".cache" / "edge-daemon" / "device-lab"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(cmd: Sequence[str | os.PathLike], what: str, *, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """Run a command to completion; LabError with its last output lines when it fails."""
    env = {**os.environ, "PATH": _path(), **kw.pop("env", {})}
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, **kw)  # fmt: skip
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise LabError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc


_STARTED: list[subprocess.Popen] = []
_LEADERS: dict[int, int] = {}  # spawned pid -> a process outside its group that dies with it (a container's PID 1)


def tie(proc: subprocess.Popen, pid: int) -> None:
    """Make `kill_group(proc, SIGKILL)` also kill `pid` (e.g. a container's init, which nspawn does not take along)."""
    _LEADERS[proc.pid] = pid


def spawn(cmd: Sequence[str | os.PathLike], logfile: Path, **kw) -> subprocess.Popen:
    """Start a long-running process in its own session (so its whole group can be killed), output to `logfile`."""
    env = {**os.environ, "PATH": _path(), **kw.pop("env", {})}
    with open(logfile, "ab") as out:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, **kw)  # fmt: skip
    _STARTED.append(proc)
    return proc


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, wait: float = 10) -> None:
    """Signal a process started by `spawn` and its group; reap it (SIGKILL when it outlives `wait`)."""
    tied = _LEADERS.pop(proc.pid, 0)
    if proc.poll() is None:
        if sig == signal.SIGKILL and tied:
            with contextlib.suppress(ProcessLookupError):
                os.kill(tied, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            for pid in filter(None, (tied,)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc in _STARTED:
        _STARTED.remove(proc)


@atexit.register
def stop_all() -> None:
    """Kill every process group this lab started and that still runs (an interrupted run leaves none behind)."""
    for proc in list(_STARTED):
        kill_group(proc, signal.SIGKILL, wait=5)


def wait_until(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call `probe` until it returns something truthy; LabError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
