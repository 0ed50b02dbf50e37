"""Scenarios 1 and 2 and the per-camera template, on an nspawn machine with systemd as PID 1.

1. Under systemd: install.sh installs the wheel offline from the wheels folder; the installed unit is the
   project's file byte for byte; READY, the hardening in force (DevicePolicy probed from inside the service's
   cgroup), the password handed over by LoadCredential=, `systemctl stop` -> offline and exit 0, the journal.
2. Watchdog and restarts: SIGSTOP -> watchdog kill and restart, kill -9 -> Restart=on-failure, the start limit.
2b. Several cameras: `edge-daemon@door` and `edge-daemon@yard`, two processes under their own ids.
"""

from __future__ import annotations

import json
import re
import time

from tests.device.host import LabError, wait_until
from tests.device.lab import REPO, Figure, Lab, device_config
from tests.device.nspawn import Machine

CLIP = "/srv/edge-media/demo_clip.avi"
DAEMON_LINES = ("MQTT: connected", "running: model", "stopped")  # one line each, documented in docs/index.md


def show(m: Machine, unit: str, *props: str) -> dict[str, str]:
    """`systemctl show` properties of a unit inside the machine."""
    out = m.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def install(lab: Lab, m: Machine, config: str) -> float:
    """Install the project as docs/deployment.md says (wheel + install.sh, offline); the password in the credstore."""
    bundle = lab.bundle(m.root / "root")
    (m.root / "root/config.toml").write_text(config)
    lab.store_password(m)
    wheel = lab.project_wheel().name
    t0 = time.monotonic()
    m.sh(f"cd /root/{bundle.name} && deploy/install.sh --wheel {wheel} --find-links /srv/edge-wheels --offline "
         "--config /root/config.toml", timeout=900)  # fmt: skip
    return time.monotonic() - t0


def availability(lab: Lab, device: str, value: str, after: float, timeout: float) -> float:
    """Seconds from `after` until the dashboard sees `value` on the device's availability topic."""
    msg = lab.wait_message(f"edge/{device}/availability", after, timeout, lambda m: m.text == value)
    return msg.received - after


def classification(lab: Lab, device: str, after: float, timeout: float) -> dict:
    msg = lab.wait_message(f"edge/{device}/classification", after, timeout, lambda m: not m.retain)
    return {**json.loads(msg.payload), "_at": msg.received - after}


def hardening(m: Machine) -> list[str]:
    """What is enforced on the running daemon, checked from outside it; raises when something is not."""
    pid = show(m, "edge-daemon", "MainPID")["MainPID"]
    status = m.sh(f"cat /proc/{pid}/status").stdout
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", status, re.MULTILINE))
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", fields
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, fields
    gids = {g.split(":")[2] for g in m.sh("getent group video plugdev").stdout.split()}
    assert gids <= set(fields["Groups"].split()), f"video/plugdev {gids} not in {fields['Groups']}"
    assert len(m.sh(f"cat /proc/{pid}/uid_map").stdout.splitlines()) == 2, "PrivateUsers: no user namespace"
    ro = m.sh(f"nsenter -t {pid} -m touch /usr/lab-probe", check=False)
    assert ro.returncode != 0 and "Read-only" in ro.stderr, f"ProtectSystem=strict: /usr writable: {ro.stderr}"
    home = m.sh(f"nsenter -t {pid} -m ls -A /root", check=False).stdout.split()
    assert home == [] and m.sh("ls -A /root").stdout.split(), f"ProtectHome: /root visible inside the service: {home}"
    # DevicePolicy=closed: a shell moved into the service's cgroup cannot open /dev/net/tun; outside it can.
    probe = "exec 3</dev/net/tun && echo opened"
    outside = m.sh(probe, check=False).stdout.strip()
    inside = m.sh(f"echo $$ > /sys/fs/cgroup/system.slice/edge-daemon.service/cgroup.procs && {probe}", check=False)
    assert outside == "opened" and "not permitted" in inside.stderr, f"DevicePolicy not enforced: {inside}"
    exposure = re.search(r"Overall exposure level for edge-daemon\.service: (\d+\.\d+)",
                         m.sh("systemd-analyze security --no-pager edge-daemon", check=False).stdout)  # fmt: skip
    assert exposure, "systemd-analyze security printed no exposure"
    return [f"live exposure {exposure.group(1)}", "DevicePolicy enforced (EPERM on /dev/net/tun in its cgroup)"]


