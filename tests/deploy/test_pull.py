"""Pull mode on this machine: the window and calendar rules (tables), the units pull-setup writes (checked by
`systemd-analyze`), and the agent itself running the real `ansible-pull --verify-commit` against a real git
repository with SSH-signed commits: signed -> applied, unsigned and unknown-key commits -> refused with the
playbook never run, a path that is no repository -> failed, a revision already applied -> nothing new, outside
the window -> nothing at all. (The same on systemd devices, with the real role: tests/device/scenarios_pull.py.)"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import pull_agent as agent
from deploy.pull import calendar, parse_every
from edge.errors import EdgeError

REPO = Path(__file__).resolve().parents[2]
EDGE_DEPLOY = [sys.executable, "-m", "deploy.cli"]


@pytest.mark.parametrize(
    ("window", "now", "days", "inside"),
    [
        ("02:00-04:00", "03:59", "*", True),
        ("02:00-04:00", "04:00", "*", False),
        ("02:00-04:00", "01:59", "*", False),
        ("23:30-01:00", "00:30", "*", True),
        ("23:30-01:00", "23:29", "*", False),
        ("02:00-04:00", "03:00", "Sat,Sun", False),  # 2026-12-07 is a Monday
        ("02:00-04:00", "03:00", "Mon..Fri", True),
        ("02:00-04:00", "03:00", "Sun..Mon", True),
    ],
)
def test_in_window(window, now, days, inside) -> None:
    h, m = map(int, now.split(":"))
    at = dt.datetime(2026, 12, 7, h, m)
    assert agent.in_window(at, agent.parse_window(window), agent.parse_days(days)) is inside


@pytest.mark.parametrize("text", ["2:00", "02:00-02:00", "25:00-26:00", "02:00-04:60", "x-y"])
def test_bad_windows(text) -> None:
    with pytest.raises(ValueError):
        agent.parse_window(text)


@pytest.mark.parametrize(
    ("window", "days", "every", "lines"),
    [
        ("02:00-04:00", "*", None, ["*-*-* 02:00:00"]),
        ("02:30-04:15", "Mon..Fri", "15m", ["Mon..Fri *-*-* 02..04:00/15:00"]),
        ("23:30-01:00", "*", "10s", ["*-*-* 23..23:*:00/10", "*-*-* 00..00:*:00/10"]),
    ],
)
def test_calendar_lines_are_what_systemd_reads(window, days, every, lines) -> None:
    assert calendar(window, days, parse_every(every) if every else None) == lines
    if shutil.which("systemd-analyze"):
        for line in lines:
            r = subprocess.run(["systemd-analyze", "calendar", line], capture_output=True, text=True)
            assert r.returncode == 0 and "Next elapse" in r.stdout, r.stderr


def signer(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def test_pull_setup_prints_units_systemd_accepts(tmp_path) -> None:
    key = signer(tmp_path, "ops")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'ops namespaces="git" {key.with_suffix(".pub").read_text()}')
    root = tmp_path / "root"
    r = subprocess.run([*EDGE_DEPLOY, "pull-setup", "--repo", "git://127.0.0.1/fleet.git", "--allowed-signers",
                        str(allowed), "--window", "02:00-04:00", "--every", "15m", "--spread", "10m", "--install",
                        "--root", str(root)], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr
    timer = (root / "etc/systemd/system/edge-pull.timer").read_text()
    assert "OnCalendar=*-*-* 02..03:00/15:00" in timer and "RandomizedDelaySec=600" in timer
    assert (root / "usr/local/lib/edge-pull/agent.py").read_text() == (REPO / "deploy/pull_agent.py").read_text()
    if shutil.which("systemd-analyze"):
        for unit in ("edge-pull.service", "edge-pull.timer"):
            v = subprocess.run(["systemd-analyze", "verify", str(root / "etc/systemd/system" / unit)],
                               capture_output=True, text=True)  # fmt: skip
            assert v.returncode == 0 and not v.stderr.strip(), v.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--window", "02:00"], "--window/--days"),
        (["--every", "90m"], "--every 90m"),
        (["--spread", "3h"], "not shorter than the window"),
        (["--repo", "/nonexistent/repo"], "neither a URL nor a path"),
        (["--allowed-signers", "/etc/hostname"], "--allowed-signers /etc/hostname"),
    ],
)
def test_pull_setup_bad_input_is_one_line(tmp_path, args, expected) -> None:
    key = signer(tmp_path, "ops")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'ops namespaces="git" {key.with_suffix(".pub").read_text()}')
    base = {"--repo": "git://127.0.0.1/fleet.git", "--allowed-signers": str(allowed)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    r = subprocess.run([*EDGE_DEPLOY, "pull-setup", *[x for kv in base.items() for x in kv]], capture_output=True,
                       text=True, cwd=REPO)  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and expected in lines[0], r.stderr


PLAYBOOK = """- hosts: all
  gather_facts: false
  tasks:
    - copy:
        dest: "{{ edge_report_dir }}/x.json"
        content: '{"host": "x", "result": "deployed", "release": "r1", "model": "m.tflite", "message": ""}'
    - copy: {dest: "{{ marker }}", content: "{{ edge_pull_revision }}"}
