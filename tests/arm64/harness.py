"""Proves the daemon on a Raspberry Pi OS bookworm 64-bit userland, emulated: `python -m tests.arm64.harness`.

Steps: a cached Debian bookworm arm64 sysroot (tests.arm64.sysroot); the daemon's aarch64 cp311 wheels
resolved from pyproject.toml and the project built as a wheel (tests.arm64.wheels); then ONE emulated process
(`qemu-aarch64-static -cpu cortex-a72`, a Pi 4's core) runs tests/arm64/guest.py: import, `edge-daemon info`
and `classify` on a published int8 model, on the trainer's demo model and on EfficientNet-Lite0 as
`edge-train pretrained` exports it, then `edge-daemon run` on a video file publishing to a real mosquitto on
the host, until the harness sends SIGTERM once a subscriber has the frames. The harness checks every result
(top-1, messages, clean exit) and prints the emulated timings.

Exit status 0 when everything held, 1 with one line per failed check, 2 when it could not run at all.
Cache: `$EDGE_ARM64_CACHE` or `~/.cache/edge-daemon-arm64` (about 370 MB; delete it to rebuild).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.arm64 import sysroot as sysroot_mod
from tests.arm64 import wheels as wheels_mod
from tests.arm64.guest import PREFIX
from tests.arm64.target import REPO
from tests.support.mosquitto import Mosquitto, Subscriber, mosquitto_available

log = logging.getLogger("tests.arm64.harness")

SHARED = REPO.parent / "shared" / "data"
GUEST = Path(__file__).resolve().parent / "guest.py"
DEMO_MODEL = REPO / "edge" / "assets" / "demo_model.tflite"
DEVICE_ID = "pi-arm64"
CPU = os.environ.get("EDGE_ARM64_CPU", "cortex-a72")  # cortex-a72 = Pi 4, cortex-a76 = Pi 5
GUEST_TIMEOUT_S = 300  # a step of the emulated process taking longer than this counts as hung
SIGTERM_TIMEOUT_S = 30  # systemd's default stop timeout is 90 s; the daemon promises well under 5 s


@dataclass(frozen=True)
class Case:
    """A model, an image, and the label the model must give it: top-1, or within the `top` best classes."""

    model: Path
    image: Path
    label: str
    index: int | None = None
    top: int = 1


@dataclass
class Report:
    """What the harness saw: guest result lines, MQTT messages, timings (seconds), failed checks, notes."""

    steps: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    guest_log: str = ""

    def check(self, ok: bool, what: str) -> bool:
        """Record `what` as a failure unless `ok`."""
        if not ok:
            self.failures.append(what)
        return ok

    def step(self, name: str) -> list[dict]:
        """The guest's result lines for one step."""
        return [s for s in self.steps if s.get("step") == name]


def qemu() -> str | None:
    """Path of qemu-aarch64-static, or None (apt-get install qemu-user-static)."""
    return shutil.which("qemu-aarch64-static")


def published_case() -> Case | None:
    """Coral's MobileNet v1 0.25/128 int8 on cat.bmp: upstream's test expects class 283, tiger cat, in the top 3.

    Only in the top 3: on the daemon's JPEG frames tiger cat (0.16-0.22) and Egyptian cat (0.18-0.19) are within
    a few hundredths of each other, and which one leads depends on the JPEG decoder (libjpeg or FFmpeg's).
    """
    model, image = SHARED / "coral/mobilenet_v1_0.25_128_quant.tflite", SHARED / "coral/cat.bmp"
    return Case(model, image, "tiger cat", 283, top=3) if model.exists() and image.exists() else None


def trainer_cases(work: Path, report: Report, count: int = 3) -> list[Case]:
    """Fashion-MNIST test images for the model our trainer made (edge/assets/demo_model.tflite).

    Ground truth comes from the dataset (Debian's dataset-fashion-mnist). An image is used only when the
    model gets it right on this x86 host by a clear margin, so the emulated aarch64 run must reproduce a
    correct answer and not a coin toss between near-equal int8 scores. One image per class, `count` classes.

    Returns:
        The cases (images written under `work`). Why there are none goes into the report: a note when the
        model or the dataset is absent, a failure when the model gets no test image clearly right.
    """
    if not DEMO_MODEL.exists():
        report.notes.append(f"SKIPPED the trainer's model: {DEMO_MODEL.relative_to(REPO)} not committed yet")
        return []
    import cv2

    from edge.errors import EdgeError
    from edge.inference.model import load_model
    from trainer.data.offline import FASHION_CLASSES, FASHION_FILES, find_fashion_mnist, read_idx

    try:
        folder = find_fashion_mnist()
        images, truth = (read_idx(folder / name) for name in FASHION_FILES["test"])
    except EdgeError as e:
        report.notes.append(f"SKIPPED the trainer's model: {e}")
        return []
    cases: list[Case] = []
    with load_model(DEMO_MODEL, device="cpu", threads=1) as clf:
        labels = clf.spec.labels
        if not set(FASHION_CLASSES) <= set(labels):
            report.notes.append(f"SKIPPED {DEMO_MODEL.name}: labels {labels} are not Fashion-MNIST's (no ground truth)")
            return []
        for i in range(min(len(images), 300)):
            expected = FASHION_CLASSES[int(truth[i])]
            if len(cases) == count or any(c.label == expected for c in cases):
                continue
            scores = clf.scores(images[i])
            first, second = sorted(scores)[-1], sorted(scores)[-2]
            if labels[int(scores.argmax())] == expected and first - second >= 0.3:
                path = work / f"fashion-mnist-test-{i:05d}.png"
                cv2.imwrite(str(path), images[i])
                cases.append(Case(DEMO_MODEL, path, expected, labels.index(expected)))
    report.check(bool(cases), f"{DEMO_MODEL.name} got no Fashion-MNIST test image right by a clear margin on x86")
    return cases


