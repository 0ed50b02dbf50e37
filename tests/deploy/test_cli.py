"""`edge-deploy`: argument errors in one line, result tables, and reading Ansible's failures per device."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deploy.cli import first_error, host_errors, read_reports, status_row, table

CLI = [sys.executable, "-c", "import sys\nfrom deploy.cli import main\nsys.exit(main())"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--hosts", "/nonexistent/inventory.ini"], "--hosts /nonexistent/inventory.ini: no such inventory"),
        (["model", "/nonexistent/m.tflite", "--hosts", "INVENTORY"], "model /nonexistent/m.tflite: no such file"),
        (["release", "/nonexistent/x.whl", "--hosts", "INVENTORY"], "wheel /nonexistent/x.whl: no such file"),
    ],
)
def test_errors_are_one_line(tmp_path, args, message):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[edge]\ndev1 ansible_host=127.0.0.1\n")
    r = subprocess.run(
        [*CLI, *[str(inventory) if a == "INVENTORY" else a for a in args]], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"edge-deploy: error: {message}"] or message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


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
