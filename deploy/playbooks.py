"""Running the fleet playbooks for `edge-deploy` and reading back one result per device.

Each device writes one JSON result into a temporary directory on this machine (the playbooks' `edge_report_dir`);
a device that wrote none failed early (its Ansible error is read from the log), was unreachable, or was not
reached because the roll-out stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from edge.errors import EdgeError, Failure

ANSIBLE_DIR = Path(__file__).resolve().parent / "ansible"
ROLLOUT = ANSIBLE_DIR / "playbook.yml"
COLLECT = ANSIBLE_DIR / "collect.yml"


def tool(name: str) -> str:
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


def inventory_hosts(inventory: str, pattern: str, limit: str | None = None) -> list[str]:
    """The hosts of `pattern` in the inventory, in inventory order (via ansible-inventory), within `limit`."""
    proc = subprocess.run(
        [tool("ansible-inventory"), "-i", inventory, "--list"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise EdgeError(f"--hosts {inventory}: ansible-inventory failed: {last_line(proc.stderr)}")
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
    if limit:
        proc = subprocess.run([tool("ansible"), "-i", inventory, pattern, "--limit", limit, "--list-hosts"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        limited = {line.strip() for line in proc.stdout.splitlines()[1:]} if proc.returncode == 0 else set()
        hosts = [h for h in hosts if h in limited]
        if not hosts:
            raise EdgeError(f"--limit {limit}: matches no host of {pattern!r} in {inventory}; check the pattern")
    return hosts


def last_line(text: str) -> str:
    """The last non-blank line of `text` (an error's summary), or `(no output)`."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def run_playbook(args: argparse.Namespace, extra: dict[str, object], report_dir: Path, playbook: Path = ROLLOUT) -> int:
    """Run `playbook` with `extra` vars; Ansible's own output goes to stderr with -v, else to a log file.

    Raises:
        Failure: Ansible itself failed (not a device: a bad extra-vars file, a broken task).
    """
    variables = {
        "edge_hosts": args.group,
        "edge_project_dir": str(project_dir()),
        "edge_report_dir": str(report_dir),
        **extra,
    }
    if getattr(args, "serial", None):
        variables["edge_serial"] = args.serial
    if getattr(args, "max_fail_percent", None) is not None:
        variables["edge_max_fail_percentage"] = args.max_fail_percent
    cmd = [tool("ansible-playbook"), "-i", args.hosts, str(playbook), "-e", json.dumps(variables)]
    for item in args.extra_vars or ():
        cmd += ["-e", item]
    if args.limit:
        cmd += ["--limit", args.limit]
    env = {**os.environ, "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_NOCOLOR": "1"}
    log = report_dir / "ansible.log"
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=None if args.verbose else out, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode not in (0, 2, 4) and not args.verbose:  # 2: hosts failed, 4: unreachable (both reported)
        raise Failure(f"ansible-playbook failed (exit {proc.returncode}): {last_line(log.read_text())}")
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


def fleet_outcome(reports: list[dict], fine: Callable[[dict], bool]) -> int:
    """0 when every device is fine; else one `Failure` line naming each device that is not, and why."""
    bad = [r for r in reports if not fine(r)]
    if not bad:
        return 0
    why = "; ".join(f"{r['host']}: {r.get('message') or r.get('error') or r.get('result') or 'not fine'}" for r in bad)
    raise Failure(f"{len(bad)} of {len(reports)} device(s) not fine: {why[:600]}")
