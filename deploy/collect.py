"""`edge-deploy collect`: gather the frames the devices kept for retraining into an inbox on this machine.

    edge-deploy collect --hosts inventory.ini --out inbox/ [--remove]

Drives `deploy/ansible/collect.yml` (the `edge_collect` role): each device's complete pairs are archived with
their sha256, fetched, verified and unpacked here by `deploy.inbox` into `inbox/<label>/<stem>.jpg|.json`
(provenance in each sidecar, duplicates skipped); with `--remove` the device then deletes exactly the files that
were transferred. Prints one row per device; exit 1 when any device failed or was not reached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from deploy.playbooks import COLLECT, fleet_outcome, inventory_hosts, read_reports, run_playbook, table
from edge.errors import EdgeError

HEADER = ["DEVICE", "COLLECTED", "DUPLICATES", "REMOVED", "FAILED"]


def collect_row(r: dict) -> list[str]:
    """device, new images, duplicates skipped, removed from the device (`-` when not asked), failure."""
    if r.get("result") != "collected":
        return [r["host"], "-", "-", "-", r.get("message") or r.get("result", "failed")]
    removed = "-" if r.get("removed") is None else str(r["removed"])
    return [r["host"], str(r.get("collected", 0)), str(r.get("duplicates", 0)), removed, "-"]


def inbox_dir(out: str) -> Path:
    """The inbox as an absolute path, created (0700: the frames are private) when missing."""
    path = Path(out).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise EdgeError(f"--out {out}: not a folder; give the inbox folder (created when missing)")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeError(f"--out {out}: cannot create it ({e.strerror}); give a writable folder") from None
    return path


def run_collect(args: argparse.Namespace) -> int:
    """`edge-deploy collect`."""
    if not Path(args.hosts).exists():
        raise EdgeError(f"--hosts {args.hosts}: no such inventory file")
    hosts = inventory_hosts(args.hosts, args.group, args.limit)
    out = inbox_dir(args.out)
    extra = {
        "edge_collect_out": str(out),
        "edge_collect_remove": bool(args.remove),
        "edge_collect_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        run_playbook(args, extra, Path(tmp), COLLECT)
        reports = read_reports(Path(tmp), hosts)
    if args.json:
        print(json.dumps(reports))
    else:
        print(table([collect_row(r) for r in reports], HEADER))
        for r in reports:
            if r.get("result") == "collected" and r.get("message"):
                print(f"edge-deploy: warning: {r['host']}: {r['message']}", file=sys.stderr)
    sys.stdout.flush()
    return fleet_outcome(reports, lambda r: r.get("result") == "collected")


def add_collect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hosts", "-i", required=True, metavar="INVENTORY", help="Ansible inventory file")
    p.add_argument("--out", "-o", required=True, metavar="INBOX", help="folder for the frames (<label>/<stem>.jpg)")
    p.add_argument("--remove", action="store_true",
                   help="delete the transferred files from the devices once verified and written here")  # fmt: skip
    p.add_argument("--group", default="edge", help="inventory group (or host) to act on (default: edge)")
    p.add_argument("--limit", help="further limit the hosts (Ansible --limit pattern)")
    p.add_argument("--extra-vars", "-e", action="append", help="more role variables, KEY=VALUE or JSON")
    p.add_argument("--json", action="store_true", help="print the device results as JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="show Ansible's output")
