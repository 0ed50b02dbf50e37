"""Pull mode: `edge-deploy pull-init` (a repository of desired state) and `edge-deploy pull-setup` (a device that
applies it by itself, in its maintenance window, opening no port).

    edge-deploy pull-init fleet-state/                the repository's files: local.yml, inventory.ini (groups
                                                      canary and stable), group_vars/, the edge_daemon role, install.sh
    edge-deploy pull-setup --repo URL --allowed-signers FILE --window 02:00-04:00 [--days Mon..Fri] [--every 15m]
                           [--spread 10m] [--branch main] [--install [--root DIR]]

pull-setup prints (or, with --install, writes and enables) `edge-pull.service` + `edge-pull.timer` (OnCalendar =
the window, RandomizedDelaySec = the spread), the agent (`deploy/pull_agent.py`, standard library only, run by the
system's python3), its settings (/etc/edge-pull/pull.json) and the git config that makes `ansible-pull
--verify-commit` check SSH-signed commits against the allowed signers file (git's `gpg.ssh.allowedSignersFile`;
git verify-commit picks SSH from the signature itself; GnuPG-signed commits need GnuPG keys in root's keyring
instead). The device needs git, ansible-core and openssh-client (ssh-keygen verifies): `apt-get install git
ansible-core openssh-client`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

from deploy.pull_agent import parse_days, parse_window
from edge.errors import EdgeError

ROOT = Path(__file__).resolve().parent.parent
AGENT = Path(__file__).resolve().parent / "pull_agent.py"
ETC = "/etc/edge-pull"
STATE_FILE = "/var/lib/edge-daemon/deployment.json"
CHECKOUT = "/var/lib/edge-pull/checkout"
_SIGNER = re.compile(r"^\S+(\s+\S+=\S+)*\s+(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|sk-\S+)\s+[A-Za-z0-9+/=]+(\s.*)?$")


def parse_every(text: str) -> int:
    """`30s`, `15m` -> seconds (1-59 of either unit)."""
    m = re.fullmatch(r"([1-9]\d?)([sm])", text)
    if not m or int(m.group(1)) > 59:
        raise EdgeError(f"--every {text}: give 1s..59s or 1m..59m")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def calendar(window: str, days: str, every: int | None) -> list[str]:
    """OnCalendar= lines for the window: its start (no `every`), or every `every` seconds through its hours (the
    agent itself refuses the minutes outside it)."""
    start, end = parse_window(window)
    prefix = "" if days in ("", "*") else f"{days} "
    if every is None:
        return [f"{prefix}*-*-* {start // 60:02d}:{start % 60:02d}:00"]
    spec = f"*:00/{every}" if every < 60 else f"00/{every // 60}:00"
    last = (end - 1) // 60  # the hour holding the window's last minute
    spans = [(start // 60, last)] if start < end else [(start // 60, 23), (0, last)]
    return [f"{prefix}*-*-* {a:02d}..{b:02d}:{spec}" for a, b in spans]


def units(args: argparse.Namespace) -> dict[str, str]:
    """The files pull-setup installs, by absolute path (under `--root`)."""
    every = parse_every(args.every) if args.every else None
    try:
        start, end = parse_window(args.window)
        parse_days(args.days)
    except ValueError as e:
        raise EdgeError(f"--window/--days: {e}") from None
    length = (end - start) % (24 * 60) * 60
    spread = parse_spread(args.spread) if args.spread is not None else min(length // 2, 1800)
    if spread >= length:
        raise EdgeError(f"--spread {args.spread}: not shorter than the window ({length // 60} min)")
    cal = "\n".join(f"OnCalendar={line}" for line in calendar(args.window, args.days, every))
    settings = {"repo": args.repo, "branch": args.branch, "window": args.window, "days": args.days,
                "checkout": CHECKOUT, "state_file": STATE_FILE, "gitconfig": f"{ETC}/gitconfig"}  # fmt: skip
    service = f"""# edge-pull: apply the signed desired state of {args.repo} (pull mode; edge-deploy pull-setup).
[Unit]
Description=edge-pull: apply the signed desired state from git
After=network-online.target
Wants=network-online.target
ConditionPathExists={ETC}/pull.json

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 /usr/local/lib/edge-pull/agent.py --config {ETC}/pull.json
Environment=HOME=/root
TimeoutStartSec=3600
Nice=10
"""
    timer = f"""# edge-pull in the maintenance window {args.window} ({args.days}); the agent does nothing outside it.
[Unit]
Description=edge-pull in the maintenance window {args.window}

[Timer]
{cal}
RandomizedDelaySec={spread}
AccuracySec=1s