def lite0_cases(cache: Path, report: Report) -> list[Case]:
    """EfficientNet-Lite0 int8 (`edge-train pretrained efficientnet-lite0`, built on the host once and cached)
    on the published parrot photo. The expected top-1 is what LiteRT on this x86 host says, used only when it
    leads by a clear margin, so the emulated run must reproduce a correct answer, not a coin toss."""
    from tests.conformance import lite0

    image = SHARED / "coral/parrot.jpg"
    reason = lite0.unavailable() or (None if image.exists() else f"{image} not found")
    if reason:
        report.notes.append(f"SKIPPED EfficientNet-Lite0: {reason}")
        return []
    model = lite0.lite0_model(cache / "lite0")
    from edge.frames.images import read_image
    from edge.inference.model import load_model

    with load_model(model, device="cpu", threads=1) as clf:
        scores = clf.scores(read_image(image))
        best = int(scores.argmax())
        label, margin = clf.spec.labels[best], float(sorted(scores)[-1] - sorted(scores)[-2])
    if not report.check(margin >= 0.3, f"{model.name} on {image.name}: x86 top-1 {label} leads by only {margin:.2f}"):
        return []
    return [Case(model, image, label, best)]


def make_clip(image: Path, out: Path, frames: int = 30, fps: float = 10.0) -> Path:
    """A short MJPEG .avi of `image` (made with the host's OpenCV): the daemon's video-file camera input."""
    import cv2

    frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
    frame = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    if not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"could not write the test clip {out} (host OpenCV without an MJPEG writer?)")
    return out


def write_config(path: Path, *, clip: Path, model: Path, broker: Mosquitto) -> Path:
    """The daemon's TOML config for the emulated run: every frame published, stats every second."""
    q = json.dumps  # a JSON string is a valid TOML basic string for these paths
    path.write_text(
        f"[camera]\nsource = {q(str(clip))}\nloop = true\n\n"
        f"[model]\npath = {q(str(model))}\nthreads = 2\ntop_k = 3\nwatch = false\n\n"
        f"[mqtt]\nhost = {q(broker.host)}\nport = {broker.port}\ndevice_id = {q(DEVICE_ID)}\n\n"
        '[smoothing]\nmode = "off"\n\n[stats]\ninterval_s = 1.0\n'
    )
    return path


def _read_guest(stream, report: Report, started: threading.Event) -> None:
    for line in stream:
        if line.startswith(PREFIX):
            step = json.loads(line[len(PREFIX) :])
            report.steps.append(step)
            if step["step"] == "run-start":
                started.set()


