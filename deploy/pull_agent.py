#!/usr/bin/python3
"""The pull agent: what `edge-pull.service` runs on a device (pull mode, `edge-deploy pull-setup`). Standard
library only, run by the system's python3: it must work whatever release is installed, or none.

    python3 /usr/local/lib/edge-pull/agent.py --config /etc/edge-pull/pull.json

1. Outside the maintenance window (a timer fired late, the clock jumped after boot, someone started it by hand)
   it does nothing: one line, exit 0.
2. It asks the repository which commit its branch points at (`git ls-remote`): the desired revision. One it
   already applied, refused or rolled back is not tried again (only a new commit changes that); a failed one
   (a download, a broken checkout) is tried again at the next run.
3. `ansible-pull --verify-commit` checks that commit out and verifies its signature (git verify-commit with the
   allowed signers of /etc/edge-pull; an unsigned commit or one signed by an unknown key stops it before any
   playbook runs), then applies `local.yml`: the same `edge_daemon` role as push mode, with the device's own
   health check and rollback (release, model, config). A checkout broken by a power cut is cloned afresh.
4. It writes the outcome (desired and applied revision, result, error, time, release, model) atomically to the
   state file, which the daemon publishes retained on `<prefix>/<id>/deployment` with a `deployment` event.
Exit 0 applied or unchanged; 1 refused, failed or rolled back (systemd shows the unit failed: journalctl -u
edge-pull says why, in one line).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

RESULTS = {"deployed": "applied", "unchanged": "unchanged", "rolled back": "rolled back", "failed": "failed"}
_COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\s")


def parse_hhmm(text: str) -> int:
    """Minutes after midnight of `HH:MM`; ValueError otherwise."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
    if not m:
        raise ValueError(f"{text!r} is not HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_window(text: str) -> tuple[int, int]:
    """`HH:MM-HH:MM` -> (start, end) in minutes after midnight; an end before the start wraps past midnight."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    window = parse_hhmm(start.strip()), parse_hhmm(end.strip())
    if window[0] == window[1]:
        raise ValueError(f"{text!r}: the window is empty")
    return window


DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_days(text: str) -> frozenset[int]:
    """`Mon..Fri`, `Sat,Sun`, `*` -> weekday numbers (Monday 0), as systemd writes them."""
    if text in ("", "*"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("..")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{text!r}: days are Mon..Sun, e.g. Mon..Fri or Sat,Sun")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(out)


def in_window(now: dt.datetime, window: tuple[int, int], days: frozenset[int]) -> bool:
    """Is local time `now` inside the window, on one of `days`?"""
    minute, (start, end) = now.hour * 60 + now.minute, window
    inside = start <= minute < end if start < end else minute >= start or minute < end
    return inside and now.weekday() in days


def git_error(output: str) -> tuple[str, str]:
    """(kind, one line) of a failed checkout from ansible-pull's output: kind `refused` when the commit's signature
    did not verify, `failed` otherwise."""
    msg = re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', output)
    err = re.findall(r'"stderr": "((?:[^"\\]|\\.)*)"', output)
    detail = " ".join(bytes(err[-1], "utf-8").decode("unicode_escape").split()) if err else ""
    first = bytes(msg[-1], "utf-8").decode("unicode_escape") if msg else last_line(output)
    if "Failed to verify GPG signature" in first or ("signature" in detail.lower() and "verify" in first.lower()):
        why = detail or "no valid signature"
        return "refused", f"the commit's signature was refused ({why[:200]}); sign commits with an allowed key"
    return "failed", " ".join(f"{first} {detail}".split())[:400]


def playbook_error(output: str) -> str:
    """The failed task's message from ansible-pull's output (`fatal: [host]: FAILED! => {... "msg": ...}`)."""
    fatal = [ln for ln in output.splitlines() if ln.startswith("fatal: [")]
    if not fatal:
        return last_line(output)
    msg = re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', fatal[-1])
    text = bytes(msg[-1], "utf-8").decode("unicode_escape") if msg else fatal[-1]
    return " ".join(text.split())[:400]


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def run(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)


def desired_revision(cfg: dict, env: dict[str, str]) -> tuple[str | None, str]:
    """The commit the branch points at, or (None, why not)."""
    proc = run(["git", "ls-remote", "--", cfg["repo"], f"refs/heads/{cfg['branch']}"], env)
    m = _COMMIT.match(proc.stdout)
    if proc.returncode != 0:
        return None, f"{cfg['repo']}: not a git repository I can read ({last_line(proc.stderr)})"
    if not m:
        return None, f"{cfg['repo']}: no branch {cfg['branch']!r}"
    return m.group(1), ""


def pull(cfg: dict, env: dict[str, str], desired: str, report_dir: str) -> subprocess.CompletedProcess:
    cmd = [cfg.get("ansible_pull", "ansible-pull"), "--url", cfg["repo"], "--checkout", cfg["branch"],
           "--directory", cfg["checkout"], "--verify-commit", "--clean", "--inventory", "inventory.ini",
           "-e", json.dumps({"edge_report_dir": report_dir, "edge_pull_revision": desired,
                             "edge_deployment_state_file": cfg["state_file"], "edge_become": False}),
           "local.yml"]  # fmt: skip
    return run(cmd, env, cwd="/")


def outcome(cfg: dict, env: dict[str, str], previous: dict) -> dict:
    """Pull once; the state to record."""
    applied = previous.get("applied_revision")
    state = {"desired_revision": None, "applied_revision": applied, "result": "failed", "error": None,
             "release": previous.get("release"), "model": previous.get("model")}  # fmt: skip
    desired, why = desired_revision(cfg, env)
    if desired is None:
        return {**state, "error": why}
    state["desired_revision"] = desired
    if desired == previous.get("desired_revision") and previous.get("result") not in (None, "failed"):
        return {**previous, "skip": True}  # applied, refused or rolled back already: only a new commit changes that
    report_dir = tempfile.mkdtemp(prefix="edge-pull-")
    try:
        proc = pull(cfg, env, desired, report_dir)
        text = proc.stdout + proc.stderr
        checkout_failed = proc.returncode != 0 and "PLAY [" not in text
        if checkout_failed and "Failed to verify" not in text and os.path.isdir(cfg["checkout"]):
            shutil.rmtree(cfg["checkout"], ignore_errors=True)  # e.g. a clone cut short by a power cut: clone again
            proc = pull(cfg, env, desired, report_dir)
            text = proc.stdout + proc.stderr
            checkout_failed = proc.returncode != 0 and "PLAY [" not in text
        if checkout_failed:
            kind, error = git_error(text)
            return {**state, "result": kind, "error": f"commit {desired[:12]}: {error}"}
        reports = sorted(glob.glob(os.path.join(report_dir, "*.json")))
        if not reports:
            if proc.returncode == 0 and "skipping: no hosts matched" in text:
                return {**state, "error": f"this device ({os.uname().nodename}) is in no group of inventory.ini"}
            return {**state, "error": f"the playbook failed: {playbook_error(text)}"}
        with open(reports[0]) as f:
            report = json.load(f)
        result = RESULTS.get(report.get("result"), "failed")
        state.update(result=result, release=report.get("release") or state["release"],
                     model=report.get("model") or state["model"])  # fmt: skip
        if result in ("applied", "unchanged"):
            head = run(["git", "-C", cfg["checkout"], "rev-parse", "HEAD"], env).stdout.strip()
            state["applied_revision"] = head if head == desired else desired
        else:
            state["error"] = " ".join(str(report.get("message") or last_line(text)).split())[:400]
        return state
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)


def write_state(path: str, state: dict) -> None:
    """Atomically, durably, readable by the daemon (0644)."""
    tmp = f"{path}.new"
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_state(path: str) -> dict:
    try:
        with open(path) as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-pull", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="/etc/edge-pull/pull.json")
    parser.add_argument("--ignore-window", action="store_true", help="pull now, whatever the time")
    args = parser.parse_args(argv)
    try:
        with open(args.config) as f:
            cfg = json.load(f)
        window, days = parse_window(cfg["window"]), parse_days(cfg.get("days", "*"))
    except (OSError, ValueError, KeyError) as e:
        print(f"edge-pull: error: {args.config}: {e}; run edge-deploy pull-setup again", file=sys.stderr)
        return 2
    now = dt.datetime.now()
    if not args.ignore_window and not in_window(now, window, days):
        print(f"edge-pull: {now:%a %H:%M} is outside the maintenance window {cfg['window']} ({cfg.get('days', '*')}): "
              "nothing done")  # fmt: skip
        return 0
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME",
           "/root"), "LANG": "C.UTF-8", "GIT_CONFIG_GLOBAL": cfg["gitconfig"], "GIT_TERMINAL_PROMPT": "0",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_LOCALHOST_WARNING": "0",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}  # fmt: skip
    state = outcome(cfg, env, read_state(cfg["state_file"]))
    if state.pop("skip", False):
        print(f"edge-pull: nothing new: {state['desired_revision']} was {state['result']} at {state.get('time')}")
        return 0
    state["time"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_state(cfg["state_file"], state)
    line = f"edge-pull: {state['result']}: desired {state['desired_revision']}, applied {state['applied_revision']}"
    print(line + (f": {state['error']}" if state["error"] else ""), file=sys.stderr if state["error"] else sys.stdout)
    return 0 if state["result"] in ("applied", "unchanged") else 1


if __name__ == "__main__":
    sys.exit(main())