"""


def git(repo: Path, *args: str, key: Path | None = None) -> str:
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
    cmd = ["git", "-C", str(repo), "-c", "user.name=ops", "-c", "user.email=ops@example.lan", *sign, *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def commit(repo: Path, text: str, key: Path | None) -> str:
    (repo / "notes.txt").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", text, *(["-S"] if key else []), key=key)
    return git(repo, "rev-parse", "HEAD")


def test_the_agent_applies_signed_commits_and_refuses_the_others(tmp_path) -> None:
    ops, stranger = signer(tmp_path, "ops"), signer(tmp_path, "stranger")
    (tmp_path / "allowed_signers").write_text(f'ops namespaces="git" {ops.with_suffix(".pub").read_text()}')
    (tmp_path / "gitconfig").write_text(f'[gpg "ssh"]\n\tallowedSignersFile = {tmp_path}/allowed_signers\n'
                                        f"[safe]\n\tdirectory = *\n")  # fmt: skip
    repo = tmp_path / "state"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    marker = tmp_path / "applied-marker"
    (repo / "local.yml").write_text(PLAYBOOK)
    (repo / "inventory.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter="
                                        f"{sys.executable} marker={marker}\n")  # fmt: skip
    cfg = {"repo": str(repo), "branch": "main", "window": "00:00-23:59", "days": "*", "checkout": str(tmp_path / "co"),
           "state_file": str(tmp_path / "deployment.json"), "gitconfig": str(tmp_path / "gitconfig"),
           "ansible_pull": str(Path(sys.executable).parent / "ansible-pull")}  # fmt: skip
    (tmp_path / "pull.json").write_text(json.dumps(cfg))

    def pull() -> tuple[int, dict]:
        code = agent.main(["--config", str(tmp_path / "pull.json"), "--ignore-window"])
        return code, json.loads((tmp_path / "deployment.json").read_text())

    first = commit(repo, "first", ops)
    code, state = pull()
    assert code == 0 and state["result"] == "applied", state
    assert state["desired_revision"] == state["applied_revision"] == first and marker.read_text() == first
    assert state["release"] == "r1" and state["error"] is None
    assert pull()[0] == 0 and json.loads((tmp_path / "deployment.json").read_text()) == state, "nothing new"

    marker.unlink()
    unsigned = commit(repo, "unsigned", None)
    code, state = pull()
    assert code == 1 and state["result"] == "refused" and state["desired_revision"] == unsigned, state
    assert state["applied_revision"] == first and "signature was refused" in state["error"], state
    assert not marker.exists(), "the playbook of an unsigned commit must never run"

    foreign = commit(repo, "foreign", stranger)
    code, state = pull()
    assert code == 1 and state["result"] == "refused" and state["desired_revision"] == foreign, state
    assert "No principal matched" in state["error"] and not marker.exists(), state

    fixed = commit(repo, "fixed", ops)
    code, state = pull()
    assert code == 0 and state["applied_revision"] == fixed and marker.read_text() == fixed

    cfg["repo"] = str(tmp_path / "no-repository")
    (tmp_path / "pull.json").write_text(json.dumps(cfg))
    code, state = pull()
    assert code == 1 and state["result"] == "failed" and "not a git repository" in state["error"], state
    assert state["applied_revision"] == fixed

    cfg["window"] = "00:00-00:01" if dt.datetime.now().hour else "12:00-12:01"
    (tmp_path / "pull.json").write_text(json.dumps(cfg))
    before = (tmp_path / "deployment.json").read_text()
    assert agent.main(["--config", str(tmp_path / "pull.json")]) == 0
    assert (tmp_path / "deployment.json").read_text() == before, "outside the window nothing is done"


def test_a_broken_agent_config_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "pull.json").write_text('{"window": "2-4"}')
    assert agent.main(["--config", str(tmp_path / "pull.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pull.json" in err[0]


def test_every_is_bounded() -> None:
    with pytest.raises(EdgeError):
        parse_every("0s")


def test_a_failed_task_is_reported_by_its_message() -> None:
    msg = "The checksum for /opt/edge-daemon/.deploy/fetched/model/model-c.tflite did not match 9f3e; it was 0c5a."
    out = """TASK [edge_daemon : Download the model] ****
fatal: [dev1]: FAILED! => {"changed": false, "checksum_dest": null, "msg": "MSG"}

PLAY RECAP ****
dev1 : ok=3 changed=0 unreachable=0 failed=1
/usr/bin/ansible-pull --url file:///srv/fleet-state ... local.yml
""".replace("MSG", msg)
    assert agent.playbook_error(out) == msg
    assert agent.playbook_error("no task ran\n") == "no task ran"
