"""`edge-deploy`: the shared CLI shape (one-line errors, exit 2 for usage and input errors, 1 for runtime
failures and for a device that is not fine), result tables, and reading Ansible's failures per device."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from deploy.cli import COMMANDS, build_parser, status_row
from deploy.collect import collect_row
from deploy.playbooks import first_error, host_errors, read_reports, table
from tests.deploy.test_model_metrics import labels_only
from tests.support.mosquitto import free_port

DEMO = Path(__file__).resolve().parents[2] / "edge/assets/demo_model.tflite"


def model_with_metrics(tmp_path: Path, accuracy: float, previous: float) -> Path:
    """The demo model with a `metrics.json` saying it replaces v1.tflite (as `edge-train --from` embeds it)."""
    model = tmp_path / "v2.tflite"
    labels_only(model)
    metrics = {"heldout_accuracy": accuracy, "heldout_images": 40,
               "previous": {"model": "v1.tflite", "heldout_accuracy": previous}}  # fmt: skip
    with zipfile.ZipFile(model, "a") as z:
        z.writestr("metrics.json", json.dumps(metrics))
    return model


def edge_deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["edge-deploy", *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def inventory(tmp_path):
    """One device on a loopback port where nothing listens (unreachable at once)."""
    path = tmp_path / "inventory.ini"
    path.write_text(
        f"[edge]\ndev1 ansible_host=127.0.0.1 ansible_port={free_port()} ansible_user=root\n\n[edge:vars]\n"
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5'\n"
    )
    return path


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["status", "--hosts", "/nonexistent/inv.ini"], 2, "--hosts /nonexistent/inv.ini: no such inventory file"),
        (["model", "/nonexistent/m.tflite", "--hosts", "INVENTORY"], 2, "model /nonexistent/m.tflite: no such file"),
        (["release", "/nonexistent/x.whl", "--hosts", "INVENTORY"], 2, "wheel /nonexistent/x.whl: no such file"),
        (["release", "WHEEL", "--model", "/nonexistent/m.tflite", "--hosts", "INVENTORY"], 2,
         "model /nonexistent/m.tflite: no such file"),
        (["status", "--hosts", "INVENTORY", "--group", "garden"], 2, "no hosts in group or host 'garden'"),
        (["status", "--hosts", "INVENTORY", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
        (["status"], 2, "status: give --hosts INVENTORY (over SSH) or --broker HOST[:PORT] (from the broker)"),
        (["status", "--broker", "host:port"], 2, "--broker host:port: give HOST or HOST:PORT"),
        (["--log-level", "loud", "status", "--hosts", "INVENTORY"], 2, "'loud' is not a log level"),
        (["collect", "--hosts", "/nonexistent/inv.ini", "--out", "INBOX"], 2,
         "--hosts /nonexistent/inv.ini: no such inventory file"),
        (["collect", "--hosts", "INVENTORY"], 2, "the following arguments are required: --out/-o"),
        (["collect", "--hosts", "INVENTORY", "--out", "WHEEL"], 2, "not a folder; give the inbox folder"),
        (["collect", "--hosts", "INVENTORY", "--out", "INBOX", "--limit", "dev9"], 2, "--limit dev9: matches no host"),
        (["collect", "--hosts", "INVENTORY", "--out", "INBOX", "--serial", "2"], 2, "unrecognized arguments: --serial"),
        (["model", "WORSE", "--hosts", "INVENTORY"], 2, "held-out accuracy 80.00% is below 85.00% of v1.tflite"),
        (["release", "WHEEL", "--model", "WORSE", "--hosts", "INVENTORY"], 2, "give --force to deploy it anyway"),
        # Ansible itself fails (not a device): a runtime failure, with Ansible's own last line.
        (["status", "--hosts", "INVENTORY", "-e", "@/nonexistent/vars.yml"], 1, "ansible-playbook failed (exit"),
    ],
)  # fmt: skip
def test_errors_are_one_line(tmp_path, inventory, args, status, message):
    wheel = tmp_path / "edge_daemon-9.9-py3-none-any.whl"
    wheel.write_bytes(b"")
    subst = {"INVENTORY": str(inventory), "WHEEL": str(wheel), "INBOX": str(tmp_path / "inbox"),
             "WORSE": str(model_with_metrics(tmp_path, 0.8, 0.85))}  # fmt: skip
    r = edge_deploy(*[subst.get(a, a) for a in args])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == status, r.stderr
    assert len(lines) == 1 and lines[0].startswith("edge-deploy: error: ") and message in lines[0], r.stderr
    assert r.stdout == ""


def test_an_unreachable_device_is_a_failure_named_in_the_table(inventory):
    """Exit 1 when a device is not fine, with the table on stdout and that device's reason on stderr."""
    r = edge_deploy("status", "--hosts", str(inventory), "--json")
    assert r.returncode == 1, r.stderr
    (report,) = json.loads(r.stdout)
    assert report["host"] == "dev1" and report["result"] == "failed", report
    assert "ssh" in report["message"].lower() or "connect" in report["message"].lower(), report
    r = edge_deploy("status", "--hosts", str(inventory))
    assert r.returncode == 1 and r.stdout.splitlines()[1].split()[:2] == ["dev1", "-"], r.stdout
    assert r.stderr.startswith("edge-deploy: error: 1 of 1 device(s) not fine: dev1: "), r.stderr  # one line


