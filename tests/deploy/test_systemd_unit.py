"""The systemd unit and udev rules: `systemd-analyze verify` clean, `security --offline=true` exposure <= 2.0
(the figure is printed), device/network access kept, and the daemon really runs under MemoryDenyWriteExecute.

systemd is not PID 1 here, so the unit is analysed offline; the one hardening directive whose effect on our
native libraries is not obvious (MemoryDenyWriteExecute) is exercised with the kernel's own equivalent,
prctl(PR_SET_MDWE), around a real classification.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.shared_data import shared

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edge-daemon.service"
TEMPLATE = REPO / "systemd" / "edge-daemon@.service"
RULES = REPO / "systemd" / "60-edge-daemon-coral.rules"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")
MAX_EXPOSURE = 2.0
CLI_MAIN = "import sys\nfrom edge.cli.main import main\nsys.exit(main())"
# the edge-daemon script of this venv (tests/run.sh does not put .venv/bin on PATH), else one on PATH
EXE = next((str(p) for p in [Path(sys.executable).parent / "edge-daemon"] if p.exists()), shutil.which("edge-daemon"))


def directives(text: str) -> list[tuple[str, str, list[str]]]:
    """(key, value, comment lines just above it) for every directive of the unit."""
    out, comments = [], []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            comments.append(s)
        elif "=" in s and not s.startswith("["):
            key, value = s.split("=", 1)
            out.append((key, value, comments))
            comments = []
        else:
            comments = []
    return out


@needs_analyze
@pytest.mark.parametrize("unit", ["edge-daemon.service", "edge-daemon@cam1.service"])
def test_security_exposure_is_at_most_2(unit):
    # An instance name of the template loads systemd/edge-daemon@.service with %i = cam1.
    proc = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT.parent / unit)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    m = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr
    exposure = float(m.group(1))
    print(f"\nsystemd-analyze security --offline=true {unit}: exposure {exposure} (target <= {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE


def test_template_is_the_unit_with_a_config_per_instance():
    # Same directives, hardening included; only the description and the config file (NAME.toml) differ.
    plain = [(k, v) for k, v, _ in directives(UNIT.read_text())]
    template = [(k, v.replace("%i.toml", "config.toml")) for k, v, _ in directives(TEMPLATE.read_text())]
    assert [d for d in template if d[0] != "Description"] == [d for d in plain if d[0] != "Description"]
    values = {k: v for k, v, _ in directives(TEMPLATE.read_text())}
    assert "%i" in values["Description"]
    assert values["ExecStart"].endswith("run --config /etc/edge-daemon/%i.toml")
    assert values["ExecStartPre"].endswith("check-config --quiet /etc/edge-daemon/%i.toml")


@needs_analyze
@pytest.mark.parametrize(("source", "unit"), [(UNIT, "edge-daemon.service"), (TEMPLATE, "edge-daemon@cam1.service")])
def test_verify_is_clean(tmp_path, source, unit):
    # The unit names /opt/edge-daemon/current/bin/edge-daemon, which verify requires to exist: point it at this
    # machine's installed edge-daemon (install.sh does the same for an EDGE_ROOT install; see test_install).
    exe = EXE or pytest.skip("edge-daemon is not installed (pip install -e .)")
    (tmp_path / source.name).write_text(source.read_text().replace("/opt/edge-daemon/current/bin/edge-daemon", exe))
    proc = subprocess.run([ANALYZE, "verify", str(tmp_path / unit)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stderr


def test_unit_keeps_camera_coral_and_network_access_and_says_why():
    found = directives(UNIT.read_text())
    values: dict[str, list[str]] = {}
    for key, value, _ in found:
        values.setdefault(key, []).append(value)
    assert values["Type"] == ["notify"] and values["Restart"] == ["on-failure"] and "WatchdogSec" in values
    assert values["User"] == ["edge-daemon"] and values["StateDirectory"] == ["edge-daemon"]
    assert values["ExecStart"] == ["/opt/edge-daemon/current/bin/edge-daemon run --config /etc/edge-daemon/config.toml"]
    assert any("check-config" in v for v in values["ExecStartPre"])
    assert values.get("PrivateDevices", ["no"]) == ["no"] and values["DevicePolicy"] == ["closed"]
    assert {v.split()[0] for v in values["DeviceAllow"]} == {"char-video4linux", "char-usb_device", "char-apex"}
    assert set(values["SupplementaryGroups"][0].split()) == {"video", "plugdev"}
    assert {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} <= set(values["RestrictAddressFamilies"][0].split())
    assert "PrivateNetwork" not in values and "IPAddressDeny" not in values
    assert len(values["LoadCredential"]) == 2
    # every directive that could break device or network access carries a comment saying why it is safe
    risky = {"PrivateDevices", "DevicePolicy", "SupplementaryGroups", "RestrictAddressFamilies", "PrivateUsers",
             "MemoryDenyWriteExecute", "ProtectKernelTunables", "LoadCredential"}  # fmt: skip
    # (a directive repeated on consecutive lines shares the comment above the first one)
    uncommented = [
        k for i, (k, _, comments) in enumerate(found)
        if k in risky and not comments and (i == 0 or found[i - 1][0] != k)
    ]  # fmt: skip
    assert not uncommented


def test_udev_rules_cover_both_coral_usb_ids_and_pcie():
    rules = [ln for ln in RULES.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    ids = {tuple(re.findall(r'ATTR\{id(?:Vendor|Product)\}=="([0-9a-f]{4})"', ln)) for ln in rules}
    assert {("1a6e", "089a"), ("18d1", "9302")} <= ids
    assert any('SUBSYSTEM=="apex"' in ln for ln in rules)
    assert all('GROUP="plugdev"' in ln and 'MODE="0660"' in ln for ln in rules)


# prctl(PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1): inherited across execve, cannot be undone
MDWE_EXEC = (
    "import ctypes, os, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:\n"
    "    sys.exit('prctl: ' + os.strerror(ctypes.get_errno()))\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def mdwe_supported() -> bool:
    probe = "import ctypes, sys\nsys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_daemon_classifies_under_memory_deny_write_execute():
    if not mdwe_supported():
        pytest.skip("kernel without PR_SET_MDWE (needs Linux 6.3+)")
    model, image = shared("coral/mobilenet_v1_0.25_128_quant.tflite"), shared("coral/cat.bmp")
    exe = EXE or pytest.skip("edge-daemon is not installed (pip install -e .)")
    wx = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"
    probe = subprocess.run([sys.executable, "-c", MDWE_EXEC, sys.executable, "-c", wx], capture_output=True, text=True)
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, "MDWE not in force: the check proves nothing"
    proc = subprocess.run([sys.executable, "-c", MDWE_EXEC, exe, "classify", "-m", str(model), str(image), "--json"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"index": 283' in proc.stdout  # tiger cat, as upstream expects for this model and image


def syscall_set(name: str) -> set[str]:
    """The system calls of a systemd syscall group, nested groups expanded (systemd-analyze syscall-filter)."""
    out = subprocess.run([ANALYZE, "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        calls |= syscall_set(entry) if entry.startswith("@") else {entry}
    return calls


def unit_allowed_syscalls() -> set[str]:
    """The allow list the unit's SystemCallFilter= lines build (allow list first, then ~deny, then allow)."""
    allowed: set[str] = set()
    for key, value, _ in directives(UNIT.read_text()):
        if key != "SystemCallFilter":
            continue
        deny = value.startswith("~")
        names = set().union(*(syscall_set(n) if n.startswith("@") else {n} for n in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


@needs_analyze
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (apt-get install strace)")
def test_daemon_uses_only_system_calls_the_unit_allows(tmp_path, mosquitto):
    # SystemCallFilter= cannot be applied without systemd as PID 1: trace a real `edge-daemon run` (model, video
    # file, MQTT to a real broker) and check every system call it makes is on the unit's allow list.
    import cv2

    model, image = shared("coral/mobilenet_v1_0.25_128_quant.tflite"), shared("coral/cat.bmp")
    clip = tmp_path / "cat.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(20):
        writer.write(cv2.resize(cv2.imread(str(image)), (160, 120)))
    writer.release()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[camera]\nsource = "{clip}"\n[model]\npath = "{model}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ndevice_id = "trace"\n'
    )
    trace = tmp_path / "trace.txt"
    cmd = ["strace", "-f", "-qq", "-o", str(trace), sys.executable, "-c", CLI_MAIN, "run", "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            daemon_pid = int(trace.read_text().split(None, 1)[0])  # the traced process (first line of the trace)
            os.kill(daemon_pid, signal.SIGTERM)  # the daemon stops cleanly; strace exits with it
            proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read()
    text = trace.read_text()
    assert "label:" in stderr and "MQTT: connected" in stderr, stderr  # it did classify and publish
    used = set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", text, re.MULTILINE)) - {"resumed", "exit", "exited"}
    allowed = unit_allowed_syscalls()
    print(f"\n{len(used)} distinct system calls made by edge-daemon run; allow list has {len(allowed)}")
    assert used, "nothing traced"
    assert not used - allowed, f"calls the unit's SystemCallFilter= would refuse: {sorted(used - allowed)}"
