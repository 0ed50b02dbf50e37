"""Scenarios 4, 3 and 7 on the lab VM, one device through its life: flashed, first boot, camera, reboot.

4. First boot: the flashed image has no daemon; its boot partition holds what docs/deployment.md's cloud-init section
   lists (the wheel, deploy/, systemd/, model.tflite, wheels/) and the NoCloud seed holds the project's
   user-data with its marked values edited as a user would. With no login it must come up, install and publish
   `online` and classifications; the next boot must not reinstall.
3. A real V4L2 camera (vivid): unbind -> `camera_lost` and no classifications; bind -> `camera_connected` and
   classifications resume; a boot without camera, the camera plugged in after the service started -> used.
7. Reboot: the enabled service comes back after a clean reboot and classifies (the next boot of scenario 4).
"""

from __future__ import annotations

import json
import time

from tests.device.host import LabError
from tests.device.lab import DEMO_CLIP, REPO, Figure, Lab
from tests.device.vm import VM, boot_partition, edited, seed_iso

DEVICE = "edge-cam-01"  # the user-data's host name, hence the daemon's device id
USER_DATA = REPO / "deploy" / "cloud-init" / "user-data.yaml"
FIRST_BOOT_TIMEOUT = 900  # TCG: cloud-init and a pip install of NumPy/OpenCV/LiteRT at about 1/5 of native speed


def user_data(lab: Lab) -> str:
    """The project's user-data with the values its comments mark for editing set for the lab."""
    return edited(USER_DATA.read_text(), [
        ('host = "mqtt.example.lan"', 'host = "10.0.2.100"'),
        ("port = 8883", "port = 1883"),
        ("[mqtt.tls]\n      enabled = true", "[mqtt.tls]\n      enabled = false"),
        ('content: "CHANGE-ME"', f'content: "{lab.password}"'),
        # the lab wants every classified frame on the broker (to see them stop and resume), not label changes
        ("discovery = true\n", 'discovery = true\n\n      [smoothing]\n      mode = "off"\n'),
    ])  # fmt: skip


