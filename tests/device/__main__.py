"""`python -m tests.device [--only GROUP,...] [--trials N] [--keep]`: the whole device lab, as root.

Groups, in the order they run: `systemd` (scenarios 1, 2 and the two-camera template on an nspawn machine),
`fleet` (scenario 6: Ansible against three nspawn machines), `vm` (scenarios 4, 3, 7 on the QEMU VM) and
`powercut` (scenario 5, on the same VM after `vm`). Prints one row per scenario (scenario, what was checked,
the measured figure) and exits 0 when every one held, 1 otherwise, 2 when this machine cannot run the lab.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback

from tests.device.host import missing_capability
from tests.device.lab import Figure, Lab

GROUPS = ("systemd", "fleet", "vm", "powercut")


def run_group(lab: Lab, group: str, state: dict, trials: int) -> None:
    """Run one group of scenarios; failures become rows marked FAILED (later groups still run)."""
    if group == "systemd":
        from tests.device import scenarios_systemd

        with lab.machine("edge-s1") as m:
            for name, fn in scenarios_systemd.SCENARIOS:
                attempt(lab, name, lambda fn=fn: fn(lab, m))
    elif group == "fleet":
        from tests.deploy.fleet import fleet_prerequisites, scenario_6
        from tests.support.shared_data import SHARED_DATA

        coral = SHARED_DATA / "coral"
        models = {"a": coral / "mobilenet_v1_0.25_128_quant.tflite", "b": coral / "mobilenet_v1_0.5_160_quant.tflite",
                  "broken": coral / "invalid_models/model_invoking_error.tflite"}  # fmt: skip
        why = fleet_prerequisites() or next((f"{p} not found" for p in models.values() if not p.exists()), None)
        if why:
            lab.record(Figure("6. fleet on real init", "", f"skipped: {why}", ok=True))
            return
        attempt(lab, "6. fleet on real init", lambda: scenario_6(lab, models, coral / "cat.bmp"))
    elif group == "vm":
        from tests.device import scenarios_vm

        def device_scenarios() -> None:
            dev, figures = scenarios_vm.run_device_scenarios(lab)
            state["device"] = dev
            for f in figures:
                lab.record(f)
            if trials <= 0:  # no power-cut trial brings a boot without camera: one of its own
                lab.record(scenarios_vm.scenario_3_late_camera(dev))

        attempt(lab, "4/3/7. the VM device", device_scenarios, record=False)
    elif group == "powercut":
        from tests.device import powercut

        dev = state.get("device")
        if dev is None:
            lab.record(Figure("5. power cuts (VM)", "needs the device of the vm group", "not run", ok=False))
            return

        def cuts() -> None:
            for f in powercut.scenario_5(lab, dev, trials):
                lab.record(f)

        attempt(lab, "5. power cut during an update (VM)", cuts, record=False)


def attempt(lab: Lab, name: str, fn, record: bool = True) -> None:
    t0 = time.monotonic()
    try:
        figure = fn()
        if record and figure is not None:
            lab.record(figure)
    except Exception as e:  # a failed scenario is a row of the table, not the end of the run
        logging.getLogger("tests.device").error("%s failed:\n%s", name, traceback.format_exc())
        lab.record(Figure(name.strip().splitlines()[0], "", f"FAILED after {time.monotonic() - t0:.0f} s: {e}", False))


def table(figures: list[Figure]) -> str:
    rows = ["| scenario | what was checked | measured |", "|---|---|---|"]
    rows += [f"| {f.scenario}{'' if f.ok else ' **FAILED**'} | {f.checked} | {f.figure} |" for f in figures]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.device", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {GROUPS}")
    parser.add_argument("--trials", type=int, default=10, help="power-cut trials (scenario 5; default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, disks) for inspection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so machines and VMs are stopped on the way out
    why = missing_capability()
    if why:
        print(f"python -m tests.device: cannot run here: {why}", file=sys.stderr)
        return 2
    groups = [g for g in GROUPS if g in args.only.split(",")]
    t0 = time.monotonic()
    lab, state = Lab(keep=args.keep), {}
    try:
        for group in groups:
            run_group(lab, group, state, args.trials if "powercut" in groups else 0)
    finally:
        if "device" in state:
            state["device"].close()
        lab.close()
    print(table(lab.figures))
    print(f"\nimages: {lab.build_s} (s; 0 = cached); whole lab {time.monotonic() - t0:.0f} s; run dir {lab.dir}")
    return 0 if lab.figures and all(f.ok for f in lab.figures) else 1


if __name__ == "__main__":
    sys.exit(main())
