"""`edge-deploy`: the common fleet operations without writing playbooks; drives `deploy/ansible/playbook.yml`.

    edge-deploy model birds-v3.tflite --hosts inventory.ini       push a model everywhere (batches, health, rollback)
    edge-deploy release dist/edge_daemon-0.2.0-py3-none-any.whl --hosts inventory.ini    install/upgrade the daemon
    edge-deploy status --hosts inventory.ini                      device, release, model, online, last classification

Each device writes one JSON result into a temporary directory on this machine (the role's `edge_report_dir`);
the tables are printed from those. The command line has the shape of all three CLIs (`edge.cli_main`). Exit
status: 0 every device fine; 1 some device failed, was rolled back or was not reached, or Ansible itself failed
(`Failure`); 2 bad arguments, a missing inventory/model/wheel, an inventory Ansible cannot read or Ansible not
installed (`EdgeError`); errors are one line on stderr.
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

from edge import __version__, cli_main
from edge.cli_main import EXIT_FAILURE, EXIT_OK, Command, run_main
from edge.errors import EdgeError, Failure

PLAYBOOK = Path(__file__).resolve().parent / "ansible" / "playbook.yml"


def _tool(name: str) -> str:
    """An Ansible executable: beside this Python first (a venv with the `deploy` extra), then on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise EdgeError(f"{name} not found; install the deploy extra: pip install 'edge-daemon[deploy]'")
    return found


def project_dir() -> Path:
    """The checkout holding `deploy/install.sh` and `systemd/`, which the role copies to the devices."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "systemd" / "edge-daemon.service").is_file():
        raise EdgeError(f"{root}/systemd/edge-daemon.service missing; run edge-deploy from a project checkout")
    return root


def inventory_hosts(inventory: str, pattern: str) -> list[str]:
    """The hosts of `pattern` in the inventory, in inventory order (via ansible-inventory)."""
    proc = subprocess.run(
        [_tool("ansible-inventory"), "-i", inventory, "--list"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise EdgeError(f"--hosts {inventory}: ansible-inventory failed: {_last_line(proc.stderr)}")
    data = json.loads(proc.stdout)

    def hosts_of(group: str) -> list[str]:
        entry = data.get(group, {})
        out = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            out += [h for h in hosts_of(child) if h not in out]
        return out

    hosts = hosts_of(pattern) if pattern in data else ([pattern] if pattern in data["_meta"]["hostvars"] else [])
    if not hosts:
        raise EdgeError(f"--hosts {inventory}: no hosts in group or host {pattern!r}; check --group")
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
        raise Failure(f"ansible-playbook failed (exit {proc.returncode}): {_last_line(log.read_text())}")
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
    return EXIT_OK if all(r.get("release") and not r.get("result") for r in reports) else EXIT_FAILURE


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
    return EXIT_OK if all(r["result"] in ("deployed", "unchanged") for r in reports) else EXIT_FAILURE


def _existing(path: str, what: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise EdgeError(f"{what} {path}: no such file")
    return str(p.resolve())


def _inventory(args: argparse.Namespace) -> None:
    if not Path(args.hosts).exists():
        raise EdgeError(f"--hosts {args.hosts}: no such inventory file")


def run_status(args: argparse.Namespace) -> int:
    """`edge-deploy status`."""
    _inventory(args)
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        return cmd_status(args, Path(tmp))


def run_model(args: argparse.Namespace) -> int:
    """`edge-deploy model`."""
    _inventory(args)
    extra: dict[str, object] = {"edge_model": _existing(args.model, "model")}
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        return cmd_rollout(args, Path(tmp), extra)


def run_release(args: argparse.Namespace) -> int:
    """`edge-deploy release`."""
    _inventory(args)
    extra: dict[str, object] = {"edge_wheel": _existing(args.wheel, "wheel")}
    if args.release:
        extra["edge_release"] = args.release
    if args.model:
        extra["edge_model"] = _existing(args.model, "model")
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        return cmd_rollout(args, Path(tmp), extra)


def add_fleet_args(p: argparse.ArgumentParser) -> None:
    """The options every subcommand takes: the inventory, which hosts, batches, output."""
    p.add_argument("--hosts", "-i", required=True, metavar="INVENTORY", help="Ansible inventory file")
    p.add_argument("--group", default="edge", help="inventory group (or host) to act on (default: edge)")
    p.add_argument("--limit", help="further limit the hosts (Ansible --limit pattern)")
    p.add_argument("--serial", help="devices per batch, a number or a percentage (default 25%%)")
    p.add_argument("--max-fail-percent", type=int, help="stop when more than this %% of a batch fails (10)")
    p.add_argument("--extra-vars", "-e", action="append", help="more role variables, KEY=VALUE or JSON")
    p.add_argument("--json", action="store_true", help="print the device results as JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="show Ansible's output")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the .tflite model")
    add_fleet_args(p)
    p.add_argument("--timeout", type=float, default=60, help="health check: seconds to wait for a classification")


def add_release_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("wheel", help="edge_daemon-<version>-py3-none-any.whl (python3 -m pip wheel --no-deps .)")
    add_fleet_args(p)
    p.add_argument("--release", help="release name on the devices (default: the wheel's version)")
    p.add_argument("--model", help="also push this model")
    p.add_argument("--timeout", type=float, default=60, help="health check: seconds to wait for a classification")


def add_status_args(p: argparse.ArgumentParser) -> None:
    add_fleet_args(p)
    p.add_argument("--timeout", type=float, default=3, help="seconds to listen on each device's broker")


COMMANDS = (
    Command("model", "push a model to every device (the usual roll-out)", add_model_args, run_model),
    Command("release", "install or upgrade the daemon from a wheel", add_release_args, run_release),
    Command("status", "table of device, release, model, online, last classification", add_status_args, run_status),
)


def build_parser() -> argparse.ArgumentParser:
    """`edge-deploy`'s parser: the subcommands of `COMMANDS` on the shared shape (`edge.cli_main`)."""
    description = (
        "Roll out edge-daemon and models to a fleet (drives deploy/ansible/playbook.yml).\n"
        "Exit status 1 also when any device failed, was rolled back or was not reached."
    )
    return cli_main.build_parser("edge-deploy", description, COMMANDS, version=__version__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `edge-deploy`; returns the exit status (see the module docstring)."""
    return run_main(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
