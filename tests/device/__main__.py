"""`python -m tests.device [--only GROUP,...] [--trials N] [--vm-trials N] [--keep]`: the whole device lab, as root.

Groups, in the order they run: `systemd` (scenarios 1, 2 and the two-camera template on an nspawn machine),
`powercut` (scenario 5 on an nspawn machine with its own ext4 disk), `fleet` (scenario 6: Ansible against three
nspawn machines), `pull` (P1-P7: three nspawn machines without sshd updating themselves from a signed git
repository, issue 24) and `vm` (scenarios 4, 3, 7 on the QEMU VM, then its own power cuts, the first of which brings
the camera that appears after the service started). Prints one row per scenario (scenario, what was checked,
the measured figure) and exits 0 when every one held, 1 otherwise, 2 when this machine cannot run the lab.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable

from tests.device.host import missing_capability
from tests.device.lab import Figure, Lab

GROUPS = ("systemd", "powercut", "fleet", "pull", "vm")


def attempt(lab: Lab, name: str, fn: Callable[[], list[Figure]]) -> None:
    """Run scenarios; their figures become rows, a failure a row marked FAILED (later groups still run)."""
    t0 = time.monotonic()
    try:
        for figure in fn():
            lab.record(figure)
    except Exception as e:  # a failed scenario is a row of the table, not the end of the run
        logging.getLogger("tests.device").error("%s failed:\n%s", name, traceback.format_exc())
        lab.record(Figure(name, "", f"FAILED after {time.monotonic() - t0:.0f} s: {e}", ok=False))


def run_group(lab: Lab, group: str, args: argparse.Namespace) -> None:
    seed = args.seed if args.seed is not None else int(time.time())
    if group == "systemd":
        from tests.device import scenarios_systemd

        with lab.machine("edge-s1") as m:
            for name, fn in scenarios_systemd.SCENARIOS:
                attempt(lab, name, lambda fn=fn: [fn(lab, m)])
    elif group == "powercut":
        from tests.device.targets import scenario_5_nspawn

        attempt(lab, "5. power cuts (nspawn)", lambda: scenario_5_nspawn(lab, args.trials, seed))
    elif group == "fleet":
        from tests.deploy.fleet import fleet_prerequisites, scenario_6
        from tests.support.shared_data import SHARED_DATA

        coral = SHARED_DATA / "coral"
        models = {"a": coral / "mobilenet_v1_0.25_128_quant.tflite", "b": coral / "mobilenet_v1_0.5_160_quant.tflite",
                  "broken": coral / "invalid_models/model_invoking_error.tflite"}  # fmt: skip
        why = fleet_prerequisites() or next((f"{p} not found" for p in models.values() if not p.exists()), None)
        if why:
            lab.record(Figure("6. fleet on real init", "", f"skipped: {why}"))
            return
        attempt(lab, "6. fleet on real init", lambda: [scenario_6(lab, models, coral / "cat.bmp")])
    elif group == "pull":
        from tests.device.lab import REPO
        from tests.device.scenarios_pull import scenario_pull
        from tests.support.shared_data import SHARED_DATA

        model_b = SHARED_DATA / "coral/mobilenet_v1_0.25_128_quant.tflite"
        if not model_b.exists():
            lab.record(Figure("P. pull mode", "", f"skipped: {model_b} not found"))
            return

        def pull() -> list[Figure]:
            scenario_pull(lab, REPO / "edge/assets/demo_model.tflite", model_b, seed)  # records each figure itself
            return []

        attempt(lab, "P. pull mode", pull)
    elif group == "vm":
        from tests.device import scenarios_vm
        from tests.device.targets import scenario_5_vm

        def device_life() -> list[Figure]:
            dev = scenarios_vm.Device(lab)
            try:
                for f in scenarios_vm.run_device_scenarios(dev):
                    lab.record(f)
                if args.vm_trials <= 0:  # no power-cut trial brings the boot without camera: one of its own
                    return [scenarios_vm.scenario_3_late_camera(dev)]
                return scenario_5_vm(lab, dev, args.vm_trials, seed)
            finally:
                dev.close()

        attempt(lab, "4/3/7/5. the VM device", device_life)


def table(figures: list[Figure]) -> str:
    rows = ["| scenario | what was checked | measured |", "|---|---|---|"]
    rows += [f"| {f.scenario}{'' if f.ok else ' **FAILED**'} | {f.checked} | {f.figure} |" for f in figures]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.device", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {GROUPS}")
    parser.add_argument("--trials", type=int, default=10, help="power cuts of the nspawn machine (default 10)")
    parser.add_argument("--vm-trials", type=int, default=2, help="power cuts of the VM (default 2)")
    parser.add_argument("--seed", type=int, help="seed of the random cut moments (default: the time)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, disks) for inspection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so machines and VMs are stopped on the way out
    why = missing_capability()
    if why:
        print(f"python -m tests.device: cannot run here: {why}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    lab = Lab(keep=args.keep)
    try:
        for group in (g for g in GROUPS if g in args.only.split(",")):
            run_group(lab, group, args)
    finally:
        lab.close()
    print(table(lab.figures))
    print(f"\nimages: {lab.build_s} (s; 0 = cached); whole lab {time.monotonic() - t0:.0f} s; run dir {lab.dir}")
    return 0 if lab.figures and all(f.ok for f in lab.figures) else 1


if __name__ == "__main__":
    sys.exit(main())
