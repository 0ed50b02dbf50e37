"""The device lab in the test suite (HEAVY, marked slow: tens of minutes, most of it the emulated VM).

Scenarios 1, 2 and the two-camera template on an nspawn machine; scenario 5's power cuts on an nspawn machine
with its own ext4 disk (EDGE_LAB_TRIALS, default 10); 4, 3, 7 and 5 again on one VM device, in the order a
device lives them (first boot, camera unplugged and back, clean reboot, power cuts during updates
(EDGE_LAB_VM_TRIALS, default 2), the first of whose boots has no camera until the service runs). Scenario 6 is
tests/deploy/test_fleet.py. Each test prints its measured figure; `python -m tests.device` prints them all as a
table. Pull mode (issue 24, P1-P7: three nspawn devices without sshd, a power cut during a pull) runs on nspawn
machines too, about 13.5 min at a load average of 4-6 (tests/device/scenarios_pull.py). Skipped with the reason
when this machine lacks a capability (not root, no systemd-nspawn, no QEMU, ...).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.device import scenarios_pull, scenarios_systemd, scenarios_vm, targets
from tests.device.lab import REPO, Figure, Lab
from tests.device.nspawn import Machine
from tests.support.shared_data import shared

pytestmark = pytest.mark.slow
TRIALS = int(os.environ.get("EDGE_LAB_TRIALS", "10"))
VM_TRIALS = int(os.environ.get("EDGE_LAB_VM_TRIALS", "2"))
SEED = int(os.environ.get("EDGE_LAB_SEED", str(int(time.time()))))


def show(figure: Figure) -> None:
    print(f"\n{figure.scenario}: {figure.figure}")
    assert figure.ok, figure.figure


@pytest.fixture(scope="class")
def machine(lab: Lab) -> Iterator[Machine]:
    """An nspawn machine for one class of tests (stopped when the class is done)."""
    with lab.machine("edge-s1") as m:
        yield m


class TestSystemd:
    """Scenarios 1, 2 and 2b on one nspawn machine."""

    def test_1_under_systemd(self, lab, machine):
        show(scenarios_systemd.scenario_1(lab, machine))

    def test_2_watchdog_and_restarts(self, lab, machine):
        show(scenarios_systemd.scenario_2(lab, machine))

    def test_2b_two_cameras_template(self, lab, machine):
        show(scenarios_systemd.scenario_template(lab, machine))


def test_pull_mode_three_devices_without_sshd(lab):
    """Issue 24: signed desired state pulled by the devices themselves (tests/device/scenarios_pull.py)."""
    model_b = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    for figure in scenarios_pull.scenario_pull(lab, REPO / "edge/assets/demo_model.tflite", model_b, SEED):
        assert figure.ok, figure.figure  # (each printed as soon as it was measured)


def test_5_power_cuts_of_an_nspawn_machine(lab):
    for figure in targets.scenario_5_nspawn(lab, TRIALS, SEED):
        show(figure)


@pytest.fixture(scope="module")
def device(lab: Lab) -> Iterator[scenarios_vm.Device]:
    """The VM device after its first boot (scenario 4's first half runs here: the rest needs it)."""
    dev = scenarios_vm.Device(lab)
    try:
        dev.first_boot = scenarios_vm.scenario_4_first_boot(dev)
        yield dev
    finally:
        dev.close()


def test_4_first_boot(device):
    s4 = device.first_boot
    print(f"\nonline {s4['online']:.0f} s, first classification {s4['first']:.0f} s after power-on")


def test_3_camera_unplugged_and_back(device):
    s3 = scenarios_vm.scenario_3_camera(device)
    print(f"\ncamera_lost {s3['lost']:.1f} s after unbind; classifying {s3['resumed']:.1f} s after bind")


def test_7_reboot_and_second_boot_does_not_reinstall(device):
    s7 = scenarios_vm.scenario_7_reboot(device, device.first_boot["stamp"])
    print(f"\nonline {s7['online']:.0f} s, classifying {s7['first']:.0f} s after power-on")


def test_5_power_cuts_of_the_vm_and_the_late_camera(lab, device):
    if VM_TRIALS <= 0:
        show(scenarios_vm.scenario_3_late_camera(device))
        return
    for figure in targets.scenario_5_vm(lab, device, VM_TRIALS, SEED):
        show(figure)
