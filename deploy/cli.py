"""`edge-deploy`: the common fleet operations without writing playbooks; drives `deploy/ansible/playbook.yml`.

    edge-deploy model birds-v3.tflite --hosts inventory.ini       push a model everywhere (batches, health, rollback)
    edge-deploy release dist/edge_daemon-0.2.0-py3-none-any.whl --hosts inventory.ini    install/upgrade the daemon
    edge-deploy status --hosts inventory.ini                      device, release, model, online, last classification

Each device writes one JSON result into a temporary directory on this machine (the role's `edge_report_dir`);
the tables are printed from those. Exit codes: 0 every device fine, 1 some device failed, was rolled back or was
not reached, 2 bad arguments or Ansible missing (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PLAYBOOK = Path(__file__).resolve().parent / "ansible" / "playbook.yml"
EXIT_FAILED, EXIT_USAGE = 1, 2


class DeployError(Exception):
    """An expected failure: one line for the user."""


def _tool(name: str) -> str:
    """An Ansible executable: beside this Python first (a venv with the `deploy` extra), then on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise DeployError(f"{name} not found; install the deploy extra: pip install 'edge-daemon[deploy]'")
    return found


def project_dir() -> Path:
    """The checkout holding `deploy/install.sh` and `systemd/`, which the role copies to the devices."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "systemd" / "edge-daemon.service").is_file():
        raise DeployError(f"{root}/systemd/edge-daemon.service missing; run edge-deploy from a project checkout")
    return root


def inventory_hosts(inventory: str, pattern: str) -> list[str]:
    """The hosts of `pattern` in the inventory, in inventory order (via ansible-inventory)."""
    proc = subprocess.run(
        [_tool("ansible-inventory"), "-i", inventory, "--list"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise DeployError(f"--hosts {inventory}: ansible-inventory failed: {_last_line(proc.stderr)}")
    data = json.loads(proc.stdout)

    def hosts_of(group: str) -> list[str]:
        entry = data.get(group, {})
        out = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            out += [h for h in hosts_of(child) if h not in out]
        return out

    hosts = hosts_of(pattern) if pattern in data else ([pattern] if pattern in data["_meta"]["hostvars"] else [])
    if not hosts:
        raise DeployError(f"--hosts {inventory}: no hosts in group or host {pattern!r}; check --group")
    return hosts


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def run_playbook(args: argparse.Namespace, extra: dict[str, object], report_dir: Path) -> int:
    """Run the playbook with `extra` vars; Ansible's own output goes to stderr with -v, else to a log file."""
    variables = {
        "edge_hosts": args.group,
        "edge_project_dir": str(project_dir()),
        "edge_report_dir": str(report_dir),
        **extra,
    }
    if args.serial:
        variables["edge_serial"] = args.serial
    if args.max_fail_percent is not None:
        variables["edge_max_fail_percentage"] = args.max_fail_percent
    cmd = [_tool("ansible-playbook"), "-i", args.hosts, str(PLAYBOOK), "-e", json.dumps(variables)]
    for item in args.extra_vars or ():
        cmd += ["-e", item]
    if args.limit:
        cmd += ["--limit", args.limit]
    env = {**os.environ, "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_NOCOLOR": "1"}
    log = report_dir / "ansible.log"
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=None if args.verbose else out, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode not in (0, 2, 4) and not args.verbose:  # 2: hosts failed, 4: unreachable (both reported)
        raise DeployError(f"ansible-playbook failed (exit {proc.returncode}): {_last_line(log.read_text())}")
    return proc.returncode


FATAL = re.compile(r"^fatal: \[([^\]]+)\]: (?:FAILED|UNREACHABLE)! => (\{.*\})\s*$", re.MULTILINE)


def host_errors(log: str) -> dict[str, str]:
    """The last Ansible failure message per host, from the playbook's output."""
    out = {}
    for host, blob in FATAL.findall(log):
        try:
            out[host] = " ".join(str(json.loads(blob).get("msg", "")).split())
        except ValueError:
            out[host] = blob[:200]
    return out


def first_error(log: str) -> str | None:
    """Ansible's first `[ERROR]:` line (a broken task or inventory fails every host with it)."""
    m = re.search(r"^\[ERROR\]: (.*)$", log, re.MULTILINE)
    return m.group(1).strip() if m else None


