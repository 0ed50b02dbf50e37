"""The devices that take scenario 5's power cuts, and the scenario itself for each.

- nspawn: a machine of the lab's rootfs on an ext4 image of its own (`Machine(disk=...)`), installed as
  docs/deployment.md says; the cut shuts its file system down without flushing and kills it; power-on mounts the image
  (the journal is replayed) and boots it. Native speed, so it takes most of the trials.
- VM: the device of scenarios 4, 3 and 7; the cut is `kill -9` of QEMU; power-on boots it (cloud-init off: its
  work was done on the first boot). Its first trial boots without the camera and plugs it in once the service
  runs: scenario 3's camera that appears after the service started, on a boot where only
  /etc/modules-load.d/edge-daemon.conf loaded the V4L2 core.
"""

from __future__ import annotations

import random
import sys
import time

from tests.device import powercut, scenarios_vm
from tests.device.host import spawn
from tests.device.lab import REPO, Figure, Lab, device_config
from tests.device.nspawn import ENV
from tests.device.powercut import Target, inventory, new_model
from tests.device.scenarios_systemd import CLIP, install

EDGE_DEPLOY = [sys.executable, "-c", "import sys\nfrom deploy.cli import main\nsys.exit(main())"]


def deploy_model(lab: Lab, inv: str, n: int, logname: str):
    model = new_model(lab, n)
    cmd = [*EDGE_DEPLOY, "model", model, "--hosts", inv, "--timeout", "120", "--verbose"]
    return spawn(cmd, lab.dir / logname, cwd=REPO), model.name


def scenario_5_nspawn(lab: Lab, trials: int, seed: int) -> list[Figure]:
    """Power cuts of an nspawn machine on its own ext4 image (file system shut down unflushed, machine killed)."""
    broker = lab.start_broker()
    m = lab.machine("edge-pc", ssh=True, disk=True)
    try:
        m.start()
        install(lab, m, device_config(device_id="lab-pc", port=broker.port, source=CLIP))
        wheel = lab.project_wheel().name
        inv = inventory(lab, "lab-pc", m.ssh_port or 0, ("127.0.0.1", broker.port), CLIP)
        clean_env = ["env", "-i", *(f"{k}={v}" for k, v in ENV.items())]

        def update(kind: str, n: int):
            if kind == "model":
                return deploy_model(lab, inv, n, f"pc-trial-{n}-model.log")
            release = f"0.1.0-t{n}"
            script = (f"cd /root/edge-daemon && deploy/install.sh --wheel {wheel} --release {release} "
                      "--find-links /srv/edge-wheels --offline")  # fmt: skip
            cmd = [*clean_env, "nsenter", "-t", str(m.leader), "-a", "/bin/sh", "-c", script]
            return spawn(cmd, lab.dir / f"pc-trial-{n}-install.log"), release

        def power_on(_camera: bool) -> float:
            t0 = time.monotonic()
            m.start()
            return t0

        target = Target("nspawn, ext4 shut down unflushed", "lab-pc", 60.0, sh=lambda s: m.sh(s, check=False),
                        update=update, cut=m.power_cut, power_on=power_on)  # fmt: skip
        powercut.calibrate(target, 100)
        results = powercut.run_trials(lab, target, trials, random.Random(seed))
    finally:
        m.close()
    return [powercut.figure(target, results, seed, "ext4 shutdown without flush (fstests' power failure) + kill")]


def scenario_5_vm(lab: Lab, dev: scenarios_vm.Device, trials: int, seed: int) -> list[Figure]:
    """Power cuts of the VM (kill -9 of QEMU); the first trial's boot has no camera until the service runs."""
    vm = dev.vm
    inv = inventory(lab, scenarios_vm.DEVICE, vm.ssh_port, ("10.0.2.100", 1883), "0")
    src = "/boot/firmware/edge-daemon"

    def update(kind: str, n: int):
        if kind == "model":
            return deploy_model(lab, inv, n, f"vm-trial-{n}-model.log")
        release = f"0.1.0-t{n}"
        script = (f"{src}/deploy/install.sh --wheel $(ls {src}/edge_daemon-*.whl) --release {release} "
                  f"--find-links {src}/wheels --offline")  # fmt: skip
        return vm.ssh_popen(script, lab.dir / f"vm-trial-{n}-install.log"), release

    def power_on(camera: bool) -> float:
        return vm.boot(camera=camera, cloud_init=False).powered_on

    # Windows from idle-machine runs of the two updates under emulation (calibrating here would cost minutes).
    target = Target("VM, kill -9 of QEMU", scenarios_vm.DEVICE, 300.0, sh=lambda s: vm.ssh(s, check=False),
                    update=update, cut=vm.power_cut, power_on=power_on, ready=lambda: vm.wait_ssh() and None,
                    window={"install": 150.0, "model": 90.0})  # fmt: skip
    late: dict = {}

    def plug_camera() -> dict:
        late.update(scenarios_vm.late_camera(dev))
        return {}

    results = powercut.run_trials(lab, target, trials, random.Random(seed), first_boot_hook=plug_camera)
    figures = [powercut.figure(target, results, seed, "kill -9 of QEMU")]
    if late:
        figures.append(scenarios_vm.late_camera_figure(late))
    return figures
