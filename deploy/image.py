"""`edge-deploy image`: a flashable Raspberry Pi disk image (Pi 3, 4, 5, Zero 2 W; 64-bit) with the daemon inside.

    edge-deploy image --out edge.img [--suite trixie|bookworm] [--config config.toml] [--model model.tflite]
                      [--hostname H] [--ssh-key KEY.pub] [--size 4G] [--xz] [--cache DIR]

Every input is checked first (`deploy.image_inputs`: one line naming it, exit 2, nothing written); then the
cached layers (`deploy.image_root`) are built or reused, the inputs applied to a copy of the root, and the disk
assembled (`deploy.image_disk`) under `<out>.tmp`, renamed to `<out>` at the end, with `<out>.manifest.json`
(`deploy.image_manifest`) beside it. Secrets are never put in the image: give them later by cloud-init
user-data on the boot partition or `edge-deploy release`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import tempfile
import time
from pathlib import Path

from deploy import image_cache, image_disk, image_inputs, image_manifest, image_root

log = logging.getLogger("edge-deploy.image")
DEMO_MODEL = image_root.REPO / "edge" / "assets" / "demo_model.tflite"


def add_image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, help="the image file to write (must not exist)")
    p.add_argument("--suite", choices=sorted(image_root.PYTHON), default="trixie",
                   help="Debian release: trixie (Python 3.13, default) or bookworm (Python 3.11)")  # fmt: skip
    p.add_argument("--config", help="the daemon's config.toml to bake in (validated as the device will read it)")
    p.add_argument("--model", help="a .tflite model to bake in (/var/lib/edge-daemon/models/NAME)")
    p.add_argument("--hostname", default="edge-pi", help="the device's host name (default edge-pi)")
    p.add_argument("--ssh-key", help="an OpenSSH public key file for root's authorized_keys")
    p.add_argument("--size", default="4G", help="image size, e.g. 4G (at least 2G; the root grows at first boot)")
    p.add_argument("--xz", action="store_true", help="also compress: write OUT.xz (what Raspberry Pi Imager reads)")
    p.add_argument("--cache", help="cache of built layers (default $EDGE_IMAGE_CACHE or ~/.cache/edge-daemon/image)")


def checked_inputs(args: argparse.Namespace) -> tuple[Path, int, image_disk.Inputs]:
    """Every input checked (EdgeError, one line, on the first problem) before anything is built."""
    size = image_inputs.parse_size(args.size)
    out = image_inputs.check_out(args.out)
    if args.xz:
        image_inputs.check_out(args.out, ".xz")
    inp = image_disk.Inputs(hostname=image_inputs.check_hostname(args.hostname))
    if args.ssh_key:
        inp.ssh_keys = image_inputs.check_public_key(args.ssh_key)
    models = {DEMO_MODEL.name: DEMO_MODEL}
    if args.model:
        inp.model = image_inputs.check_model(args.model).resolve()
        models[inp.model.name] = inp.model
    if args.config:
        inp.config = image_inputs.check_config(args.config, models)
    return out, size, inp


def _os_release(root: Path) -> str:
    for line in (root / "etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return "?"


def build(args: argparse.Namespace, out: Path, size: int, inp: image_disk.Inputs) -> dict:
    """The image at `out` (+ `.xz`) and its manifest; returns the manifest."""
    cache = image_cache.cache_root(args.cache)
    layer = image_root.system(cache, args.suite)
    tmp_out = Path(f"{out}.tmp")
    work = Path(tempfile.mkdtemp(prefix="work-", dir=cache))
    try:
        t0 = time.monotonic()
        root = work / "root"
        image_root.run(["cp", "-a", layer / "root", root], "copying the system layer")
        key = image_cache.key(layer.name, inp.hostname, inp.ssh_keys, inp.config,
                              inp.model and image_cache.file_sha256(inp.model))  # fmt: skip
        image_disk.customise(root, inp, instance=f"{inp.hostname}-{key}")
        kernel = sorted(p.name for p in (root / "usr/lib/modules").iterdir())[-1]
        info = {"suite": args.suite, "os": _os_release(root), "kernel": kernel, "python": image_root.PYTHON[args.suite],
                "hostname": inp.hostname, "layer": layer.name, "inputs_key": key,
                "config_sha256": inp.config and hashlib.sha256(inp.config).hexdigest(),
                "model": inp.model and {"file": inp.model.name, "sha256": image_cache.file_sha256(inp.model)},
                "ssh_keys": len(inp.ssh_keys.splitlines())}  # fmt: skip
        tmp_out.unlink(missing_ok=True)
        image_disk.assemble(root, work, tmp_out, size)
        manifest = image_manifest.write(Path(f"{out}.manifest.json"), tmp_out, out.name, info, layer)
        if args.xz:
            image_root.run(["xz", "-T2", "-3", "-k", "-f", tmp_out], "xz", timeout=3600)
            Path(f"{tmp_out}.xz").rename(f"{out}.xz")
        tmp_out.rename(out)
        manifest["assembly_s"] = round(time.monotonic() - t0, 1)
        return manifest
    except BaseException:
        tmp_out.unlink(missing_ok=True)
        Path(f"{tmp_out}.xz").unlink(missing_ok=True)
        Path(f"{out}.manifest.json").unlink(missing_ok=True)
        raise
    finally:
        image_cache.unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def run_image(args: argparse.Namespace) -> int:
    """`edge-deploy image`."""
    t0 = time.monotonic()
    out, size, inp = checked_inputs(args)
    image_root.check_host()
    m = build(args, out, size, inp)
    wheel = next((w["file"] for w in m["wheels"] if w["file"].startswith("edge_daemon-")), "?")
    print(f"{out}: {size >> 20} MiB, {m['os']}, kernel {m['kernel']}, Python {m['python']}, {wheel}")
    print(f"{out}.manifest.json: {len(m['packages'])} packages, {len(m['wheels'])} wheels, sha256 {m['sha256'][:16]}…"
          f" ({time.monotonic() - t0:.0f} s)")  # fmt: skip
    if args.xz:
        xz = Path(f"{out}.xz").stat().st_size >> 20
        print(f"{out}.xz: {xz} MiB (flash it with Raspberry Pi Imager, or xzcat | dd)")
    return 0


def build_parser_for_tests() -> argparse.ArgumentParser:
    """`edge-deploy image`'s arguments alone (the tests check inputs without the whole CLI)."""
    p = argparse.ArgumentParser(prog="edge-deploy image")
    add_image_args(p)
    return p
