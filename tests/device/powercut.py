"""Scenario 5: power cuts at random moments while a device is being updated, then the device powered on again.

Two updates a device gets in the field, alternately:
- `install`: `install.sh` installs a new release, offline from the wheels folder (a new venv, pip, the `current`
  link flipped, the service restarted);
- `model`: `edge-deploy model` on the host pushes a new model over SSH (Ansible: copy, config, check, restart,
  health check).
The cut comes after a delay drawn uniformly from the update's window (its usual duration plus a few seconds:
a cut just after an update "finished" counts too, that is when data not yet on the disk hurts). A trial passes
when the device comes back `online` and classifying within the target's recovery time, running a complete
release (every file pip recorded in RECORD present at its recorded size, `.complete` there) and a whole model,
old or new. Outcomes are counted: new, old, broken (a broken one fails the scenario).

Two kinds of device take the cuts (see `targets`): the QEMU VM, killed with `kill -9` (the real thing, slow
under emulation: a few trials), and an nspawn machine on an ext4 disk image of its own whose file system is shut
down without flushing (fstests' way to emulate a power failure) before the machine is killed (native speed:
most of the trials).
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.device.host import LabError, kill_group, log
from tests.device.lab import DEMO_CLIP, Figure, Lab

MODEL_SIZE = (DEMO_CLIP.parent / "demo_model.tflite").stat().st_size
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
MODEL_OF_CONFIG = "sed -n 's|^path = \".*/\\([^/\"]*\\)\"$|\\1|p' /etc/edge-daemon/config.toml | head -n 1"


@dataclass
class Target:
    """A device that takes power cuts: how to run a script on it, update it, cut its power and power it on."""

    name: str
    device_id: str
    recovery_s: float  # the promise: power-on to `online`
    sh: Callable[[str], subprocess.CompletedProcess]
    update: Callable[[str, int], tuple[subprocess.Popen, str]]  # (kind, n) -> (process, release or model file)
    cut: Callable[[], None]
    power_on: Callable[[bool], float]  # (camera plugged at boot) -> monotonic time of power-on
    ready: Callable[[], None] = lambda: None  # wait until `sh` works after power-on
    window: dict[str, float] = field(default_factory=lambda: {"install": 30.0, "model": 30.0})


def state(t: Target) -> dict:
    """Release (and the files of it not whole), model file and its size, as found on the device."""
    out = t.sh(f"python3 -c \"{RELEASE_CHECK}\"; {MODEL_OF_CONFIG}").stdout
    check, model = out.strip().splitlines()[-2:]
    release, bad, *examples = check.split("|")
    size = t.sh(f"stat -c %s /var/lib/edge-daemon/models/{model}").stdout.strip()
    return {"release": release, "broken_files": int(bad), "examples": examples, "model": model,
            "model_size": int(size or -1)}  # fmt: skip


def inventory(lab: Lab, device_id: str, ssh_port: int, mqtt: tuple[str, int], camera: str) -> str:
    """An Ansible inventory for one device whose sshd is on a host loopback port, with the role's settings."""
    from tests.device import images
    from tests.device.vm import ssh_options

    key = images.lab_key()
    path = lab.dir / f"inventory-{device_id}.ini"
    path.write_text(
        f"[edge]\n{device_id} ansible_host=127.0.0.1 ansible_port={ssh_port}\n\n[edge:vars]\n"
        f"ansible_user=root\nansible_ssh_private_key_file={key}\n"
        f"ansible_ssh_common_args='{' '.join(ssh_options(key, ssh_port)[4:])}'\n"
        "ansible_python_interpreter=/usr/bin/python3\nansible_pipelining=true\nedge_become=false\n"
        f"edge_mqtt_host={mqtt[0]}\nedge_mqtt_port={mqtt[1]}\nedge_mqtt_username=edge\n"
        f"edge_device_id={device_id}\nedge_mqtt_password_file=edge-daemon.mqtt-password\n"
        f"edge_camera_source={camera}\nedge_heartbeat_s=5\n"
    )
    return str(path)


