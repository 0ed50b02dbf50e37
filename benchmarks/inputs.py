"""What the suite measures on: the small and large models, the 640x480 clip, and the machine itself.

Models: the large one is Coral's published MobileNet v2 1.0/224 int8 (`../shared/data/coral/`); the small one is
MobileNetV2 0.35/96 int8 cached under `.cache/benchmarks/` (git-ignored; made by `python -m benchmarks.small_model`,
from an `edge-train` model or as the same Keras graph), with Coral's MobileNet v1 0.25/128 as a stand-in (said
so in the output) while it is absent. The clip is an MJPG AVI made from the published test photographs with a slow
pan so that every frame differs (a synthetic pattern when the photographs are absent; also said so).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / ".cache" / "benchmarks"
LARGE = DATA / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
STAND_IN = DATA / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
SMALL = CACHE / "mobilenet_v2_0.35_96_int8.tflite"
DEMO = REPO / "edge" / "assets" / "demo_model.tflite"  # trainer-made, committed: smoke runs need nothing else
PHOTOS = ("cat.bmp", "bird.bmp", "parrot.jpg", "grace_hopper.bmp", "owl.jpg", "sunflower.bmp", "hot_dog.jpg")
WIDTH, HEIGHT, CLIP_FPS = 640, 480, 30
# "As fast as it goes" clips: the daemon reads them with `camera.realtime = false` (one frame ahead of the
# classifier); the naive loop reads them flat out. The 999 fps header only marks the file as unpaced.
UNPACED_FPS = 999


def models(small: str | None = None, large: str | None = None, smoke: bool = False) -> list[dict[str, str]]:
    """The models to measure as [{"role", "path", "note"}], skipping any that cannot be found.

    `smoke` prefers the bundled demo model as the small one, so CI needs neither the cache nor shared data.
    """
    out = []
    if small:
        out.append({"role": "small", "path": small, "note": "given with --small"})
    elif smoke and DEMO.exists():
        out.append({"role": "small", "path": str(DEMO), "note": "smoke: the bundled demo model (edge/assets)"})
    elif SMALL.exists():
        origin = SMALL.parent / "small_model_origin.txt"
        made = origin.read_text().strip() if origin.exists() else "origin unknown"
        out.append({"role": "small", "path": str(SMALL), "note": f"MobileNetV2 0.35/96 int8 ({made})"})
    elif STAND_IN.exists():
        note = "STAND-IN: coral mobilenet_v1_0.25_128 (python -m benchmarks.small_model makes MobileNetV2 0.35/96)"
        out.append({"role": "small", "path": str(STAND_IN), "note": note})
    if large or LARGE.exists():
        out.append({"role": "large", "path": large or str(LARGE), "note": "coral mobilenet_v2_1.0_224_quant"})
    return out


def _photos() -> list[np.ndarray]:
    images = []
    for name in PHOTOS:
        path = DATA / "coral" / name
        img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.exists() else None
        if img is not None:
            images.append(img)
    return images


def _synthetic(i: int) -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    r = ((x + 3 * i) % 256).astype(np.uint8)
    g = ((y + 2 * i) % 256).astype(np.uint8)
    b = ((x ^ y) + i).astype(np.uint8)
    return np.dstack([b, g, r])


def make_clip(
    path: Path, seconds: float, fps: int = UNPACED_FPS, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> dict[str, Any]:
    """Write a MJPG clip (640x480 by default) of `seconds` of 30 fps footage whose header says `fps` (kept when
    it exists)."""
    width, height = size
    frames = max(2, int(seconds * CLIP_FPS))
    photos = _photos()
    source = "coral test photographs, panned" if photos else "SYNTHETIC pattern (../shared/data absent)"
    info = {"path": str(path), "frames": frames, "fps": fps, "size": f"{width}x{height}", "source": source}
    cap = cv2.VideoCapture(str(path)) if path.exists() else None
    if cap is not None:
        n, header_fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), round(cap.get(cv2.CAP_PROP_FPS))
        cap.release()
        if n == frames and header_fps == fps:
            return info
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write MJPG AVI files")
    per_photo = 2 * CLIP_FPS
    big = [cv2.resize(p, (width * 5 // 4, height * 5 // 4), interpolation=cv2.INTER_CUBIC) for p in photos]
    for i in range(frames):
        if big:
            img = big[(i // per_photo) % len(big)]
            dx = (i % per_photo) * (img.shape[1] - width) // per_photo
            frame = np.ascontiguousarray(img[(img.shape[0] - height) // 2 :][:height, dx : dx + width])
        else:
            frame = cv2.resize(_synthetic(i), (width, height))
        writer.write(frame)
    writer.release()
    return info


def decode_ms(path: Path, limit: int = 300) -> float:
    """Mean milliseconds OpenCV takes to read (decode) one frame of the clip."""
    cap = cv2.VideoCapture(str(path))
    n, t0 = 0, time.perf_counter()
    while n < limit:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    elapsed = time.perf_counter() - t0
    cap.release()
    return elapsed * 1000.0 / max(n, 1)


def reduced_decode_ms(path: Path, need: tuple[int, int], limit: int = 200) -> tuple[float, int]:
    """(mean ms, factor): decoding the clip's frames from their raw JPEG packets at the reduced size the daemon
    uses for a model input of `need` (w, h); the ideal's decode."""
    from edge.frames.decode import decode_jpeg, frame_size, reduction

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_FORMAT, -1)
    packets = []
    while len(packets) < limit:
        ok, raw = cap.read()
        if not ok:
            break
        packets.append(raw.reshape(-1).copy())
    cap.release()
    factor = reduction(frame_size(packets[0]), need)
    t0 = time.perf_counter()
    for p in packets:
        decode_jpeg(p, factor)
    return (time.perf_counter() - t0) * 1000.0 / len(packets), factor


def export_revision(rev: str) -> Path:
    """The daemon as it was at git revision `rev`, exported (once) under .cache/benchmarks/before-SHA."""
    sha = subprocess.run(["git", "rev-parse", "--short=12", rev], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    out = CACHE / f"before-{sha}"
    if not (out / "edge" / "__init__.py").exists():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "edge"], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def resize_ms(size: tuple[int, int], repeats: int = 200) -> float:
    """Mean milliseconds of the preprocessing a 640x480 frame needs for a model input of `size` (w, h)."""
    from edge.inference.preprocess import InputFormat, preprocess

    fmt = InputFormat((1, size[1], size[0], 3), size[1], size[0], 3, np.uint8, 1 / 128, 128)
    frame = _synthetic(1)
    t0 = time.perf_counter()
    for _ in range(repeats):
        preprocess(frame, fmt)
    return (time.perf_counter() - t0) * 1000.0 / repeats


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine and software the figures were taken on."""
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=5).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        mosq = "absent"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "memory_mb": mem_kb // 1024,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "ai-edge-litert": _version("ai-edge-litert"),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "paho-mqtt": _version("paho-mqtt"),
        "mosquitto": mosq,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