def scenario_1(lab: Lab, m: Machine) -> Figure:
    """The real unit under systemd as PID 1, with a password-protected broker."""
    broker = lab.start_broker()
    install_s = install(lab, m, device_config(device_id="lab-s1", port=broker.port, source=CLIP))
    installed = (m.root / "etc/systemd/system/edge-daemon.service").read_bytes()
    assert installed == (REPO / "systemd/edge-daemon.service").read_bytes(), "installed unit differs from the project's"
    t0 = time.monotonic()
    m.sh("systemctl restart edge-daemon")
    online_s = availability(lab, "lab-s1", "online", t0, 60)
    first = classification(lab, "lab-s1", t0 + online_s, 60)  # from the new process (the old one ran until t0)
    first["_at"] += online_s
    props = show(m, "edge-daemon", "Type", "StatusText", "InactiveExitTimestampMonotonic",
                 "ActiveEnterTimestampMonotonic")  # fmt: skip
    assert props["Type"] == "notify" and "model demo_model" in props["StatusText"], props
    ready_s = (int(props["ActiveEnterTimestampMonotonic"]) - int(props["InactiveExitTimestampMonotonic"])) / 1e6
    # LoadCredential=: the password reaches the service as a file only it can read; the credstore stays root's.
    cred = m.sh("stat -c '%U %a' /run/credentials/edge-daemon.service/edge-daemon.mqtt-password /etc/credstore")
    assert cred.stdout.split("\n")[:2] == ["edge-daemon 400", "root 700"], cred.stdout
    enforced = hardening(m)
    t1 = time.monotonic()
    m.sh("systemctl stop edge-daemon")
    stop_s = time.monotonic() - t1
    offline_s = availability(lab, "lab-s1", "offline", t1, 20)
    end = show(m, "edge-daemon", "ExecMainStatus", "Result")
    assert end == {"ExecMainStatus": "0", "Result": "success"}, end
    entries = [json.loads(line) for line in m.sh("journalctl -q -u edge-daemon -o json --no-pager").stdout.splitlines()]
    daemon = [str(e.get("MESSAGE", "")) for e in entries if e.get("SYSLOG_IDENTIFIER") == "edge-daemon"]
    assert not [d for d in daemon if "\n" in d or "Traceback" in d], "multi-line journal entries"
    missing = [w for w in DAEMON_LINES if not any(w in d for d in daemon)]
    assert not missing, f"journal lacks {missing}: {daemon[-10:]}"
    assert lab.password not in "\n".join(daemon), "the MQTT password is in the journal"
    return Figure(
        "1. under systemd (nspawn)",
        "unmodified unit, Type=notify READY, hardening enforced, password by LoadCredential=, stop -> offline, "
        "exit 0, one-line journal events",
        f"boot {m.boot_s:.1f} s; install.sh {install_s:.0f} s; READY {ready_s:.1f} s, online {online_s:.1f} s, "
        f"first classification {first['_at']:.1f} s; stop {stop_s:.1f} s (offline {offline_s:.1f} s); "
        + "; ".join(enforced),
    )


def scenario_2(lab: Lab, m: Machine) -> Figure:
    """Watchdog (SIGSTOP), kill -9 and the start limit, seen by systemd and by the dashboard."""
    m.sh("systemctl start edge-daemon")
    availability(lab, "lab-s1", "online", time.monotonic() - 1, 60)
    watchdog = int(show(m, "edge-daemon", "WatchdogUSec")["WatchdogUSec"].rstrip("s") or 0)
    pid = show(m, "edge-daemon", "MainPID")["MainPID"]
    t0 = time.monotonic()
    m.sh(f"kill -STOP {pid}")
    frozen_off = availability(lab, "lab-s1", "offline", t0, watchdog + 30)
    frozen_on = availability(lab, "lab-s1", "online", t0 + frozen_off, 60) + frozen_off
    assert "Watchdog timeout" in m.journal(), "no watchdog timeout in the journal"
    assert frozen_on <= watchdog + 5 + 15, f"back after {frozen_on:.0f} s (WatchdogSec={watchdog}, RestartSec=5)"

    pid = show(m, "edge-daemon", "MainPID")["MainPID"]
    t1 = time.monotonic()
    m.sh(f"kill -KILL {pid}")
    killed_on = availability(lab, "lab-s1", "online", t1, 60)
    restarts = int(show(m, "edge-daemon", "NRestarts")["NRestarts"])
    assert restarts >= 2, f"NRestarts={restarts} after a watchdog kill and a kill -9"

    # The start limit: a config that never validates -> 5 starts within StartLimitIntervalSec, then given up.
    config = m.root / "etc/edge-daemon/config.toml"
    good = config.read_text()
    m.sh("systemctl reset-failed edge-daemon")
    config.write_text(good.replace("port =", "prot ="))
    since = m.sh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    t2 = time.monotonic()
    m.sh("systemctl restart edge-daemon", check=False)
    wait_until(lambda: "Start request repeated too quickly" in m.journal(since=since), 120, "the start limit")
    limit_s = time.monotonic() - t2
    time.sleep(8)  # longer than RestartSec: no further attempt may follow
    assert show(m, "edge-daemon", "ActiveState")["ActiveState"] == "failed"
    refusals = m.journal(since=since).count("mqtt.prot: unknown key")
    assert refusals == 5, f"{refusals} refused starts before the limit (docs/raspberry-pi.md: 5 in 5 minutes)"
    config.write_text(good)
    m.sh("systemctl reset-failed edge-daemon && systemctl start edge-daemon")
    availability(lab, "lab-s1", "online", time.monotonic() - 1, 60)
    return Figure(
        "2. watchdog and restarts (nspawn)",
        "SIGSTOP -> watchdog kill + restart, dashboard offline then online; kill -9 -> restarted; bad config -> "
        "5 starts, then systemd gives up",
        f"frozen: offline after {frozen_off:.1f} s, online after {frozen_on:.1f} s (WatchdogSec={watchdog}, "
        f"RestartSec=5); kill -9: online after {killed_on:.1f} s; bad config: gave up after {refusals} starts "
        f"in {limit_s:.0f} s",
    )


