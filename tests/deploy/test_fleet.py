"""The Ansible roll-out against three systemd-managed devices (device lab scenario 6; HEAVY: a few minutes, slow).

Each device is an nspawn machine booted with systemd as PID 1 and sshd (tests/deploy/fleet.py); the daemon is
installed by the role through install.sh, offline from the lab's wheels folder, and managed with the real
`systemctl`. Nothing comes from this machine's Python packages: the devices run their own venvs.
"""

from __future__ import annotations

import pytest

from tests.deploy.fleet import fleet_prerequisites, scenario_6
from tests.device.lab import shared_lab
from tests.support.shared_data import shared

pytestmark = pytest.mark.slow


def test_rollout_in_batches_rolls_back_the_device_whose_model_is_broken():
    reason = fleet_prerequisites()
    if reason:
        pytest.skip(reason)
    models = {
        "a": shared("coral/mobilenet_v1_0.25_128_quant.tflite"),
        "b": shared("coral/mobilenet_v1_0.5_160_quant.tflite"),
        "broken": shared("coral/invalid_models/model_invoking_error.tflite"),  # loads, fails on invoke
    }
    figure = scenario_6(shared_lab(), models, shared("coral/cat.bmp"))
    print(f"\n{figure.scenario}: {figure.figure}")