def test_the_command_table_is_the_parser():
    """Every subcommand comes from COMMANDS (the shared shape of the three CLIs) and documents the exit status."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == [c.name for c in COMMANDS] == ["model", "release", "status", "collect", "image",
                                                                   "keygen", "sign", "verify", "pull-init",
                                                                   "pull-setup"]
    assert "exit status" in parser.format_help() and "rolled back" in parser.format_help()


def test_table_aligns_columns():
    assert table([["dev1", "online"], ["device-two", "-"]], ["DEVICE", "ONLINE"]).splitlines() == [
        "DEVICE      ONLINE",
        "dev1        online",
        "device-two  -",
    ]


@pytest.mark.parametrize(
    ("report", "row"),
    [
        (
            {"host": "d", "release": "1.0", "model": "m.tflite", "health": {"availability": "online",
             "classification": {"label": "cat", "score": 0.912, "timestamp": "2026-01-01T00:00:00.000Z"}}},
            ["d", "1.0", "m.tflite", "online", "cat 0.91 at 2026-01-01T00:00:00.000Z"],
        ),
        (
            {"host": "d", "release": "", "model": "", "health": {}, "error": "not installed"},
            ["d", "-", "-", "unknown", "-"],
        ),
        (
            {"host": "d", "release": "1.0", "model": "m",
             "health": {"availability": None, "problem": "broker x unreachable"}},
            ["d", "1.0", "m", "unknown", "-"],
        ),
    ],
)  # fmt: skip
def test_status_row(report, row):
    assert status_row(report) == row


def test_reports_name_each_device_s_failure(tmp_path):
    (tmp_path / "dev1.json").write_text(json.dumps({"host": "dev1", "result": "deployed"}))
    (tmp_path / "ansible.log").write_text(
        'fatal: [dev2]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: refused",'
        ' "unreachable": true}\n'
    )
    reports = read_reports(tmp_path, ["dev1", "dev2", "dev3"])
    assert [r["result"] for r in reports] == ["deployed", "failed", "not reached"]
    assert "Failed to connect to the host via ssh" in reports[1]["message"]
    assert host_errors("nothing") == {} and first_error("x\n[ERROR]: bad task\n") == "bad task"


def test_a_forced_or_unmeasured_model_goes_out_with_one_warning(tmp_path, inventory):
    """`--force` deploys a worse model, a published model (no metrics) deploys: one warning line, then the roll-out."""
    for model, extra, warning in [
        (model_with_metrics(tmp_path, 0.8, 0.85), ["--force"], "below 85.00% of v1.tflite"),
        (labels_only(tmp_path / "published.tflite"), [], "published.tflite carries no metrics.json"),
    ]:
        r = edge_deploy("model", str(model), "--hosts", str(inventory), "--timeout", "1", *extra)
        lines = r.stderr.splitlines()
        assert lines[0].startswith("edge-deploy: warning: ") and warning in lines[0], r.stderr
        assert r.returncode == 1 and r.stdout.splitlines()[1].split()[:2] == ["dev1", "failed"], r.stdout


def test_a_better_model_goes_out_without_a_word(tmp_path, inventory):
    r = edge_deploy("model", str(model_with_metrics(tmp_path, 0.9, 0.85)), "--hosts", str(inventory), "--timeout", "1")
    assert r.returncode == 1 and "warning" not in r.stderr and "dev1" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("report", "row"),
    [
        ({"host": "d", "result": "collected", "collected": 3, "duplicates": 1, "removed": None},
         ["d", "3", "1", "-", "-"]),
        ({"host": "d", "result": "collected", "collected": 0, "duplicates": 2, "removed": 2},
         ["d", "0", "2", "2", "-"]),
        ({"host": "d", "result": "failed", "message": "unreachable"}, ["d", "-", "-", "-", "unreachable"]),
        ({"host": "d", "result": "not reached"}, ["d", "-", "-", "-", "not reached"]),
    ],
)  # fmt: skip
def test_collect_row(report, row):
    assert collect_row(report) == row
