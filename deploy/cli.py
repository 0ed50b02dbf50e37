"""`edge-deploy`: the common fleet operations without writing playbooks; drives the playbooks in `deploy/ansible/`.

    edge-deploy model birds-v3.tflite --hosts inventory.ini       push a model everywhere (batches, health, rollback)
    edge-deploy release dist/edge_daemon-0.2.0-py3-none-any.whl --hosts inventory.ini    install/upgrade the daemon
    edge-deploy status --hosts inventory.ini                      device, release, model, online, last classification
    edge-deploy status --broker mqtt.lan                          the same from the broker (pull mode), no SSH
    edge-deploy pull-init fleet-state/ ; edge-deploy pull-setup --repo URL --allowed-signers FILE --window 02:00-04:00
                                                                  pull mode: devices update themselves (deploy.pull)
    edge-deploy collect --hosts inventory.ini --out inbox/ [--remove]    gather the frames the devices kept
    edge-deploy image --out edge.img [--suite trixie] [--config C] [--model M]    a flashable Raspberry Pi image
    edge-deploy keygen keys/ ; edge-deploy sign --key keys/edge-signing.key MODEL|RELEASE_DIR ; edge-deploy verify
        --key keys/edge-signing.pub MODEL|RELEASE_DIR     signed models and releases (deploy.signing)

`model` (and `release --model`) refuse a model whose held-out accuracy (its embedded `metrics.json`) is below
that of the model it replaces, unless `--force` (`deploy.model_metrics`).

Each device writes one JSON result into a temporary directory on this machine (the role's `edge_report_dir`);
the tables are printed from those. The command line has the shape of all three CLIs (`edge.cli.shape`). Exit
status: 0 every device fine; 1 some device failed, was rolled back or was not reached, or Ansible itself failed
(`Failure`); 2 bad arguments, a missing inventory/model/wheel, an inventory Ansible cannot read or Ansible not
installed (`EdgeError`); errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from deploy.broker_status import add_broker_args, run_broker_status
from deploy.collect import add_collect_args, run_collect
from deploy.image import add_image_args, run_image
from deploy.model_metrics import check_model
from deploy.playbooks import fleet_outcome, inventory_hosts, read_reports, run_playbook, table
from deploy.pull import add_init_args, add_setup_args, run_init, run_setup
from deploy.signing import add_keygen_args, add_sign_args, add_verify_args, run_keygen, run_sign, run_verify
from edge import __version__
from edge.cli import shape
from edge.cli.shape import Command, run_main
from edge.errors import EdgeError


def status_row(r: dict) -> list[str]:
    """device, release, model, online, last classification: one status table row from a device report."""
    h = r.get("health") or {}
    c = h.get("classification") or {}
    last = f"{c.get('label')} {c.get('score', 0):.2f} at {c.get('timestamp')}" if c else "-"
    online = h.get("availability") or ("unknown" if r.get("error") or "unreachable" in str(h.get("problem")) else "-")
    return [r["host"], r.get("release") or "-", r.get("model") or "-", online, last]


def cmd_status(args: argparse.Namespace, report_dir: Path) -> int:
    hosts = inventory_hosts(args.hosts, args.group, args.limit)
    run_playbook(args, {"edge_action": "status", "edge_status_timeout": args.timeout}, report_dir)
    reports = read_reports(report_dir, hosts)
    if args.json:
        print(json.dumps(reports))
    else:
        print(table([status_row(r) for r in reports], ["DEVICE", "RELEASE", "MODEL", "ONLINE", "LAST CLASSIFICATION"]))
    sys.stdout.flush()
    return fleet_outcome(reports, lambda r: bool(r.get("release")) and not r.get("result"))


def cmd_rollout(args: argparse.Namespace, report_dir: Path, extra: dict[str, object]) -> int:
    hosts = inventory_hosts(args.hosts, args.group, args.limit)
    extra = {"edge_action": "deploy", "edge_health_timeout": args.timeout, **extra}
    run_playbook(args, extra, report_dir)
    reports = read_reports(report_dir, hosts)
    if args.json:
        print(json.dumps(reports))
    else:
        rows = [[r["host"], r["result"], r.get("release") or "-", r.get("model") or "-", r.get("message", "")]
                for r in reports]  # fmt: skip
        print(table(rows, ["DEVICE", "RESULT", "RELEASE", "MODEL", "DETAIL"]))
    sys.stdout.flush()
    return fleet_outcome(reports, lambda r: r["result"] in ("deployed", "unchanged"))


def _existing(path: str, what: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise EdgeError(f"{what} {path}: no such file")
    return str(p.resolve())


def _inventory(args: argparse.Namespace) -> None:
    if not Path(args.hosts).exists():
        raise EdgeError(f"--hosts {args.hosts}: no such inventory file")


def run_status(args: argparse.Namespace) -> int:
    """`edge-deploy status`: over SSH (--hosts), or from the broker's retained messages (--broker)."""
    if args.broker:
        return run_broker_status(args)
    if not args.hosts:
        raise EdgeError("status: give --hosts INVENTORY (over SSH) or --broker HOST[:PORT] (from the broker)")
    _inventory(args)
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        return cmd_status(args, Path(tmp))


