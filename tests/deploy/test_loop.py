"""The whole loop on a systemd-managed device (issue 16; HEAVY: about 4 minutes): collect -> gather -> review ->
retrain -> roll out -> the device publishes the right label.

The field: the device's camera sees trousers on a light background, a scene the bundled demo model never had
(Fashion-MNIST is light garments on black): 20 colour-inverted Fashion-MNIST test images of trousers, none in the
training set, each chosen because the demo model gets it wrong with a best score below 0.6 through the daemon's
own frame decoding. The steps are the manual's walk-through (docs/retraining.md), run as a user runs them:

1. `edge-deploy release` installs the daemon with the demo model and `[collect] below_score = 0.6` (role variable
   `edge_collect`) on an nspawn device booted with systemd (tests/deploy/fleet.py); the device classifies the
   clip, publishes wrong labels and keeps the hard frames.
2. `edge-deploy collect` gathers 100 or more into an inbox (the clip has a camera's noise: no two frames alike).
3. The review: every gathered frame is a trouser; `trainer.review.inbox.assign`, what the review page's Assign calls,
   moves them into the dataset (`edge-train export-dataset fashion-mnist ... --per-class 100 --seed 5`), shared
   between its train/ and test/ by content, so the guard measures both models on field frames too.
4. `edge-train train data --from trainer/assets/demo_run` continues from the demo model.
5. `edge-deploy model` (no --force: the retrain guard must pass) rolls the new model out; the device now
   publishes `Trouser` for at least 80 % of the same clip's frames (under 10 % before).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.demo import DEMO_MODEL
from edge.errors import EdgeError
from edge.frames.decode import decode_for
from tests.deploy.fleet import Fleet, deploy, fleet_prerequisites
from tests.device.host import LabError, wait_until
from tests.device.lab import REPO, shared_lab

pytestmark = pytest.mark.slow

DEMO_RUN = REPO / "trainer/assets/demo_run"
TRUE = "Trouser"
COLLECT = {"enabled": True, "below_score": 0.6, "dedupe_s": 0}  # every hard frame: the counts below are per frame


def edge_train(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    r = subprocess.run(["edge-train", *map(str, args)], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def field_clip(data: Path, pool: Path, out: Path, count: int = 20) -> Path:
    """`count` light-background trousers (not in `data`) the demo model gets wrong, 0.5 s each at 10 fps."""
    from edge.inference.model import load_model

    model = load_model(str(DEMO_MODEL), device="cpu")
    known = {p.name for p in data.rglob("*.png")}
    size = (model.spec.input.width, model.spec.input.height)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    noise, chosen = np.random.default_rng(16), 0
    for path in sorted((pool / "test" / TRUE).glob("*.png")):
        if path.name in known:
            continue
        frame = 255 - cv2.resize(cv2.imread(str(path)), (320, 240))
        jpeg = cv2.imencode(".jpg", frame)[1]
        top = model.classify(decode_for(jpeg, [size])).top
        if top is not None and top.label != TRUE and top.score < COLLECT["below_score"]:
            for _ in range(5):  # a camera's frames are never identical: sensor noise, sigma 3
                writer.write(cv2.add(frame, noise.normal(0, 3, frame.shape).round().astype("int16"), dtype=cv2.CV_8U))
            chosen += 1
            if chosen == count:
                break
    writer.release()
    model.close()
    assert chosen == count, f"only {chosen} light-background trousers the demo model gets wrong"
    return out


def labels_from(lab, model: str, after: float, seconds: float) -> list[str]:
    """The labels the device published from `model` during `seconds` after its first message at/after `after`."""
    first = lab.wait_message("edge/loop1/classification", after, 90, lambda m: m.json()["model"] == model)
    time.sleep(seconds)
    got = [m.json() for m in lab.messages("edge/loop1/classification", first.received)]
    return [p["label"] for p in got if p["model"] == model]


def test_hard_frames_collected_relabelled_retrained_and_rolled_out(tmp_path: Path) -> None:
    reason = fleet_prerequisites()
    if reason:
        pytest.skip(reason)
    from trainer.data.offline import find_fashion_mnist
    from trainer.review.inbox import assign, list_inbox

    try:
        find_fashion_mnist()
    except EdgeError as e:
        pytest.skip(f"Fashion-MNIST not installed (apt install dataset-fashion-mnist): {e}")

    data, pool = tmp_path / "data", tmp_path / "pool"
    edge_train("export-dataset", "fashion-mnist", data, "--per-class", 100, "--seed", 5)
    edge_train("export-dataset", "fashion-mnist", pool, "--per-class", 1000)
    lab = shared_lab()
    media = lab.dir / "loop-media"
    media.mkdir(exist_ok=True)
    field_clip(data, pool, media / "field.avi")
    broker = lab.start_broker()
    fleet = Fleet(lab, ("loop1",), media).start()
    try:
        group_vars = {
            "edge_mqtt_host": "127.0.0.1", "edge_mqtt_port": broker.port, "edge_mqtt_username": "edge",
            "edge_mqtt_password_file": "edge-daemon.mqtt-password", "edge_camera_source": "/srv/fleet-media/field.avi",
            "edge_install_args": "'--find-links /srv/edge-wheels --offline'", "edge_heartbeat_s": 2,
            "edge_camera_max_rate": 10,  # every frame of the clip: 100 distinct frames a loop
        }  # fmt: skip
        inventory = fleet.inventory(lab.dir / "loop.ini", group_vars)
        # [collect] as docs/retraining.md shows; every classified frame published (`edge_config_extra` goes into
        # [smoothing], the config's last table), so the labels below are per frame, not smoothed.
        collect = ["-e", json.dumps({"edge_collect": COLLECT, "edge_config_extra": 'mode = "off"'})]

        # 1. The demo model on the device: wrong labels, the hard frames kept.
        t0 = time.monotonic()
        r = deploy("release", lab.project_wheel(), "--release", "loop-1", "--model", DEMO_MODEL, "--hosts",
                   inventory, "--timeout", "60", "--json", *collect)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr + fleet.devices[0].journal()[-3000:]
        before = labels_from(lab, "demo_model", t0, 12)
        assert len(before) > 30 and before.count(TRUE) < 0.1 * len(before), before
        device = fleet.device("loop1")
        distinct = "md5sum /var/lib/edge-daemon/collected/*/*.jpg 2>/dev/null | cut -c1-32 | sort -u | wc -l"
        try:
            wait_until(lambda: int(device.sh(distinct, check=False).stdout.strip() or 0) >= 100, 120, "100 hard frames")
        except LabError as e:
            raise LabError(
                f"{e}: {device.sh(distinct, check=False).stdout.strip()} kept; stats "
                f"{[m.payload[:300] for m in lab.messages('edge/loop1/stats')][-1:]}"
            ) from None

        # 2. Gather.
        inbox = tmp_path / "inbox"
        r = deploy("collect", "--hosts", inventory, "--out", inbox, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        groups = list_inbox(inbox)
        files = [i for group in groups for item in group["items"] for i in [item["id"], *item["same"]]]  # +near-dups
        assert len(files) >= 100 and all(item["sidecar"]["score"] < 0.6 for g in groups for item in g["items"]), groups

        # 3. Review: they are all trousers.
        moves = assign(inbox, data, files, TRUE)
        assert not moves.failed and len(moves.moved) == len(files), moves

        # 4. Retrain from the demo model's run.
        runs = tmp_path / "runs"
        out = edge_train("train", data, "--out", runs / "v2", "--from", DEMO_RUN, "--no-augment").stdout
        assert "held-out accuracy, previous" in out, out

        # 5. Roll out (the guard must pass) and watch the same clip.
        t1 = time.monotonic()
        r = deploy("model", runs / "v2/model.tflite", "--hosts", inventory, "--timeout", "60", "--json", *collect)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)[0]["result"] == "deployed", r.stdout
        after = labels_from(lab, "model", t1, 12)
        assert len(after) > 30 and after.count(TRUE) >= 0.8 * len(after), (after, len(files), out[-1200:])
        overall = next(line for line in out.splitlines() if line.startswith("overall"))
        print(f"\nloop: before {before.count(TRUE)}/{len(before)} frames Trouser; {len(files)} gathered; "
              f"held-out {overall}; after {after.count(TRUE)}/{len(after)} Trouser")  # fmt: skip
    finally:
        fleet.close()
        shutil.rmtree(media, ignore_errors=True)
