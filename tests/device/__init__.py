"""The device lab: the daemon the way a Raspberry Pi runs it, on this machine, from Debian packages.

- `images`: a Debian bookworm root filesystem made by mmdebstrap, the Debian kernel unpacked with `dpkg -x`,
  the daemon's dependency wheels and a bootable VM disk, cached under `$EDGE_LAB_CACHE` (default
  `~/.cache/edge-daemon/device-lab`) under keys of their inputs, so a changed input rebuilds only what it feeds.
- `nspawn`: systemd-nspawn machines booting that root file system with systemd as PID 1 (native speed).
- `vm`: a QEMU (TCG) VM of the same system with the Debian kernel: the `vivid` V4L2 camera driver, real power
  cuts (`kill -9` of QEMU), cloud-init's NoCloud seed.
- `scenarios_systemd`, `scenarios_vm`, `powercut` + `targets`: the scenarios of issue 12, each returning its
  measured figure (scenario 6, the fleet, is `tests/deploy/fleet.py`).

Run it all with `python -m tests.device` (as root; a table of figures, exit 0 when every scenario holds) or
through pytest (`tests/device/test_lab.py`, `tests/deploy/test_fleet.py`).
"""