def new_model(lab: Lab, n: int):
    """Trial n's model: the demo model under a new name (so the classification says which one runs)."""
    model = lab.dir / f"model-t{n}.tflite"
    model.write_bytes((DEMO_CLIP.parent / "demo_model.tflite").read_bytes())
    return model


def trial(lab: Lab, t: Target, n: int, kind: str, delay: float, before: dict,
          after_online: Callable[[], dict] | None = None) -> tuple[dict, dict]:  # fmt: skip
    """One update cut after `delay` seconds; the device powered on again and judged. Returns (result, state)."""
    proc, new = t.update(kind, n)
    t0 = time.monotonic()
    while time.monotonic() - t0 < delay:
        time.sleep(0.05)
    finished = proc.poll() is not None
    t.cut()
    kill_group(proc)
    log.info("%s trial %d (%s): power cut %.1f s into the update (%s)", t.name, n, kind, delay,
             "after it ended" if finished else "while it ran")  # fmt: skip
    boot = t.power_on(after_online is None)
    topic = f"edge/{t.device_id}/"
    online = lab.wait_message(topic + "availability", boot, t.recovery_s, lambda m: m.text == "online").received
    extra = after_online() if after_online else {}
    classified = json.loads(lab.wait_message(topic + "classification", boot, 180, lambda m: not m.retain).payload)
    t.ready()
    after = state(t)
    if after["broken_files"] or after["model_size"] != MODEL_SIZE:
        raise LabError(f"{t.name} trial {n} ({kind}, cut at {delay:.1f} s): broken after the power cut: {after}")
    if classified.get("model") != after["model"].rsplit(".", 1)[0]:
        raise LabError(f"{t.name} trial {n}: classifying with {classified.get('model')}, config names {after['model']}")
    key = "release" if kind == "install" else "model"
    outcome = "new" if after[key] == new else "old" if after[key] == before[key] else "other"
    result = {"n": n, "kind": kind, "cut_s": round(delay, 1), "ended": finished, "outcome": outcome,
              "online_s": round(online - boot, 1), **extra}  # fmt: skip
    log.info("%s trial %d: %s", t.name, n, result)
    return result, after


def calibrate(t: Target, n: int) -> dict:
    """Run each update once to its end (the device then runs it); its duration sets the window for the cuts."""
    for kind in ("install", "model"):
        t0 = time.monotonic()
        proc, _ = t.update(kind, n + (kind == "model"))
        if proc.wait(900) != 0:
            raise LabError(f"{t.name}: the {kind} update failed without a power cut (exit {proc.returncode})")
        t.window[kind] = round((time.monotonic() - t0) * 1.1 + 2, 1)
    return t.window


def run_trials(lab: Lab, t: Target, count: int, rng: random.Random,
               first_boot_hook: Callable[[], dict] | None = None) -> list[dict]:  # fmt: skip
    """`count` trials alternating install and model; `first_boot_hook` runs after the first power-on."""
    results, before = [], state(t)
    for n in range(1, count + 1):
        kind = "install" if n % 2 else "model"
        hook = first_boot_hook if n == 1 else None
        result, before = trial(lab, t, n, kind, rng.uniform(0, t.window[kind]), before, hook)
        results.append(result)
    return results


def figure(t: Target, results: list[dict], seed: int, how: str) -> Figure:
    outcomes = Counter(r["outcome"] for r in results)
    worst = max((r["online_s"] for r in results), default=0.0)
    cuts = ", ".join(f"{r['kind'][0]}{r['cut_s']:.0f}{'*' if r['ended'] else ''}>{r['outcome']}" for r in results)
    return Figure(
        f"5. power cut during an update ({t.name})",
        f"{how} at a random moment of install.sh (new release) or edge-deploy model; after power-on: a complete "
        "release (all RECORDed files whole) and model, online and classifying",
        f"{len(results)} trials (seed {seed}, windows {t.window}): {outcomes['new']} new, {outcomes['old']} old, "
        f"0 broken; online within {worst:.0f} s of power-on (promise {t.recovery_s:.0f} s); cuts (s; i=install, "
        f"m=model, *=after it ended): {cuts}",
        ok=bool(results) and outcomes["other"] == 0,
    )
