"""Scenario 5: the VM's power cut at a random moment while the device is being updated, then rebooted.

Trials alternate between the two updates a device gets in the field:
- `install`: `install.sh` installs a new release from the boot partition's wheel and wheels folder, offline
  (a new venv, pip, the `current` link flipped, the service restarted);
- `model`: `edge-deploy model` on the host pushes a new model file to the device over SSH (Ansible: copy,
  config, check, restart, health check).
Each starts, QEMU is killed (`kill -9`: the guest's unwritten page cache is lost) after a delay drawn uniformly
from the update's window (its usual duration plus a few seconds, so cuts just after it "finished" count too:
that is when unwritten data hurts), and the device is powered on again. A trial passes when the device comes
back `online` and classifying within RECOVERY_S, running a complete release (every file pip recorded, at its
recorded size) and a complete model, old or new. Outcomes are counted: new, old, broken.
The first trial boots without its camera and plugs it in once the service runs (scenario 3's late camera, on a
boot where only /etc/modules-load.d/ loaded the V4L2 core).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter

from tests.device.host import LabError, kill_group, log, spawn
from tests.device.lab import DEMO_CLIP, REPO, Figure, Lab
from tests.device.scenarios_vm import DEVICE, Device, late_camera, late_camera_figure
from tests.device.vm import ssh_options

RECOVERY_S = 240  # power-on to online, the promise (TCG runs the Pi's userland at about a fifth of native speed)
WINDOW_S = {"install": 110.0, "model": 70.0}
EDGE_DEPLOY = [sys.executable, "-c", "import sys\nfrom deploy.cli import main\nsys.exit(main())"]
RELEASE_CHECK = r"""
import csv, glob, os, sys
root = os.path.realpath('/opt/edge-daemon/current')
bad = [] if os.path.exists(root + '/.complete') else ['.complete missing']
for record in glob.glob(root + '/lib/python3*/site-packages/*.dist-info/RECORD'):
    site = os.path.dirname(os.path.dirname(record))
    for path, _, size in csv.reader(open(record)):
        if size:
            p = os.path.normpath(os.path.join(site, path))
            have = os.path.getsize(p) if os.path.exists(p) else -1
            if have != int(size):
                bad.append(f'{path}: {have} bytes, RECORD says {size}')
print(os.path.basename(root), len(bad), *bad[:3], sep='|')
"""


def state(dev: Device) -> dict:
    """Release (and whether every file of it is whole), model file and its size, from the device."""
    model_of_config = "sed -n 's|^path = \".*/\\([^/\"]*\\)\"$|\\1|p' /etc/edge-daemon/config.toml | head -n 1"
    out = dev.vm.ssh(f"python3 -c \"{RELEASE_CHECK}\"; {model_of_config}").stdout
    check, model = out.strip().splitlines()[-2:]
    release, bad, *examples = check.split("|")
    size = dev.vm.ssh(f"stat -c %s /var/lib/edge-daemon/models/{model}", check=False).stdout.strip()
    return {"release": release, "broken_files": int(bad), "examples": examples, "model": model,
            "model_size": int(size or -1)}  # fmt: skip


def inventory(lab: Lab, dev: Device) -> str:
    """An Ansible inventory for the VM (sshd forwarded to a host loopback port) with the role's settings."""
    opts = " ".join(ssh_options(dev.vm.key, dev.vm.ssh_port)[4:])  # -o ... only; host, port, key are Ansible's
    path = lab.dir / "vm-inventory.ini"
    path.write_text(
        f"[edge]\n{DEVICE} ansible_host=127.0.0.1 ansible_port={dev.vm.ssh_port}\n\n[edge:vars]\n"
        f"ansible_user=root\nansible_ssh_private_key_file={dev.vm.key}\nansible_ssh_common_args='{opts}'\n"
        "ansible_python_interpreter=/usr/bin/python3\nansible_pipelining=true\nedge_become=false\n"
        f"edge_mqtt_host=10.0.2.100\nedge_mqtt_port=1883\nedge_mqtt_username={DEVICE}\n"
        "edge_mqtt_password_file=edge-daemon.mqtt-password\nedge_camera_source=0\nedge_heartbeat_s=5\n"
    )
    return str(path)


