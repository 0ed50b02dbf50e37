"""Pull-mode devices on this machine (device lab, issue 24): what tests/device/scenarios_pull.py drives.

- Three nspawn machines of `images_pull.pull_rootfs()` (systemd as PID 1, git, ansible-core) with sshd disabled:
  nothing on the host ever logs in; each device updates itself with `edge-pull.timer` (edge-deploy pull-setup
  --install into its root, then `systemctl enable --now` inside).
- The desired state: a git repository written by `edge-deploy pull-init`, its commits SSH-signed by the lab's
  `ops` key (the devices' allowed signer), served read-only to the devices by git's file protocol
  (file:///srv/fleet-state, a bind mount of the host's folder: a commit on the host is there at once).
- Files by URL: a real HTTP server on the host's 127.0.0.1 (the devices share the host's loopback) serving the
  signed release folder (the project wheel + the daemon's dependency wheels + SHA256SUMS + its signature) and
  the models, each with its `.sig`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.device import images_pull
from tests.device.host import LabError, run
from tests.device.lab import DEMO_CLIP, REPO, Lab
from tests.device.nspawn import Machine

EDGE_DEPLOY = [sys.executable, "-c", "import sys\nfrom deploy.cli import main\nsys.exit(main())"]
STATE = "/var/lib/edge-daemon/deployment.json"


def edge_deploy(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGE_DEPLOY, *map(str, args)], capture_output=True, text=True, cwd=REPO, check=False)


def must(r: subprocess.CompletedProcess) -> str:
    if r.returncode != 0:
        raise LabError(f"{r.args[-3:]}: exit {r.returncode}: {(r.stdout + r.stderr)[-800:]}")
    return r.stdout


class Files:
    """A real HTTP server on 127.0.0.1 serving `root` (stopped by close())."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        handler = lambda *a, **kw: _Quiet(*a, directory=str(root), **kw)  # noqa: E731
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="lab-files")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # the devices' downloads are not the test's output
        pass


class StateRepo:
    """The desired-state repository (pull-init's files) on the host; commit() signs with `key` (None: unsigned)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        must(edge_deploy("pull-init", path))
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, key: Path | None = None) -> str:
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
        cmd = ["git", "-C", str(self.path), "-c", "user.name=ops", "-c", "user.email=ops@example.lan", *sign, *args]
        return run(cmd, f"git {args[0]}").stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)

    def commit(self, message: str, key: Path | None) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message, *(["-S"] if key else []), key=key)
        return self.git("rev-parse", "HEAD")


def ssh_key(d: Path, name: str) -> Path:
    key = d / name
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], "ssh-keygen")
    return key


def window_around_now(before_min: int = 5, after_min: int = 55) -> str:
    now = dt.datetime.now()
    a, b = now - dt.timedelta(minutes=before_min), now + dt.timedelta(minutes=after_min)
    return f"{a:%H:%M}-{b:%H:%M}"


def window_not_now() -> str:
    """A window that starts in 2 hours: a run now is outside it."""
    a = dt.datetime.now() + dt.timedelta(hours=2)
    return f"{a:%H:%M}-{a + dt.timedelta(minutes=30):%H:%M}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PullFleet:
    """Keys, the signed release and models on the file server, the state repository and the devices."""

    def __init__(self, lab: Lab, names: tuple[str, ...], disks: tuple[str, ...] = ()) -> None:
        """`disks`: the devices on an ext4 image of their own (they can take power cuts), the others overlays."""
        self.lab = lab
        self.dir = lab.dir / "pull"
        self.keys = self.dir / "keys"
        self.keys.mkdir(parents=True)
        self.ops, self.stranger = ssh_key(self.keys, "ops"), ssh_key(self.keys, "stranger")
        self.allowed = self.keys / "allowed_signers"
        self.allowed.write_text(f'ops namespaces="git" {self.ops.with_suffix(".pub").read_text()}')
        must(edge_deploy("keygen", self.keys / "model"))
        must(edge_deploy("keygen", self.keys / "release"))
        self.files = Files(self.dir / "www")
        self.repo = StateRepo(self.dir / "fleet-state")
        base = images_pull.pull_rootfs()
        binds = {DEMO_CLIP.parent: "/srv/edge-media", self.repo.path: "/srv/fleet-state"}
        machines = self.dir / "machines"
        self.devices = [Machine(n, base, machines / n, binds_ro=binds, disk=machines / f"{n}.ext4" if n in disks
                                else None) for n in names]  # fmt: skip

    # -- what the file server holds ---------------------------------------------------------------------------------

    def release(self, name: str) -> str:
        """A signed release folder (the project wheel and the daemon's dependency wheels): its URL."""
        folder = self.files.root / "releases" / name
        folder.mkdir(parents=True)
        shutil.copy(self.lab.project_wheel(), folder)
        for wheel in self.lab.wheels().glob("*.whl"):
            shutil.copy(wheel, folder)
        must(edge_deploy("sign", "--key", self.keys / "release/edge-signing.key", folder))
        return f"{self.files.url}/releases/{name}/"

    def model(self, source: Path, name: str, sign: bool = True) -> tuple[str, str]:
        """A model on the file server (signed with the model key): (URL, sha256)."""
        dest = self.files.root / "models" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)
        if sign:
            must(edge_deploy("sign", "--key", self.keys / "model/edge-signing.key", dest))
        return f"{self.files.url}/models/{name}", sha256(dest)

    # -- devices ----------------------------------------------------------------------------------------------------

    def start(self, window: str) -> PullFleet:
        with ThreadPoolExecutor(len(self.devices)) as pool:
            list(pool.map(Machine.start, self.devices))
        for d in self.devices:
            self.lab.store_password(d)
            self.setup(d, window)
        return self

    def setup(self, d: Machine, window: str) -> None:
        """edge-deploy pull-setup --install into the device's root, then the timer enabled inside it."""
        timer = ["--window", window, "--every", "10s", "--spread", "3s"]
        must(edge_deploy("pull-setup", "--repo", "file:///srv/fleet-state", "--allowed-signers", self.allowed, *timer,
                         "--install", "--root", d.root))  # fmt: skip
        d.sh("systemctl daemon-reload && systemctl enable --now edge-pull.timer")

    def device(self, name: str) -> Machine:
        return next(d for d in self.devices if d.name == name)

    def close(self) -> None:
        for d in self.devices:
            d.close()
        self.files.close()