def read_reports(report_dir: Path, hosts: list[str]) -> list[dict]:
    """One result per host; a host that wrote none failed early, was unreachable or was skipped (roll-out stopped)."""
    log = report_dir / "ansible.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    errors, general = host_errors(text), first_error(text)
    out = []
    for host in hosts:
        path = report_dir / f"{host}.json"
        if path.is_file():
            out.append(json.loads(path.read_text()))
        elif host in errors or general:
            out.append({"host": host, "result": "failed", "message": errors.get(host) or general})
        else:
            why = "the roll-out stopped before this device (see max_fail_percentage), or it was unreachable"
            out.append({"host": host, "result": "not reached", "message": why})
    return out


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def status_row(r: dict) -> list[str]:
    """device, release, model, online, last classification: one status table row from a device report."""
    h = r.get("health") or {}
    c = h.get("classification") or {}
    last = f"{c.get('label')} {c.get('score', 0):.2f} at {c.get('timestamp')}" if c else "-"
    online = h.get("availability") or ("unknown" if r.get("error") or "unreachable" in str(h.get("problem")) else "-")
    return [r["host"], r.get("release") or "-", r.get("model") or "-", online, last]


def cmd_status(args: argparse.Namespace, report_dir: Path) -> int:
    hosts = inventory_hosts(args.hosts, args.group)
    run_playbook(args, {"edge_action": "status", "edge_status_timeout": args.timeout}, report_dir)
    reports = read_reports(report_dir, hosts)
    if args.json:
        print(json.dumps(reports))
    else:
        print(table([status_row(r) for r in reports], ["DEVICE", "RELEASE", "MODEL", "ONLINE", "LAST CLASSIFICATION"]))
        for r in reports:
            if r.get("message") or r.get("error"):
                print(f"{r['host']}: {r.get('message') or r.get('error')}", file=sys.stderr)
    return 0 if all(r.get("release") and not r.get("result") for r in reports) else EXIT_FAILED


def cmd_rollout(args: argparse.Namespace, report_dir: Path, extra: dict[str, object]) -> int:
    hosts = inventory_hosts(args.hosts, args.group)
    extra = {"edge_action": "deploy", "edge_health_timeout": args.timeout, **extra}
    run_playbook(args, extra, report_dir)
    reports = read_reports(report_dir, hosts)
    if args.json:
        print(json.dumps(reports))
    else:
        rows = [[r["host"], r["result"], r.get("release") or "-", r.get("model") or "-", r.get("message", "")]
                for r in reports]  # fmt: skip
        print(table(rows, ["DEVICE", "RESULT", "RELEASE", "MODEL", "DETAIL"]))
    return 0 if all(r["result"] in ("deployed", "unchanged") for r in reports) else EXIT_FAILED


def _existing(path: str, what: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DeployError(f"{what} {path}: no such file")
    return str(p.resolve())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-deploy", description="Roll out edge-daemon and models to a fleet.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--hosts", "-i", required=True, metavar="INVENTORY", help="Ansible inventory file")
    common.add_argument("--group", default="edge", help="inventory group (or host) to act on (default: edge)")
    common.add_argument("--limit", help="further limit the hosts (Ansible --limit pattern)")
    common.add_argument("--serial", help="devices per batch, a number or a percentage (default 25%%)")
    common.add_argument("--max-fail-percent", type=int, help="stop when more than this %% of a batch fails (10)")
    common.add_argument("--extra-vars", "-e", action="append", help="more role variables, KEY=VALUE or JSON")
    common.add_argument("--json", action="store_true", help="print the device results as JSON")
    common.add_argument("--verbose", "-v", action="store_true", help="show Ansible's output")

    p = sub.add_parser("model", parents=[common], help="push a model to every device (the usual roll-out)")
    p.add_argument("model", help="the .tflite model")
    p.add_argument("--timeout", type=float, default=60, help="health check: seconds to wait for a classification")

    p = sub.add_parser("release", parents=[common], help="install or upgrade the daemon from a wheel")
    p.add_argument("wheel", help="edge_daemon-<version>-py3-none-any.whl (python3 -m pip wheel --no-deps .)")
    p.add_argument("--release", help="release name on the devices (default: the wheel's version)")
    p.add_argument("--model", help="also push this model")
    p.add_argument("--timeout", type=float, default=60, help="health check: seconds to wait for a classification")

    p = sub.add_parser("status", parents=[common], help="table of device, release, model, online, last classification")
    p.add_argument("--timeout", type=float, default=3, help="seconds to listen on each device's broker")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not Path(args.hosts).exists():
            raise DeployError(f"--hosts {args.hosts}: no such inventory file")
        with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
            report_dir = Path(tmp)
            if args.command == "status":
                return cmd_status(args, report_dir)
            if args.command == "model":
                return cmd_rollout(args, report_dir, {"edge_model": _existing(args.model, "model")})
            extra: dict[str, object] = {"edge_wheel": _existing(args.wheel, "wheel")}
            if args.release:
                extra["edge_release"] = args.release
            if args.model:
                extra["edge_model"] = _existing(args.model, "model")
            return cmd_rollout(args, report_dir, extra)
    except DeployError as e:
        print(f"edge-deploy: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
