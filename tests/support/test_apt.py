"""tests/run.sh's apt step (tests/support/apt.sh) against stand-ins for apt-get, dpkg and dpkg-query.

The stand-ins print what the real tools print when another package manager holds a lock or when a dpkg run was
interrupted (the messages are apt 2.6's and dpkg 1.21's, as on bookworm), so this checks the waiting and the
repair without touching the machine's packages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

APT_SH = Path(__file__).resolve().parent / "apt.sh"
LISTS_LOCK = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)"
DPKG_LOCK = "dpkg: error: dpkg frontend lock was locked by another process with pid 4242"

STANDINS = {
    # installed packages are those named in $INSTALLED
    "dpkg-query": """case " $INSTALLED " in *" ${@: -1} "*) printf 'install ok installed';; *) exit 1;; esac""",
    "dpkg": """echo "dpkg $*" >> "$CALLS"
if [ "$1" = --audit ]; then printf '%s' "$AUDIT"; exit 0; fi
n=$(cat "$STATE/dpkg" 2>/dev/null || echo 0)
if [ "$n" -lt "${DPKG_LOCKED:-0}" ]; then echo $((n + 1)) > "$STATE/dpkg"; echo "$DPKG_LOCK" >&2; exit 2; fi""",
    "apt-get": """echo "apt-get $*" >> "$CALLS"
case " $* " in
  *" update "*) n=$(cat "$STATE/update" 2>/dev/null || echo 0)
    if [ "$n" -lt "${LISTS_LOCKED:-0}" ]; then echo $((n + 1)) > "$STATE/update"; echo "$LISTS_LOCK" >&2; exit 100; fi
    if [ -n "$UPDATE_ERROR" ]; then echo "$UPDATE_ERROR" >&2; exit 100; fi ;;
esac""",
    "sudo": 'exec "$@"',
}


def run_apt(tmp_path: Path, packages: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    for name, body in STANDINS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    variables = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "STATE": str(state), "LOCK_POLL": "0.1",
        "DPKG_UPDATES": str(tmp_path / "updates"), "LISTS_LOCK": LISTS_LOCK, "DPKG_LOCK": DPKG_LOCK,
        "INSTALLED": "", "AUDIT": "", "UPDATE_ERROR": "", **env,
    }  # fmt: skip
    proc = subprocess.run(["bash", "-c", f'set -euo pipefail; . "{APT_SH}"; apt_install_missing {packages}'],
                          env={**os.environ, **variables}, capture_output=True, text=True, timeout=60)  # fmt: skip
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_only_missing_packages_are_installed_waiting_for_apt_s_own_lock_timeout(tmp_path):
    proc, calls = run_apt(tmp_path, "mosquitto ffmpeg strace", INSTALLED="ffmpeg")
    assert proc.returncode == 0, proc.stderr
    assert calls[-1].endswith("install --no-install-recommends mosquitto strace")
    assert all("-o DPkg::Lock::Timeout=300" in c for c in calls if c.startswith("apt-get"))
    assert "installing apt packages: mosquitto strace" in proc.stderr


def test_nothing_is_run_when_everything_is_installed(tmp_path):
    proc, calls = run_apt(tmp_path, "mosquitto ffmpeg", INSTALLED="mosquitto ffmpeg")
    assert proc.returncode == 0 and calls == [] and proc.stderr == ""


def test_update_waits_while_another_apt_holds_the_list_lock(tmp_path):
    proc, calls = run_apt(tmp_path, "mosquitto", LISTS_LOCKED="3")
    assert proc.returncode == 0, proc.stderr
    assert [c.split()[-1] for c in calls if c.startswith("apt-get")] == ["update"] * 4 + ["mosquitto"]
    assert proc.stderr.count("waiting for another package manager") == 1 and "lists/lock" in proc.stderr


def test_an_interrupted_dpkg_run_is_finished_first_even_while_locked(tmp_path):
    (tmp_path / "updates").mkdir()
    (tmp_path / "updates" / "0001").write_text("Package: strace\nStatus: install ok half-configured\n")
    proc, calls = run_apt(tmp_path, "mosquitto", DPKG_LOCKED="2")
    assert proc.returncode == 0, proc.stderr
    configure = [c for c in calls if "--configure -a" in c]
    assert len(configure) == 3 and calls.index(configure[-1]) < next(i for i, c in enumerate(calls) if "update" in c)
    assert "finishing an interrupted dpkg run" in proc.stderr


@pytest.mark.parametrize("audit", ["", "The following packages are only half configured ...\n strace\n"])
def test_dpkg_audit_also_finds_an_interrupted_run(tmp_path, audit):
    proc, calls = run_apt(tmp_path, "mosquitto", AUDIT=audit)
    assert proc.returncode == 0, proc.stderr
    assert any("--configure -a" in c for c in calls) == bool(audit)


def test_other_errors_fail_at_once_with_apt_s_message(tmp_path):
    proc, calls = run_apt(tmp_path, "mosquitto", UPDATE_ERROR="E: The repository 'x' is not signed.")
    assert proc.returncode != 0
    assert "is not signed" in proc.stderr and sum("update" in c for c in calls) == 1


def test_the_wait_is_bounded(tmp_path):
    proc, calls = run_apt(tmp_path, "mosquitto", LISTS_LOCKED="1000", LOCK_WAIT="1", LOCK_POLL="0.3")
    assert proc.returncode != 0 and LISTS_LOCK in proc.stderr
    assert 2 <= sum("update" in c for c in calls) <= 6
