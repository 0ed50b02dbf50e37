"""`edge-daemon demo` (the README's main command, run by scripts/demo.sh): broker + daemon + subscriber.

The sample output that README.md and docs/index.md show is checked against a real run of the bundled demo.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

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
    r = run_demo("--seconds", "9")  # the README's command, shorter
    lines = check_output(r)
    labels = [line.split()[1] for line in lines]
    published = [x for i, x in enumerate(labels) if i == 0 or x != labels[i - 1]]  # heartbeats repeat a label
    # one label change per 2 s segment (stable smoothing), in the clip's order
    assert len(published) >= 3 and published == truth[: len(published)], (published, truth)
    check_sample_against_run(demo_sample(REPO / "README.md"), r.stdout.splitlines())


DEMO_BEGIN, DEMO_END = "<!-- BEGIN demo output -->\n```\n", "```\n<!-- END demo output -->"


def demo_sample(page: Path) -> list[str]:
    """The demo output a page shows, between its `BEGIN demo output` and `END demo output` marks."""
    text = page.read_text()
    assert DEMO_BEGIN in text and DEMO_END in text, f"{page.name} lost its demo output marks"
    return text[text.index(DEMO_BEGIN) + len(DEMO_BEGIN) : text.index(DEMO_END)].splitlines()


def check_sample_against_run(sample: list[str], out: list[str]) -> None:
    """Each line of the sample is what a run prints: a classification's label and score as the run first published
    that label (the clip holds one image per class, so the score is the image's; the frame number, time and
    inference time vary by run), a stats message's keys in their order, the last line's form, and every other
    line's text around its `...` cuts."""
    first = {}
    for line in out:
        if line.startswith("edge/demo/classification: "):
            first.setdefault(line.split()[1], line.split()[3])
    for line in sample:
        if line == "...":
            continue
        if line.startswith("edge/demo/classification: "):
            label, score = line.split()[1], line.split()[3]
            if label in first:  # a shorter run does not reach the clip's end
                assert first[label] == score, f"sample says {label} {score}, the demo printed {first[label]}"
        elif line.startswith("edge/demo/stats: "):
            keys = re.findall(r'"(\w+)":', line)
            runs = [re.findall(r'"(\w+)":', o) for o in out if o.startswith("edge/demo/stats: ")]
            assert any(k[: len(keys)] == keys for k in runs), f"sample's stats keys {keys} are not the demo's"
        elif line.startswith("demo: subscriber received "):
            assert re.fullmatch(r"demo: subscriber received \d+ messages in [\d.]+ s", line), line
        else:
            parts = [p for p in line.split("...") if p]
            assert any(all(p in o for p in parts) for o in out), f"the demo printed no line like {line!r}"


def test_readme_and_home_page_show_the_same_demo_output() -> None:
    assert demo_sample(REPO / "README.md") == demo_sample(REPO / "docs" / "index.md")


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
