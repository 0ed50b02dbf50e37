"""Helpers of the collect tests: device roots seeded with frames by the daemon's own writer, and the device-side
module run by Ansible.

A "device" here is an install root (`EDGE_ROOT` layout: `etc/edge-daemon/config.toml`, `var/lib/edge-daemon/`)
that Ansible reaches with `ansible_connection=local`; no daemon runs. The collected frames are written by
`edge.collect.store.FrameStore` (real JPEGs and sidecars, 0600 files in 0700 folders, as on a device) and then
given to another uid, as the `edge-daemon` user owns them on a device.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge.collect.store import FrameStore

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "deploy/ansible/roles/edge_collect/library"
SERVICE_UID = 64123  # stands for the edge-daemon user of the device (any uid that is not ours)
LABELS = ("cat", "dog")


def frame(seed: int) -> np.ndarray:
    """A 96x128 BGR test picture, different for every seed (a gradient plus noise)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 128, dtype=np.float32)[None, :, None]
    return np.clip(ramp + rng.normal(0, 25, (96, 128, 3)), 0, 255).astype(np.uint8)


def sidecar(label: str, device: str, stem: str, score: float = 0.41) -> dict:
    """The daemon's sidecar for a kept frame (the fields of issue 16)."""
    index = LABELS.index(label)
    scores = [score, 1 - score] if index == 0 else [1 - score, score]
    return {"label": label, "index": index, "score": score, "top_k": [[label, score]], "scores": scores,
            "model": "demo_model", "device": device, "region": None, "reason": "below_score",
            "captured_at": "2026-03-01T12:00:00.000Z", "frame": int(stem.rsplit("-", 1)[-1])}  # fmt: skip


def seed(collect_dir: Path, device: str, frames: list[tuple[str, int]], first: int = 0) -> list[str]:
    """Write `(label, picture seed)` frames with the daemon's FrameStore; returns their `<label>/<stem>` paths."""
    store = FrameStore(collect_dir, max_bytes=1 << 30, min_free_bytes=0).start()
    paths = []
    for n, (label, picture) in enumerate(frames, first):
        stem = f"20260301T120000Z-{device}-{n:06d}"
        assert store.submit(frame(picture), sidecar(label, device, stem), stem)
        paths.append(f"{label}/{stem}")
    store.close(timeout=10)
    give_to_service_user(collect_dir)
    return paths


def give_to_service_user(top: Path) -> None:
    for path in [top, *top.rglob("*")]:
        os.chown(path, SERVICE_UID, SERVICE_UID)


def make_device(root: Path, collect_dir: str | None = None) -> Path:
    """An install root without a running daemon; returns its collect folder (default or `[collect] dir`)."""
    state = root / "var/lib/edge-daemon"
    (root / "etc/edge-daemon").mkdir(parents=True)
    state.mkdir(parents=True, mode=0o750)
    config = f'[camera]\nsource = "0"\n\n[model]\npath = "{state}/models/demo_model.tflite"\n'
    if collect_dir:
        config += f'\n[collect]\nenabled = true\ndir = "{collect_dir}"\n'
    (root / "etc/edge-daemon/config.toml").write_text(config)
    return Path(collect_dir) if collect_dir else state / "collected"


def device_files(collect_dir: Path) -> set[str]:
    """`<label>/<name>` of every file in a device's collect folder."""
    return {str(p.relative_to(collect_dir)) for p in collect_dir.glob("*/*") if p.is_file()}


def pack(collect_dir: Path, stage: Path) -> dict:
    """Run the device-side module's `pack` on this machine through Ansible (as the playbook does)."""
    args = f"action=pack dir={collect_dir} stage_dir={stage} escalated=false"
    cmd = [ansible("ansible"), "localhost", "-M", str(LIBRARY), "-m", "edge_collect_files", "-a", args, "-o",
           "-e", f"ansible_python_interpreter={python()}"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.split("=>", 1)[1])


def ansible(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name) or name


def python() -> str:
    """The devices' interpreter: Debian's, as on a device."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