def start_update(lab: Lab, dev: Device, kind: str, n: int) -> tuple[subprocess.Popen, str]:
    """Start trial n's update; returns the process (on the host) and the release or model it installs."""
    logfile = lab.dir / f"trial-{n}-{kind}.log"
    if kind == "install":
        src = "/boot/firmware/edge-daemon"
        release = f"0.1.0-t{n}"
        script = (f"{src}/deploy/install.sh --wheel $(ls {src}/edge_daemon-*.whl) --release {release} "
                  f"--find-links {src}/wheels --offline")  # fmt: skip
        return dev.vm.ssh_popen(script, logfile), release
    model = lab.dir / f"model-t{n}.tflite"
    model.write_bytes((DEMO_CLIP.parent / "demo_model.tflite").read_bytes())
    cmd = [*EDGE_DEPLOY, "model", model, "--hosts", inventory(lab, dev), "--timeout", "120"]
    return spawn(cmd, logfile, cwd=REPO), model.name


def trial(lab: Lab, dev: Device, n: int, kind: str, rng: random.Random, camera_late: bool) -> dict:
    before = state(dev)
    proc, new = start_update(lab, dev, kind, n)
    delay = rng.uniform(0, WINDOW_S[kind])
    t0 = time.monotonic()
    while time.monotonic() - t0 < delay:
        time.sleep(0.2)
    finished = proc.poll()
    dev.vm.power_cut()
    kill_group(proc)
    log.info("trial %d (%s): power cut %.1f s into the update (%s)", n, kind, delay,
             "after it finished" if finished is not None else "while it ran")  # fmt: skip
    vm = dev.vm.boot(camera=not camera_late, cloud_init=False)
    boot = vm.powered_on
    online = dev.wait("availability", boot, RECOVERY_S, value="online").received - boot
    if camera_late:
        late = late_camera(dev)
    classified = json.loads(dev.wait("classification", boot, 180).payload)
    vm.wait_ssh()
    after = state(dev)
    if after["broken_files"] or after["model_size"] != (DEMO_CLIP.parent / "demo_model.tflite").stat().st_size:
        raise LabError(f"trial {n} ({kind}, cut at {delay:.1f} s): broken after the reboot: {after}")
    if classified.get("model") != after["model"].rsplit(".", 1)[0]:
        raise LabError(f"trial {n}: classifying with {classified.get('model')}, config names {after['model']}")
    changed = after["release"] if kind == "install" else after["model"]
    outcome = "new" if changed == new else "old" if changed == before[kind_key(kind)] else "other"
    result = {"n": n, "kind": kind, "cut_s": delay, "finished": finished is not None, "outcome": outcome,
              "online_s": online}  # fmt: skip
    if camera_late:
        result["late_camera"] = late
    return result


def kind_key(kind: str) -> str:
    return "release" if kind == "install" else "model"


def scenario_5(lab: Lab, dev: Device, trials: int, seed: int | None = None) -> list[Figure]:
    """`trials` power cuts; the figures of scenario 5 and (first trial) scenario 3's late camera."""
    seed = seed if seed is not None else int(time.time())
    rng = random.Random(seed)
    results = []
    for n in range(1, trials + 1):
        kind = "install" if n % 2 else "model"
        results.append(trial(lab, dev, n, kind, rng, camera_late=(n == 1)))
        log.info("trial %d: %s", n, results[-1])
    outcomes = Counter(r["outcome"] for r in results)
    worst = max(r["online_s"] for r in results)
    cuts = ", ".join(f"{r['kind'][0]}{r['cut_s']:.0f}{'*' if r['finished'] else ''}->{r['outcome']}" for r in results)
    figures = [Figure(
        "5. power cut during an update (VM)",
        "kill -9 of QEMU at a random moment of install.sh (new release) or edge-deploy model; after the reboot a "
        "complete release (all RECORDed files whole) and model, online and classifying",
        f"{trials} trials (seed {seed}): {outcomes['new']} new, {outcomes['old']} old, 0 broken; online within "
        f"{worst:.0f} s of power-on (promise {RECOVERY_S} s); cuts at s (i=install, m=model, *=after it ended): "
        f"{cuts}",
        ok=outcomes["other"] == 0,
    )]  # fmt: skip
    late = results[0].get("late_camera") if results else None
    if late:
        figures.append(late_camera_figure(late))
    return figures
