"""Drift in a real `edge-daemon run` on real video: the bundled demo clip (the model's own world) stays `ok`
after the warm-up; the same clip colour-inverted (`ffmpeg -vf negate`) turns `drifting`, with a `drift_changed`
event, and `[collect] on_drift` keeps frames from the drifting period. Windows are shortened (`[drift] window_s`)
so a test takes seconds; the defaults are measured on a simulated day by `benchmarks/drift.py`."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from edge.inference.labels import read_reference
from tests.edge.conftest import DEMO_MODEL
from tests.edge.service.test_daemon import T, config, payloads, wait_payload

CLIP = DEMO_MODEL.with_name("demo_clip.avi")
DRIFT = {"window_s": 40.0, "min_frames": 390}  # two loops of the 20 s clip (10 fps)
CAMERA = {"max_rate": 20.0}  # the file plays at its own 10 fps


@pytest.fixture(scope="module")
def negated(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    out = tmp_path_factory.mktemp("negated") / "negated.avi"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(CLIP), "-vf", "negate", "-c:v", "mjpeg", "-q:v", "3",
                    str(out)], check=True)  # fmt: skip
    return out


def test_the_demo_model_carries_its_reference() -> None:
    ref = read_reference(DEMO_MODEL, tuple(line.strip() for line in (DEMO_MODEL.parent.parent.parent / "trainer" /
                         "assets" / "demo_run" / "labels.txt").read_text().splitlines()))  # fmt: skip
    assert ref is not None and ref.images == 2017 and ref.bins == 5
    assert 0.4 < ref.threshold.min() <= ref.threshold.max() < 0.9


def test_the_demo_clip_stays_ok(mosquitto, subscriber_factory, daemon_factory, demo_model, tmp_path) -> None:
    sub = subscriber_factory(mosquitto, [f"{T}/drift", f"{T}/event"])
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, CLIP, camera=CAMERA, drift=DRIFT))
    first = wait_payload(sub, f"{T}/drift", lambda p: True, timeout=20)
    assert first["state"] == "learning" and first["model"] == "demo_model"
    ok = wait_payload(sub, f"{T}/drift", lambda p: p["state"] == "ok", timeout=60)
    assert ok["score"] < ok["threshold"] and ok["frames"] >= DRIFT["min_frames"]
    # 20 more states (one per stats interval of 1 s): half the window turned over, still ok every time
    seen = len(payloads(sub, f"{T}/drift"))
    sub.wait_for(lambda ms: sum(m.topic == f"{T}/drift" for m in ms) >= seen + 20, 40)
    assert d.stop()[0] == 0
    states = [p["state"] for p in payloads(sub, f"{T}/drift")]
    assert states[states.index("ok"):] == ["ok"] * len(states[states.index("ok"):]), states
    assert not [e for e in payloads(sub, f"{T}/event") if e["event"] == "drift_changed" and e["state"] != "ok"]


def test_the_inverted_clip_drifts_and_its_frames_are_kept(mosquitto, subscriber_factory, daemon_factory, demo_model,
                                                          negated, tmp_path) -> None:  # fmt: skip
    store = tmp_path / "collected"
    sub = subscriber_factory(mosquitto, [f"{T}/drift", f"{T}/event", f"{T}/stats"])
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, negated, camera=CAMERA, drift=DRIFT,
                              collect={"enabled": True, "dir": str(store), "on_drift": True, "max_per_hour": 20,
                                       "dedupe_s": 0}))  # the clip's still segments: count every frame
    drifting = wait_payload(sub, f"{T}/drift", lambda p: p["state"] == "drifting", timeout=70)
    assert drifting["score"] >= drifting["threshold"] or drifting["unknown_rate"] >= 0.25
    event = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "drift_changed")
    assert (event["previous"], event["state"], event["region"]) == ("learning", "drifting", None)
    wait_payload(sub, f"{T}/stats", lambda p: p.get("collected", 0) >= 20, timeout=30)
    assert d.stop()[0] == 0
    sidecars = [json.loads(p.read_text()) for p in store.glob("*/*.json")]
    assert len(sidecars) == 20 and all(s["reason"] == ["on_drift"] for s in sidecars)


def _with_metrics(tmp_path, metrics: dict):
    """The demo model with its metrics.json replaced (the way edge-train embeds one)."""
    import zipfile

    from trainer.export import embed_labels, embed_metrics

    with zipfile.ZipFile(DEMO_MODEL) as z:
        start = min(i.header_offset for i in z.infolist())
        labels = z.read("labels.txt").decode().split()
    out = tmp_path / "published.tflite"
    out.write_bytes(DEMO_MODEL.read_bytes()[:start])
    embed_labels(out, labels)
    embed_metrics(out, metrics)
    return out


def _bad_reference() -> dict:
    import zipfile

    doc = json.loads(zipfile.ZipFile(DEMO_MODEL).read("metrics.json"))
    doc["reference"]["classes"][3]["top_score"][2] = float("nan")  # json writes NaN, a malformed number
    return doc


def test_a_malformed_reference_one_line_from_info_and_unavailable_in_the_daemon(
    mosquitto, subscriber_factory, daemon_factory, tmp_path
) -> None:
    model = _with_metrics(tmp_path, _bad_reference())
    info = subprocess.run(["edge-daemon", "info", "--model", str(model)], capture_output=True, text=True)
    lines = [line for line in info.stderr.splitlines() if not line.startswith("INFO")]
    assert info.returncode == 2 and len(lines) == 1 and "Traceback" not in info.stderr, info.stderr
    assert "reference.classes[3].top_score[2]: nan is not a finite number" in lines[0]
    sub = subscriber_factory(mosquitto, [f"{T}/drift", f"{T}/classification"])
    d = daemon_factory(config(tmp_path, mosquitto, model, CLIP, camera=CAMERA))
    drift = wait_payload(sub, f"{T}/drift", lambda p: True, timeout=20)
    assert drift["state"] == "unavailable" and "top_score[2]: nan is not a finite number" in drift["reason"]
    wait_payload(sub, f"{T}/classification", lambda p: p["label"] is not None)  # the daemon classifies on
    assert d.stop()[0] == 0
