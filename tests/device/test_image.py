"""The flashable trixie image on emulated ARM (HEAVY, marked slow; see tests/device/image_arm.py).

In the order a device lives them, on one copy of the image grown to an 8 GiB card:
1. the image as `edge-deploy image` wrote it: an MBR, FAT32 (LBA) boot partition with the Pi's boot files, an
   ext4 root; the manifest lists every package and wheel with sha256;
2. first boot on `virt` (the network scenarios need virtio-net: QEMU's raspi3b has only USB networking): no
   login, cloud-init reads the boot partition's user-data (the broker password), the root grows, the daemon is
   READY under the hardened unit, classifies the vivid camera and publishes `online` to the lab's broker;
3. a config that does not validate dropped onto the boot partition: refused at the next boot (renamed
   `.rejected` with the reason), the daemon runs on the old one;
4. the same image as the SD card of QEMU's `raspi3b` with its own kernel, initramfs, Pi 3 DTB and cmdline.txt:
   a valid config dropped onto the boot partition is applied, and systemd reports edge-daemon started (READY).
Each test prints its figure (seconds from power-on, under TCG on this machine).

CI's budget: from an empty cache the image build alone takes 20-30 minutes on 2 cores (mmdebstrap and install.sh
under qemu-user), more than a fresh-HOME CI run can spend, so the module runs only when asked: `EDGE_LAB_ARM=1`
does 1 and 4 (the image file and the Pi 3 SD-card boot; about 13 minutes with the base layer cached),
`EDGE_LAB_ARM=all` adds 2 and 3 (the network scenarios on `virt`, about 6 minutes more). `edge-deploy image`'s
refusals of bad input run in every run (tests/deploy/test_image_inputs.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

import pytest

from tests.device import image_arm
from tests.device.host import LabError, run
from tests.device.lab import Lab

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("EDGE_LAB_ARM") not in ("1", "all"),
        reason="the arm64 image: 20-30 min to build from an empty cache, beyond CI's budget in a fresh HOME; "
        "EDGE_LAB_ARM=1 builds it and boots it as raspi3b's SD card, EDGE_LAB_ARM=all adds the virt scenarios",
    ),
]
virt_scenarios = pytest.mark.skipif(
    os.environ.get("EDGE_LAB_ARM") != "all",
    reason="the virt scenarios (first boot online, a refused boot config) need EDGE_LAB_ARM=all (CI's time budget)",
)
TOPIC = f"edge/{image_arm.HOSTNAME}"


@pytest.fixture(scope="module")
def device(lab: Lab) -> Iterator[image_arm.ArmVM]:
    broker = lab.start_broker()
    vm = image_arm.ArmVM(lab.dir / "arm", broker.port)
    run(["truncate", "-s", "8G", vm.disk], "growing the card to 8 GiB")
    image_arm.fat_write(vm.disk, "user-data", image_arm.user_data(lab.password), vm.work)
    try:
        yield vm
    finally:
        vm.power_cut()


def test_1_the_image_file(device):
    parts = json.loads(run(["sfdisk", "-J", device.cached / "edge.img"], "sfdisk -J").stdout)["partitiontable"]
    assert parts["label"] == "dos"
    boot, root = parts["partitions"]
    assert (boot["type"], boot.get("bootable"), root["type"]) == ("c", True, "83"), parts
    files = set(image_arm.fat_list(device.cached / "edge.img"))
    wanted = {"config.txt", "cmdline.txt", "bootcode.bin", "start4.elf", "bcm2837-rpi-3-b.dtb", "bcm2711-rpi-4-b.dtb",
              "bcm2837-rpi-zero-2-w.dtb", "bcm2712-rpi-5-b.dtb", "user-data", "meta-data"}  # fmt: skip
    assert wanted <= files, wanted - files
    assert any(f.startswith("vmlinuz-") for f in files) and any(f.startswith("initrd.img-") for f in files), files
    assert "root=LABEL=RASPIROOT" in image_arm.fat_read(device.cached / "edge.img", "cmdline.txt")
    manifest = json.loads((device.cached / "edge.img.manifest.json").read_text())
    img_sha = hashlib.sha256((device.cached / "edge.img").read_bytes()).hexdigest()
    names = {p["name"]: p for p in manifest["packages"]}
    assert manifest["sha256"] == img_sha and manifest["suite"] == "trixie" and "trixie" in manifest["os"]
    for pkg in ("raspi-firmware", "linux-image-arm64", "python3.13", "systemd", "cloud-init", "openssh-server"):
        assert len(names[pkg]["sha256"]) == 64, names.get(pkg)
    wheels = {w["file"].split("-")[0] for w in manifest["wheels"]}
    assert {"edge_daemon", "ai_edge_litert", "numpy", "opencv_python_headless", "paho_mqtt"} <= wheels, wheels
    print(f"\n{(device.cached / 'build.txt').read_text().strip()}")


@virt_scenarios
def test_2_first_boot_on_virt(lab, device):
    vm = device.boot("virt")
    t0 = vm.powered_on
    online = lab.wait_message(f"{TOPIC}/availability", t0, 1200, lambda m: m.text == "online").received - t0
    first = lab.wait_message(f"{TOPIC}/classification", t0, 300, lambda m: not m.retain).received - t0
    vm.wait_ssh()
    out = vm.ssh("cloud-init status --wait >/dev/null; cloud-init status; . /etc/os-release; echo $VERSION_CODENAME;"
                 " python3 --version; systemctl is-enabled edge-daemon; systemctl is-active edge-daemon;"
                 " systemctl show -p Type --value edge-daemon; findmnt -bno SIZE /",
                 timeout=600).stdout.split("\n")  # fmt: skip
    status, codename, python, enabled, active, kind, size = out[:7]
    assert (status, codename, enabled, active, kind) == ("status: done", "trixie", "enabled", "active", "notify"), out
    assert python.startswith("Python 3.13"), python
    assert int(size) > 7 << 30, f"root not grown to the 8 GiB card: {size} bytes"
    print(
        f"\nvirt first boot: online {online:.0f} s, first classification {first:.0f} s after power-on; "
        f"root {int(size) >> 20} MiB, {python}"
    )


@virt_scenarios
def test_3_bad_config_on_the_boot_partition_is_refused(lab, device):
    before = device.ssh("sha256sum /etc/edge-daemon/config.toml").stdout.split()[0]
    device.shutdown()
    image_arm.fat_write(device.disk, "edge/config.toml", "[camera]\nfps = -3\n", device.work)
    vm = device.boot("virt")
    t0 = vm.powered_on
    online = lab.wait_message(f"{TOPIC}/availability", t0, 600, lambda m: m.text == "online").received - t0
    vm.wait_ssh()
    after = vm.ssh("sha256sum /etc/edge-daemon/config.toml").stdout.split()[0]
    journal = vm.ssh("journalctl -b -u edge-boot-files -o cat --no-pager").stdout
    assert after == before, "the refused config replaced the installed one"
    assert "config.toml refused" in journal, journal
    assert vm.ssh("systemctl is-active edge-daemon", check=False).stdout.strip() == "active"
    vm.shutdown()
    files = image_arm.fat_list(device.disk, "edge")
    assert {"config.toml.rejected", "config.toml.rejected.txt"} <= set(files), files
    reason = image_arm.fat_read(device.disk, "edge/config.toml.rejected.txt").strip()
    print(f"\nrefused at boot ({reason}); online again {online:.0f} s after power-on")


def test_4_raspi3b_boots_the_card_and_applies_a_dropped_config(lab, device):
    if device.proc is not None:
        device.shutdown()
    image_arm.fat_write(device.disk, "edge/config.toml", "# dropped onto the card\n" + image_arm.CONFIG, device.work)
    vm = device.boot("raspi3b")
    try:
        target = vm.wait_console("Reached target multi-user.target", 900)
        started = vm.wait_console("Started edge-daemon.service", 300)
    except LabError:
        print(vm.console()[-3000:])
        raise
    vm.power_cut()
    files = image_arm.fat_list(device.disk, "edge")
    rejected = "config.toml.rejected.txt"
    why = image_arm.fat_read(device.disk, f"edge/{rejected}") if rejected in files else ""
    assert "config.toml.applied" in files, (files, why)
    print(f"\nraspi3b: multi-user.target {target:.0f} s, edge-daemon READY {started:.0f} s after power-on")
