"""`edge-daemon demo` (the README's main command, run by scripts/demo.sh): broker + daemon + subscriber."""

from __future__ import annotations

import json
import subprocess

import pytest

from edge.cli.demo import DEMO_CLIP, DEMO_MODEL
from tests.edge.conftest import CLI, REPO

pytest.importorskip("amqtt", reason="the embedded broker needs the demo extra: pip install '.[demo]'")


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "demo", *args], capture_output=True, text=True, cwd=REPO, timeout=90)


def check_output(r: subprocess.CompletedProcess) -> list[str]:
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "edge/demo/availability: online" in lines and lines[-2] == "edge/demo/availability: offline"
    assert lines[-1].startswith("demo: subscriber received ")
    assert any(line.startswith("homeassistant/sensor/demo_label/config: ") for line in lines)
    assert any(line.startswith("edge/demo/stats: {") for line in lines)
    return [line for line in lines if line.startswith("edge/demo/classification")]


def test_demo_on_a_published_model_and_clip(coral_model, cat_bird_clip) -> None:
    r = run_demo("--seconds", "6", "--model", str(coral_model), "--clip", str(cat_bird_clip))
    classifications = check_output(r)
    labels = [line.split(": ", 1)[1] for line in classifications]
    assert any("cat" in label for label in labels) and any("chickadee" in label for label in labels), labels


def test_demo_with_a_real_broker(mosquitto, demo_model, fm_clip) -> None:
    r = run_demo("--seconds", "6", "--broker", f"127.0.0.1:{mosquitto.port}", "--model", str(demo_model),
                 "--clip", str(fm_clip))  # fmt: skip
    assert check_output(r)


def test_demo_bundled_assets_publish_the_clips_labels_in_order() -> None:
    if not (DEMO_MODEL.exists() and DEMO_CLIP.exists()):
        pytest.skip(f"bundled demo assets not committed yet ({DEMO_MODEL.name}, {DEMO_CLIP.name})")
    timeline = json.loads(DEMO_CLIP.with_suffix(".json").read_text())  # what the trainer put in the clip
    truth = [s["label"] for s in timeline["segments"]]
    lines = check_output(run_demo("--seconds", "9"))  # the README's command, shorter
    labels = [line.split()[1] for line in lines]
    published = [x for i, x in enumerate(labels) if i == 0 or x != labels[i - 1]]  # heartbeats repeat a label
    # one label change per 2 s segment (stable smoothing), in the clip's order
    assert len(published) >= 3 and published == truth[: len(published)], (published, truth)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "nothere.tflite"], "edge-daemon: error: --model: nothere.tflite not found"),
        (["--seconds", "0"], "edge-daemon: error: --seconds: 0 is out of range; use a number above 0"),
        (["--broker", "nohost"], "edge-daemon: error: --broker: expected HOST:PORT"),
        (["--broker", "127.0.0.1:1"], "edge-daemon: error: --broker: cannot connect to 127.0.0.1:1"),
    ],
)
def test_demo_bad_arguments(args, expected) -> None:
    r = run_demo(*args)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()] and expected in r.stderr