def run_guest(root: Path, pythonpath: list[Path], args: list[str], report: Report, *, cpu: str, run_until=None) -> int:
    """Start the emulated Python on guest.py; `run_until()` decides when to send SIGTERM. Returns its exit code."""
    sysroot_mod.write_cpuinfo(root, cpu)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(pythonpath[0].parent),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(map(str, pythonpath)),
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [qemu() or "qemu-aarch64-static", "-cpu", cpu, "-L", str(root), str(root / "usr/bin/python3.11")]
    errlog = pythonpath[0].parent / f"guest-{cpu}.log"
    started = threading.Event()
    with errlog.open("w") as err:
        proc = subprocess.Popen([*cmd, str(GUEST), *args], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        reader = threading.Thread(target=_read_guest, args=(proc.stdout, report, started), daemon=True)
        reader.start()
        try:
            if run_until is not None:
                run_until(proc, started)
            if proc.poll() is None and run_until is not None:
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=SIGTERM_TIMEOUT_S)
                report.timings["guest: SIGTERM to exit"] = time.monotonic() - t0
            proc.wait(timeout=GUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            report.failures.append(f"emulated process still running after {e.timeout:g} s: killed")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
    report.guest_log = errlog.read_text(errors="replace")
    return proc.returncode


def run(cache: Path | None = None, frames: int = 5, pi5: bool = True) -> Report:
    """Build (or reuse) everything, run the emulated daemon, check the results. See the module docstring.

    Args:
        cache: the cache directory (default: `sysroot.default_cache()`).
        frames: classification messages the subscriber must receive from `edge-daemon run`.
        pi5: also run import/info/classify on a Pi 5 core (cortex-a76: other int8 kernels are picked).
    """
    report = Report()
    cache = cache or sysroot_mod.default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        report.timings[name] = now - t
        t = now

    with sysroot_mod.locked(cache):  # held for the whole run: another run must not swap the files in use
        return _run_locked(cache, frames, pi5, report, lap)


def _run_locked(cache: Path, frames: int, pi5: bool, report: Report, lap: Callable[[str], None]) -> Report:
    root = sysroot_mod.ensure_sysroot(cache)
    lap("host: sysroot (Debian bookworm arm64)")
    wheels = wheels_mod.download_dependencies(cache)
    report.notes.append("wheels: " + ", ".join(w.name for w in wheels))
    lap("host: resolve/download aarch64 wheels")
    deps = wheels_mod.install_dependencies(cache, wheels)
    lap("host: install dependency wheels")
    with tempfile.TemporaryDirectory(prefix="edge-arm64-run-") as tmp:
        work = Path(tmp)
        published = published_case()
        if published is None:
            report.notes.append(f"SKIPPED published model: {SHARED} not found")
        trained = trainer_cases(work, report) + lite0_cases(cache, report)
        cases = ([published] if published else []) + trained
        case_args = [a for c in cases for a in ("--case", str(c.model), str(c.image))]
        run_case = cases[0] if cases else None
        lap("host: pick test images (x86 reference)")
        project = wheels_mod.install_project(wheels_mod.build_project_wheel(work / "dist", cache), work / "project")
        lap("host: build + install the project wheel")
        with Mosquitto(work / "mosquitto") as broker, Subscriber(broker, ["edge/#", "homeassistant/#"]) as sub:
            args = list(case_args)
            if run_case is not None:
                clip = make_clip(run_case.image, work / "clip.avi")
                config = write_config(work / "edge.toml", clip=clip, model=run_case.model, broker=broker)
                args += ["--config", str(config)]
            code = run_guest(root, [project, deps], args, report, cpu=CPU, run_until=_until(report, sub, frames))
            lap(f"guest ({CPU}): whole emulated process")
            time.sleep(0.3)
            report.messages = [(m.topic, m.payload.decode(errors="replace")) for m in sub.received()]
        report.check(code == 0, f"emulated process exited {code}: {report.guest_log.strip()[-1500:]}")
        check_import(report, deps, project)
        check_cases(report, cases)
        if run_case is not None:
            check_run(report, run_case, frames)
        if pi5 and CPU != "cortex-a76":
            five = Report()
            code = run_guest(root, [project, deps], case_args, five, cpu="cortex-a76")
            lap("guest (cortex-a76, Pi 5 core): import, info, classify")
            five.check(code == 0, f"emulated process exited {code}: {five.guest_log.strip()[-1500:]}")
            check_import(five, deps, project)
            check_cases(five, cases)
            report.failures += [f"Pi 5 core (cortex-a76): {f}" for f in five.failures]
            report.timings.update({f"{k} [cortex-a76]": v for k, v in five.timings.items() if "inference" in k})
    return report


def _until(report: Report, sub: Subscriber, frames: int):
    """When to stop the emulated daemon: after `frames` classification messages and one stats message."""
    topic = f"edge/{DEVICE_ID}/classification"

    def until(proc: subprocess.Popen, started: threading.Event) -> None:
        deadline = time.monotonic() + GUEST_TIMEOUT_S
        while not started.wait(1.0):
            if proc.poll() is not None:
                return
            if time.monotonic() > deadline:
                report.failures.append(f"the guest did not reach `edge-daemon run` within {GUEST_TIMEOUT_S} s")
                return
        t0 = time.monotonic()
        try:
            sub.wait_for_topic(topic, count=1, timeout=120)
            report.timings["guest: run start to first classification message"] = time.monotonic() - t0
            t1, n0 = time.monotonic(), len(sub.received(topic))
            sub.wait_for_topic(topic, count=n0 + frames, timeout=120)
            report.timings[f"guest: {frames} more frames classified and received"] = time.monotonic() - t1
            sub.wait_for_topic(f"edge/{DEVICE_ID}/stats", count=1, timeout=30)
        except TimeoutError as e:
            report.failures.append(f"MQTT: {e}")

    return until


def check_import(report: Report, deps: Path, project: Path) -> bool:
    """The guest imported the daemon on aarch64 / glibc 2.36 / Python 3.11 from the installed wheels."""
    imp = report.step("import")
    if not report.check(len(imp) == 1, "guest did not get through the imports"):
        return False
    imp = imp[0]
    report.timings["guest: import edge, numpy, cv2, ai_edge_litert"] = imp["seconds"]
    report.check(imp["machine"] == "aarch64", f"guest machine is {imp['machine']}, not aarch64")
    report.check(imp["libc"] == ["glibc", "2.36"], f"guest libc is {imp['libc']}, not glibc 2.36")
    report.check(imp["python"].startswith("3.11."), f"guest Python is {imp['python']}")
    for name, path in imp["modules"].items():
        where = project if name == "edge" else deps
        report.check(str(path).startswith(str(where)), f"{name} imported from {path}, not from {where}")
    return True


def check_cases(report: Report, cases: list[Case]) -> None:
    """`info` and `classify` succeeded for every case and gave the expected top-1."""
    infos, results = report.step("info"), report.step("classify")
    for case in cases:
        name = case.model.name
        info = [s for s in infos if s["model"] == str(case.model)]
        result = [s for s in results if s["model"] == str(case.model) and s["image"] == str(case.image)]
        if not report.check(bool(info) and info[0]["code"] == 0, f"edge-daemon info {name} failed"):
            continue
        report.timings[f"guest: edge-daemon info {name}"] = info[0]["seconds"]
        if not report.check(bool(result) and result[0]["code"] == 0, f"edge-daemon classify {name} failed"):
            continue
        preds = result[0]["predictions"]
        top = preds[0] if preds else {}
        report.check(
            top.get("label") == case.label and (case.index is None or top.get("index") == case.index),
            f"{name} on {case.image.name}: top-1 {top} instead of {case.label}",
        )
        report.timings[f"guest: edge-daemon classify {name}"] = result[0]["seconds"]
        report.timings[f"guest: inference {name} (ms)"] = result[0]["inference_ms"]


def check_run(report: Report, run_case: Case, frames: int) -> None:
    """`edge-daemon run` published the right labels, announced itself to Home Assistant, and stopped cleanly."""
    end = report.step("run-end")
    report.check(bool(end) and end[0]["code"] == 0, f"edge-daemon run did not return 0 after SIGTERM: {end}")
    by_topic: dict[str, list[str]] = {}
    for topic, payload in report.messages:
        by_topic.setdefault(topic, []).append(payload)
    base = f"edge/{DEVICE_ID}"
    payloads = [json.loads(p) for p in by_topic.get(f"{base}/classification", [])]
    payloads = [p for p in payloads if not p.get("stale")]  # the run's `start` message: nothing classified yet
    labels = [p["label"] for p in payloads]
    report.check(len(labels) >= frames, f"subscriber got {len(labels)} classification messages, expected >= {frames}")
    want, top = run_case.label, run_case.top
    if top == 1:
        report.check(set(labels) == {want}, f"classification labels {sorted(set(labels))} != {want}")
    else:
        best = [[t["label"] for t in p["top_k"][:top]] for p in payloads]
        report.check(all(want in b for b in best), f"{want} not in the top {top}: {best[:3]}")
    availability = by_topic.get(f"{base}/availability", [])
    report.check(availability[-1:] == ["offline"], f"availability did not end 'offline' after SIGTERM: {availability}")
    report.check(any(t.startswith("homeassistant/") for t in by_topic), "no Home Assistant discovery message received")
    report.check("MQTT: stopped" in report.guest_log, "the daemon's log does not show a clean MQTT stop")
    stats = [json.loads(p) for p in by_topic.get(f"{base}/stats", [])]
    if stats:
        report.notes.append(
            f"daemon stats under emulation: {stats[-1].get('fps_classified')} fps classified, "
            f"inference p50 {stats[-1].get('inference_ms_p50')} ms"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, help="cache directory (default: $EDGE_ARM64_CACHE or ~/.cache/...)")
    p.add_argument("--frames", type=int, default=5, help="frames the daemon must publish (default 5)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if qemu() is None:
        print("arm64: qemu-aarch64-static not found: apt-get install qemu-user-static", file=sys.stderr)
        return 2
    if not mosquitto_available():
        print("arm64: mosquitto not found: apt-get install mosquitto", file=sys.stderr)
        return 2
    try:
        report = run(args.cache, args.frames)
    except (sysroot_mod.SysrootError, wheels_mod.WheelError) as e:
        print(f"arm64: {e}", file=sys.stderr)
        return 2
    for name, value in report.timings.items():
        print(f"  {name:<60} {value:8.2f}")
    for note in report.notes:
        print(f"  {note}")
    for failure in report.failures:
        print(f"arm64: FAILED: {failure}", file=sys.stderr)
    print(f"arm64: {'FAILED' if report.failures else 'OK'} ({len(report.failures)} failed checks)")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