TWO_CAMERAS = {"door": "lab-door", "yard": "lab-yard"}


def scenario_template(lab: Lab, m: Machine) -> Figure:
    """Two cameras on one device: two instances of edge-daemon@.service, each its own process and id."""
    broker = lab.start_broker()
    m.sh("systemctl disable --now edge-daemon")
    for name, device in TWO_CAMERAS.items():
        (m.root / f"root/{name}.toml").write_text(device_config(device_id=device, port=broker.port, source=CLIP))
        m.sh(f"install -m 640 -g edge-daemon /root/{name}.toml /etc/edge-daemon/{name}.toml")
    t0 = time.monotonic()
    m.sh("systemctl enable --now " + " ".join(f"edge-daemon@{n}" for n in TWO_CAMERAS))
    online = {d: availability(lab, d, "online", t0, 60) for d in TWO_CAMERAS.values()}
    firsts = {d: classification(lab, d, t0, 60) for d in TWO_CAMERAS.values()}  # new ids: nothing older exists
    pids = {n: show(m, f"edge-daemon@{n}", "MainPID")["MainPID"] for n in TWO_CAMERAS}
    assert len(set(pids.values())) == 2 and "0" not in pids.values(), pids
    for name, pid in pids.items():
        cmdline = m.sh(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
        assert f"/etc/edge-daemon/{name}.toml" in cmdline, cmdline
    exposure = re.search(r"Overall exposure level for edge-daemon@door\.service: (\d+\.\d+)",
                         m.sh("systemd-analyze security --no-pager edge-daemon@door", check=False).stdout)  # fmt: skip
    # A new release restarts both instances on it.
    m.sh(f"cd /root/edge-daemon && deploy/install.sh --wheel {lab.project_wheel().name} --release 0.1.0-cams "
         "--find-links /srv/edge-wheels --offline", timeout=900)  # fmt: skip
    for name, old in pids.items():
        pid = show(m, f"edge-daemon@{name}", "MainPID")["MainPID"]
        assert pid not in (old, "0") and "/releases/0.1.0-cams/" in m.sh(f"cat /proc/{pid}/maps").stdout, name
    single = m.sh("systemctl is-enabled edge-daemon; systemctl is-active edge-daemon", check=False).stdout.split()
    assert single == ["disabled", "inactive"], f"the upgrade turned the single-camera service back on: {single}"
    t1 = time.monotonic()
    m.sh("systemctl stop edge-daemon@door")
    availability(lab, "lab-door", "offline", t1, 20)
    classification(lab, "lab-yard", time.monotonic(), 20)
    if show(m, "edge-daemon@yard", "ActiveState")["ActiveState"] != "active":
        raise LabError("stopping edge-daemon@door stopped edge-daemon@yard too")
    m.sh("systemctl disable --now edge-daemon@yard")
    return Figure(
        "2b. two cameras (edge-daemon@.service)",
        "two instances, own process, own config and id; a new release restarts both on it; stopping one leaves "
        "the other classifying",
        f"PIDs {pids['door']}/{pids['yard']}; online after {max(online.values()):.1f} s, classifying after "
        f"{max(f['_at'] for f in firsts.values()):.1f} s; live exposure {exposure.group(1) if exposure else '?'}",
    )


SCENARIOS = (
    ("1. under systemd (nspawn)", scenario_1),
    ("2. watchdog and restarts (nspawn)", scenario_2),
    ("2b. two cameras (edge-daemon@.service)", scenario_template),
)
