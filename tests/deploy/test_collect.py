"""`edge-deploy collect` with real Ansible against devices on this machine (`ansible_connection=local`, each its
own install root seeded by the daemon's FrameStore; see collect_fixtures.py), plus one unreachable device.

Checked: the trainer's layout in the inbox with per-device provenance in each sidecar; duplicates (across devices
and from an earlier run) skipped; nothing removed without --remove; with --remove exactly the transferred files
removed while a writer keeps adding frames (those written meanwhile stay); a device whose frames cannot be
written here is failed and keeps every file even with --remove; a failed device makes the exit status 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.collect.store import FrameStore
from tests.deploy.collect_fixtures import (
    device_files,
    frame,
    give_to_service_user,
    make_device,
    python,
    seed,
    sidecar,
)
from tests.support.mosquitto import free_port

pytestmark = pytest.mark.slow
EDGE_DEPLOY = [sys.executable, "-m", "deploy.cli"]


def prerequisites() -> str | None:
    if not (Path(sys.executable).parent / "ansible-playbook").exists() and not shutil.which("ansible-playbook"):
        return "ansible-core not installed (pip install -e '.[deploy]')"
    if os.geteuid() != 0:
        return "the devices' files belong to another user (the service's), as on a device: run as root"
    return None


def collect(inventory: Path, inbox: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    cmd = [*EDGE_DEPLOY, "collect", "--hosts", str(inventory), "--out", str(inbox), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    lines = r.stdout.splitlines()
    assert lines and lines[0].split() == ["DEVICE", "COLLECTED", "DUPLICATES", "REMOVED", "FAILED"], r.stdout + r.stderr
    return r, {row[0]: row for row in (re.split(r"\s{2,}", line) for line in lines[1:])}


def inbox_images(inbox: Path) -> dict[str, dict]:
    """`<label>/<name>.jpg` -> its sidecar, for every image in the inbox."""
    return {str(p.relative_to(inbox)): json.loads(p.with_suffix(".json").read_text()) for p in inbox.glob("*/*.jpg")}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fleet(tmp_path):
    """dev1 (default folder), dev2 (`[collect] dir` elsewhere), dev3 (collected nothing), dev4 (unreachable)."""
    reason = prerequisites()
    if reason:
        pytest.skip(reason)
    dirs = {
        "dev1": make_device(tmp_path / "dev1"),
        "dev2": make_device(tmp_path / "dev2", str(tmp_path / "dev2/srv/kept-frames")),
        "dev3": make_device(tmp_path / "dev3"),
    }
    # dev2's picture 1 is dev1's picture 1: the same frame, so the same JPEG bytes (a duplicate across devices).
    seeded = {"dev1": seed(dirs["dev1"], "dev1", [("cat", 1), ("dog", 2), ("cat", 3)]),
              "dev2": seed(dirs["dev2"], "dev2", [("cat", 1), ("dog", 20)])}  # fmt: skip
    inventory = tmp_path / "inventory.ini"
    hosts = "\n".join(f"{d} edge_root={tmp_path / d}" for d in dirs)
    inventory.write_text(
        f"[edge]\n{hosts}\ndev4 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port={free_port()} "
        "ansible_user=root ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o ConnectTimeout=5'\n\n"
        f"[edge:vars]\nansible_connection=local\nansible_python_interpreter={python()}\nedge_become=false\n"
    )
    return inventory, dirs, seeded


def test_collect_keeps_provenance_skips_duplicates_and_removes_only_what_was_transferred(tmp_path, fleet):
    inventory, dirs, seeded = fleet
    inbox = tmp_path / "inbox"
    before = {d: device_files(p) if p.exists() else set() for d, p in dirs.items()}

    # 1. Without --remove: everything arrives once, nothing leaves the devices; dev4 fails the run.
    r, rows = collect(inventory, inbox)
    print(r.stdout, r.stderr)
    assert r.returncode == 1, r.stderr
    assert rows["dev1"][3] == rows["dev2"][3] == "-" and rows["dev1"][4] == rows["dev2"][4] == "-", rows
    assert {int(rows["dev1"][2]), int(rows["dev2"][2])} == {0, 1}, "one duplicate, whichever device came second"
    assert int(rows["dev1"][1]) + int(rows["dev2"][1]) == 4, rows
    assert rows["dev3"][1:] == ["0", "0", "-", "-"], rows
    assert "dev3: no collect folder" in r.stderr and "is [collect] enabled?" in r.stderr, r.stderr
    assert rows["dev4"][1:4] == ["-", "-", "-"] and "ssh" in rows["dev4"][4].lower(), rows
    assert {d: device_files(p) if p.exists() else set() for d, p in dirs.items()} == before, "nothing removed"

    images = inbox_images(inbox)
    assert len(images) == 4 and {p.split("/")[0] for p in images} == {"cat", "dog"}
    for path, meta in images.items():
        device = meta["collected_from"]
        assert meta["device"] == device, "provenance names the device the frame came from"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["collected_at"]), meta
        stem = Path(path).stem
        assert f"{path.split('/')[0]}/{stem}" in seeded[device], (path, device)
        original = dirs[device] / path
        assert sha(inbox / path) == sha(original), "the same JPEG bytes as on the device"
        assert {k: v for k, v in meta.items() if not k.startswith("collected_")} == json.loads(
            original.with_suffix(".json").read_text()), "the device's sidecar is kept as it was"  # fmt: skip
        assert stat.S_IMODE((inbox / path).stat().st_mode) == 0o600
    assert all(stat.S_IMODE((inbox / label).stat().st_mode) == 0o700 for label in ("cat", "dog"))
    assert len({sha(inbox / p) for p in images}) == 4, "the shared frame is there once"

    # 2. Again: all duplicates (an earlier collect), the inbox unchanged.
    r, rows = collect(inventory, inbox, "--limit", "dev1:dev2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows["dev1"][1:] == ["0", "3", "-", "-"] and rows["dev2"][1:] == ["0", "2", "-", "-"], rows
    assert inbox_images(inbox) == images

    # 3. --remove while dev1's daemon keeps collecting: what was transferred goes, what was written meanwhile stays.
    store = FrameStore(dirs["dev1"], max_bytes=1 << 30, min_free_bytes=0).start()
    written: list[str] = []
    stop = threading.Event()

    def keep_collecting() -> None:
        n = 100
        while not stop.is_set():
            stem = f"20260301T120500Z-dev1-{n:06d}"
            if store.submit(frame(n), sidecar("dog", "dev1", stem), stem):
                written.append(f"dog/{stem}")
            n += 1
            stop.wait(0.05)

    writer = threading.Thread(target=keep_collecting)
    writer.start()
    try:
        time.sleep(0.3)
        r, rows = collect(inventory, inbox, "--limit", "dev1:dev2", "--remove")
        ended = time.time()
    finally:
        stop.set()
        writer.join()
        store.close(timeout=10)
    give_to_service_user(dirs["dev1"])
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows["dev2"][1:] == ["0", "2", "2", "-"], rows
    left = device_files(dirs["dev1"])
    transferred = {f"dog/{Path(p).stem}" for p, m in inbox_images(inbox).items()
                   if m["collected_from"] == "dev1" and p.startswith("dog/") and "120500Z" in p}  # fmt: skip
    assert int(rows["dev1"][1]) == len(transferred) > 0, (rows, transferred)
    assert int(rows["dev1"][3]) == 3 + len(transferred), "the 3 seeded frames and the new ones it transferred"
    assert not any(f"{p}.jpg" in left or f"{p}.json" in left for p in [*seeded["dev1"], *transferred])
    kept = {p for p in written if f"{p}.jpg" in left}
    assert kept == set(written) - transferred, "every frame is either in the inbox or still on the device"
    during = [p for p in kept if (dirs["dev1"] / f"{p}.jpg").stat().st_mtime < ended]
    assert during, "frames written during the transfer stay on the device"
    assert all(f"{p}.json" in left for p in kept), "with their sidecars"
    assert device_files(dirs["dev2"]) == set() and not list((tmp_path / "dev1/var/tmp").iterdir()), "no archive left"
    assert not (inbox / ".incoming").exists() or not list((inbox / ".incoming").iterdir())


def test_a_device_whose_frames_cannot_be_written_here_keeps_them_even_with_remove(tmp_path, fleet):
    inventory, dirs, _ = fleet
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "dog").write_text("a file where the dog folder would go\n")  # both devices have dog frames
    before = {d: device_files(dirs[d]) for d in ("dev1", "dev2")}
    r, rows = collect(inventory, inbox, "--limit", "dev1:dev2", "--remove")
    print(r.stdout, r.stderr)
    assert r.returncode == 1, r.stdout + r.stderr
    for d in ("dev1", "dev2"):
        assert rows[d][1:4] == ["-", "-", "-"] and "cannot write the frames" in rows[d][4], rows[d]
        assert device_files(dirs[d]) == before[d], f"{d}: nothing removed after a failed transfer"