def _guarded_model(path: str, force: bool) -> str:
    """The model's path after the retrain guard (`deploy.model_metrics.check_model`); its warning on stderr."""
    model = _existing(path, "model")
    warning = check_model(model, force)
    if warning:
        print(f"edge-deploy: warning: {warning}", file=sys.stderr, flush=True)
    return model


def run_model(args: argparse.Namespace) -> int:
    """`edge-deploy model`."""
    _inventory(args)
    extra: dict[str, object] = {"edge_model": _guarded_model(args.model, args.force)}
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        return cmd_rollout(args, Path(tmp), extra)


def run_release(args: argparse.Namespace) -> int:
    """`edge-deploy release`."""
    _inventory(args)
    extra: dict[str, object] = {"edge_wheel": _existing(args.wheel, "wheel")}
    if args.release:
        extra["edge_release"] = args.release
    if args.model:
        extra["edge_model"] = _guarded_model(args.model, args.force)
    with tempfile.TemporaryDirectory(prefix="edge-deploy-") as tmp:
        return cmd_rollout(args, Path(tmp), extra)


def add_force_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="deploy a model even if its held-out accuracy is below the model it replaces")  # fmt: skip


def add_fleet_args(p: argparse.ArgumentParser, hosts_required: bool = True) -> None:
    """The options every subcommand takes: the inventory, which hosts, batches, output."""
    p.add_argument("--hosts", "-i", required=hosts_required, metavar="INVENTORY", help="Ansible inventory file")
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
    add_force_arg(p)
    p.add_argument("--timeout", type=float, default=60, help="health check: seconds to wait for a classification")


def add_release_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("wheel", help="edge_daemon-<version>-py3-none-any.whl (python3 -m pip wheel --no-deps .)")
    add_fleet_args(p)
    p.add_argument("--release", help="release name on the devices (default: the wheel's version)")
    p.add_argument("--model", help="also push this model")
    add_force_arg(p)
    p.add_argument("--timeout", type=float, default=60, help="health check: seconds to wait for a classification")


def add_status_args(p: argparse.ArgumentParser) -> None:
    add_fleet_args(p, hosts_required=False)
    add_broker_args(p)
    p.add_argument("--timeout", type=float, default=3, help="seconds to listen on each device's broker")


COMMANDS = (
    Command("model", "push a model to every device (the usual roll-out)", add_model_args, run_model),
    Command("release", "install or upgrade the daemon from a wheel", add_release_args, run_release),
    Command("status", "table of device, release, model, online, last classification", add_status_args, run_status),
    Command("collect", "gather the frames the devices kept into an inbox", add_collect_args, run_collect),
    Command("image", "build a flashable Raspberry Pi disk image with the daemon inside", add_image_args, run_image),
    Command("keygen", "make an Ed25519 key pair for signing models and releases", add_keygen_args, run_keygen),
    Command("sign", "sign a model (MODEL.sig) or a release folder (SHA256SUMS + .sig)", add_sign_args, run_sign),
    Command("verify", "check a model's or a release folder's signature", add_verify_args, run_verify),
    Command("pull-init", "write a desired-state repository for pull mode", add_init_args, run_init),
    Command("pull-setup", "print or install edge-pull.service + .timer (pull mode)", add_setup_args, run_setup),
)


def build_parser() -> argparse.ArgumentParser:
    """`edge-deploy`'s parser: the subcommands of `COMMANDS` on the shared shape (`edge.cli.shape`)."""
    description = (
        "Roll out edge-daemon and models to a fleet and gather what the devices kept (drives deploy/ansible/).\n"
        "Exit status 1 also when any device failed, was rolled back or was not reached."
    )
    return shape.build_parser("edge-deploy", description, COMMANDS, version=__version__)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `edge-deploy`; returns the exit status (see the module docstring)."""
    return run_main(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