[Install]
WantedBy=timers.target
"""
    gitconfig = f'[gpg "ssh"]\n\tallowedSignersFile = {ETC}/allowed_signers\n[safe]\n\tdirectory = {CHECKOUT}\n'
    return {
        "/etc/systemd/system/edge-pull.service": service,
        "/etc/systemd/system/edge-pull.timer": timer,
        f"{ETC}/pull.json": json.dumps(settings, indent=1) + "\n",
        f"{ETC}/gitconfig": gitconfig,
        f"{ETC}/allowed_signers": allowed_signers(args.allowed_signers),
        "/usr/local/lib/edge-pull/agent.py": AGENT.read_text(),
    }


def parse_spread(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smh]?)", text)
    if not m:
        raise EdgeError(f"--spread {text}: give seconds, or e.g. 10m, 1h")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def allowed_signers(path: str) -> str:
    """The allowed signers file, each line checked (`principal [options] keytype base64-key`)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeError(f"--allowed-signers {path}: cannot read it ({e})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    bad = next((ln for ln in lines if not _SIGNER.match(ln)), None)
    if not lines or bad is not None:
        raise EdgeError(f"--allowed-signers {path}: {'no signer' if not lines else repr(bad[:60])}: each line is "
                        "'PRINCIPAL namespaces=\"git\" ssh-ed25519 AAAA...' (ssh-keygen's allowed signers format)")
    return text if text.endswith("\n") else text + "\n"


def install(files: dict[str, str], root: Path, enable: bool) -> None:
    for path, text in files.items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.new")
        tmp.write_text(text)
        tmp.chmod(0o755 if dest.suffix == ".py" else 0o644)
        tmp.replace(dest)
    (root / "var/lib/edge-pull").mkdir(parents=True, exist_ok=True)
    if enable:
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "edge-pull.timer"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise EdgeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def add_setup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", required=True, help="the desired state's git repository (URL or path)")
    p.add_argument("--branch", default="main", help="its branch (default main)")
    p.add_argument("--allowed-signers", required=True, help="ssh-keygen allowed signers file: who may sign commits")
    p.add_argument("--window", default="02:00-04:00", help="maintenance window HH:MM-HH:MM, local time (02:00-04:00)")
    p.add_argument("--days", default="*", help="days of the window, e.g. Mon..Fri (default every day)")
    p.add_argument("--every", help="try every Ns/Nm through the window (default: once, at its start)")
    p.add_argument("--spread", help="RandomizedDelaySec: spread a fleet's pulls (default: half the window, <= 30m)")
    p.add_argument("--install", action="store_true", help="write the files and enable the timer (as root)")
    p.add_argument("--root", default="/", help="with --install: write under this root instead (no systemctl)")


def run_setup(args: argparse.Namespace) -> int:
    if not Path(args.repo).exists() and not re.match(r"^[a-z+]+://|^[\w.-]+@[\w.-]+:", args.repo):
        raise EdgeError(f"--repo {args.repo}: neither a URL nor a path that exists")
    files = units(args)
    if not args.install:
        for path, text in files.items():
            if not path.endswith(".py"):
                print(f"# ---- {path}\n{text}")
        print("# ---- /usr/local/lib/edge-pull/agent.py: deploy/pull_agent.py (pull-setup --install copies it)")
        return 0
    install(files, Path(args.root), enable=args.root == "/")
    print(f"edge-deploy: installed edge-pull.service and edge-pull.timer under {args.root} (window {args.window})")
    return 0


LOCAL_YML = """# Applied by every device in pull mode (edge-deploy pull-setup: ansible-pull --verify-commit runs it).
- name: edge-daemon desired state
  hosts: edge
  gather_facts: false
  become: false
  roles:
    - edge_daemon
"""
INVENTORY = """# Devices by host name; the group is the channel: canary first, stable later (each its group_vars/).
[canary]
# cam-01

[stable]
# cam-02

[edge:children]
canary
stable

[edge:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
"""
GROUP_VARS = """# Desired state of the {group} devices. Pin per device in host_vars/<host>.yml.
# edge_release: "0.2.0"
# edge_release_url: "https://files.example.lan/releases/0.2.0/"   # a signed folder (edge-deploy sign)
# edge_model_url: "https://files.example.lan/models/birds-v3.tflite"
# edge_model_sha256: "<sha256sum of the model>"
"""


def run_init(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    if out.exists() and any(out.iterdir()):
        raise EdgeError(f"{out}: not empty; pull-init writes a new repository's files")
    shutil.copytree(ROOT / "deploy/ansible/roles/edge_daemon", out / "roles/edge_daemon")
    (out / "deploy").mkdir()
    shutil.copy(ROOT / "deploy/install.sh", out / "deploy/install.sh")
    (out / "systemd").mkdir()
    for name in ("edge-daemon.service", "edge-daemon@.service", "60-edge-daemon-coral.rules"):
        shutil.copy(ROOT / "systemd" / name, out / "systemd" / name)
    (out / "group_vars").mkdir()
    (out / "host_vars").mkdir()
    (out / "local.yml").write_text(LOCAL_YML)
    (out / "inventory.ini").write_text(INVENTORY)
    (out / "group_vars/edge.yml").write_text("# Every device: broker, camera, keys.\nedge_project_dir: "
                                             '"{{ playbook_dir }}"\nedge_mqtt_host: mqtt.example.lan\n')  # fmt: skip
    for group in ("canary", "stable"):
        (out / f"group_vars/{group}.yml").write_text(GROUP_VARS.format(group=group))
    print(f"edge-deploy: wrote the desired-state repository's files into {out}; git init, commit them signed "
          "(git config gpg.format ssh; git commit -S)")  # fmt: skip
    return 0


def add_init_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="a new (empty) folder for the repository's files")