class Device:
    """The lab VM as one device that lives through scenarios 4, 3, 7 and 5 in that order."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.broker = lab.start_broker()
        lab.vm_disk()
        work = lab.dir / "vm"
        boot = work / "bootfs"
        bundle = lab.bundle(boot)
        (bundle / "wheels").mkdir()
        for whl in lab.wheels().glob("*.whl"):
            (bundle / "wheels" / whl.name).write_bytes(whl.read_bytes())
        (bundle / "model.tflite").write_bytes((DEMO_CLIP.parent / "demo_model.tflite").read_bytes())
        img = boot_partition(work, boot)
        self.vm = VM(work, self.broker.port, boot_img=img, seed=seed_iso(work, user_data(lab), "edge-lab-vm-1"))
        self.first_boot: dict = {}  # scenario 4's figures, for the scenarios after it

    def topic(self, leaf: str) -> str:
        return f"edge/{DEVICE}/{leaf}"

    def wait(self, leaf: str, after: float, timeout: float, value: str | None = None, event: str | None = None):
        def accept(m) -> bool:
            if value is not None:
                return m.text == value
            if event is not None:
                return json.loads(m.payload).get("event") == event
            return not m.retain

        return self.lab.wait_message(self.topic(leaf), after, timeout, accept)

    def journal(self, unit: str = "edge-daemon") -> str:
        return self.vm.ssh(f"journalctl -q -b -u {unit} -o cat --no-pager", check=False).stdout

    def close(self) -> None:
        self.vm.close(keep=self.lab.keep)


def scenario_4_first_boot(dev: Device) -> dict:
    """Power on the flashed image with the seed; online and a classification with no login. Returns figures."""
    vm = dev.vm.boot(camera=True)
    t0 = vm.powered_on
    online = dev.wait("availability", t0, FIRST_BOOT_TIMEOUT, value="online").received - t0
    first = dev.wait("classification", t0, 300).received - t0
    vm.wait_ssh()
    status = vm.ssh("cloud-init status --long; systemctl is-system-running", check=False).stdout
    if "status: done" not in status or "running" not in status.splitlines()[-1]:
        raise LabError(f"first boot finished with problems: {status.strip()}")
    install_log = vm.ssh("grep -h 'install.sh' /var/log/cloud-init-output.log", check=False).stdout
    assert "edge-daemon is active" in install_log, install_log
    stamp = vm.ssh("stat -c %Y /opt/edge-daemon/current/.complete").stdout.strip()
    return {"online": online, "first": first, "stamp": stamp}


def scenario_3_camera(dev: Device) -> dict:
    """Unplug (driver unbind) and replug (bind) the vivid camera under the running daemon."""
    vm, lab = dev.vm, dev.lab
    dev.wait("classification", time.monotonic(), 60)
    t0 = time.monotonic()
    vm.ssh("echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind")
    lost = dev.wait("event", t0, 60, event="camera_lost").received - t0
    time.sleep(8)  # unplugged for a while: retries with backoff, no classifications
    quiet_from = t0 + lost + 1.0
    during = [m for m in lab.messages(dev.topic("classification"), quiet_from) if not m.retain]
    assert not during, f"{len(during)} classifications while the camera was unplugged"
    journal = dev.journal()
    assert "lost; retrying with backoff" in journal, journal[-1500:]
    t1 = time.monotonic()
    vm.ssh("echo vivid.0 > /sys/bus/platform/drivers/vivid/bind")
    back = dev.wait("event", t1, 90, event="camera_connected").received - t1
    resumed = dev.wait("classification", t1, 90).received - t1
    return {"lost": lost, "back": back, "resumed": resumed}


def scenario_7_reboot(dev: Device, stamp: str) -> dict:
    """A clean reboot with the camera plugged: the service comes back and classifies; nothing is reinstalled."""
    vm = dev.vm.reboot(camera=True)
    t0 = vm.powered_on
    online = dev.wait("availability", t0, 300, value="online").received - t0
    first = dev.wait("classification", t0, 120).received - t0
    vm.wait_ssh()
    again = vm.ssh("stat -c %Y /opt/edge-daemon/current/.complete").stdout.strip()
    assert again == stamp, "the release was reinstalled on the second boot"
    this_boot = vm.ssh("journalctl -q -b -o cat --no-pager | grep -c 'install.sh:' || true").stdout.strip()
    assert this_boot == "0", f"install.sh ran again on the second boot ({this_boot} lines)"
    return {"online": online, "first": first}


def late_camera(dev: Device) -> dict:
    """The device came up without a camera; plug it in (load vivid) and time its use."""
    dev.vm.wait_ssh()
    found = dev.vm.ssh("systemctl is-active edge-daemon; ls /dev/video* 2>/dev/null | wc -l; "
                       "grep -c '^videodev ' /proc/modules").stdout.split()  # fmt: skip
    assert found == ["active", "0", "1"], f"expected the service up, no camera, videodev loaded: {found}"
    t1 = time.monotonic()
    dev.vm.ssh("modprobe vivid")
    connected = dev.wait("event", t1, 120, event="camera_connected").received - t1
    first = dev.wait("classification", t1, 120).received - t1
    assert "Operation not permitted" not in dev.journal(), "the daemon got EPERM on the late camera"
    return {"connected": connected, "first": first}


def late_camera_figure(late: dict) -> Figure:
    return Figure(
        "3b. camera plugged after the service started (VM)",
        "boot without a camera (only /etc/modules-load.d loads videodev), the daemon waiting; then modprobe vivid",
        f"camera_connected {late['connected']:.1f} s, classifying {late['first']:.1f} s after the plug-in",
    )


def scenario_3_late_camera(dev: Device) -> Figure:
    """A boot of its own without a camera (when no power-cut trial provides one)."""
    vm = dev.vm.reboot(camera=False)
    dev.wait("availability", vm.powered_on, 300, value="online")
    return late_camera_figure(late_camera(dev))


def run_device_scenarios(dev: Device) -> list[Figure]:
    """Scenarios 4, 3 and 7 in the order a device lives them; the device stays up for scenario 5."""
    s4 = dev.first_boot = scenario_4_first_boot(dev)
    s3 = scenario_3_camera(dev)
    s7 = scenario_7_reboot(dev, s4["stamp"])
    return [
        Figure("4. first boot (VM, cloud-init)",
               "flashed image + project user-data on a NoCloud seed: installs offline from the boot partition, "
               "online and classifying with no login; the second boot does not reinstall",
               f"online {s4['online']:.0f} s after power-on, first classification {s4['first']:.0f} s; second "
               "boot: no reinstall"),
        Figure("3. V4L2 camera (VM, vivid)",
               "/dev/video0 under the hardened unit; unbind -> camera_lost, no classifications, backoff; bind -> "
               "camera_connected, classifying",
               f"lost event {s3['lost']:.1f} s after unbind; connected {s3['back']:.1f} s and classifying "
               f"{s3['resumed']:.1f} s after bind"),
        Figure("7. reboot (VM)", "enabled service after a clean reboot",
               f"online {s7['online']:.0f} s, classifying {s7['first']:.0f} s after power-on"),
    ]  # fmt: skip
