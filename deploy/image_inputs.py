"""What `edge-deploy image` is given, checked before anything is built: each problem is one line naming it.

- `parse_size`: `4G`, `3584M`, `8GiB` -> bytes (whole MiB, at least `MIN_SIZE`);
- `check_hostname`: an RFC 1123 host name, also the daemon's MQTT device id;
- `check_public_key`: an OpenSSH public key file (never a private key): each line `type base64 [comment]` whose
  blob names the same type;
- `check_out`: the output may not exist yet (nor its `.tmp`), and may not be a mounted device;
- `check_model` / `check_config`: the model loads and runs; the config validates as the device will see it
  (`device_view`): its model paths under /var/lib/edge-daemon/models/ are the models the image will hold and its
  secrets (`password_file`, the TLS key) may come later, on the boot partition or from cloud-init.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import tempfile
import tomllib
from pathlib import Path

from edge.errors import EdgeError

MIB = 1 << 20
MIN_SIZE = 2048 * MIB  # the 512 MiB boot partition and a root file system with the daemon and room to spare
MODELS_DIR = "/var/lib/edge-daemon/models"
SECRET_KEYS = (("mqtt", "password_file"), ("mqtt", "tls", "key"), ("http", "token_file"))
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")  # fmt: skip
_HOST = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`--size` in bytes: a number with K/M/G/T (binary units), rounded down to whole MiB."""
    m = _SIZE.match(text)
    if not m:
        raise EdgeError(f"--size {text!r}: not a size; give e.g. 4G or 3584M")
    value = float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper())
    size = int(value) // MIB * MIB
    if size < MIN_SIZE:
        raise EdgeError(f"--size {text}: too small; the image needs at least {MIN_SIZE // MIB} MiB (give 2G or more)")
    return size


def check_hostname(name: str) -> str:
    if not _HOST.match(name) or name.isdigit():
        raise EdgeError(f"--hostname {name!r}: not a host name; use letters, digits and '-' (<= 63), e.g. edge-cam-01")
    return name


def check_public_key(path: str) -> str:
    """The key file's lines (public keys only), for root's authorized_keys."""
    text = _read_text(path, "--ssh-key", limit=64 * 1024)
    if "PRIVATE KEY" in text:
        raise EdgeError(f"--ssh-key {path}: this is a PRIVATE key; give the public one ({path}.pub), never the private")
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise EdgeError(f"--ssh-key {path}: no key in the file; give an OpenSSH public key (ssh-keygen makes KEY.pub)")
    for n, line in enumerate(keys, 1):
        if not _public_key_line(line):
            raise EdgeError(f"--ssh-key {path}: line {n} is not an OpenSSH public key ('ssh-ed25519 AAAA... comment')")
    return "\n".join(keys) + "\n"


def _public_key_line(line: str) -> bool:
    parts = line.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return False
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (n,) = struct.unpack(">I", blob[:4])
    except (binascii.Error, struct.error):
        return False
    return blob[4 : 4 + n].decode("ascii", "replace") == parts[0] and len(blob) > 4 + n


def _mounted_devices() -> set[str]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return set()
    return {os.path.realpath(line.split()[0]) for line in lines if line.startswith("/dev/")}


def check_out(path: str, suffix: str = "") -> Path:
    """The file the image goes to (`path` + `suffix`): new, in an existing directory, not a mounted device."""
    out = Path(path + suffix)
    real = os.path.realpath(out)
    if Path(real).is_block_device() or real.startswith("/dev/"):
        mounted = [d for d in _mounted_devices() if d == real or d.startswith(real)]
        if mounted:
            raise EdgeError(
                f"--out {path}: {real} is a device with mounted file systems ({', '.join(sorted(mounted))})"
                "; never write an image over a disk in use"
            )
        raise EdgeError(f"--out {path}: a device; build a file and flash it (Raspberry Pi Imager or dd)")
    if out.exists() or out.is_symlink():
        raise EdgeError(f"--out {out}: already exists; remove it or give another name (nothing was overwritten)")
    if not out.parent.is_dir():
        raise EdgeError(f"--out {out}: no directory {out.parent}; create it first")
    if not os.access(out.parent, os.W_OK):
        raise EdgeError(f"--out {out}: cannot write in {out.parent}")
    return out


def _read_text(path: str, what: str, limit: int) -> str:
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"{what} {path}: no such file")
    try:
        data = p.read_bytes()[: limit + 1]
        if len(data) > limit:
            raise EdgeError(f"{what} {path}: over {limit // 1024} kB; give the right file")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EdgeError(f"{what} {path}: not a text file; give the right file") from None
    except OSError as e:
        raise EdgeError(f"{what} {path}: cannot read it ({e.strerror})") from None


def check_model(path: str) -> Path:
    """The model loads and runs (as the daemon would load it); the error names the file."""
    from edge.inference.model import load_model

    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"--model {path}: no such file")
    try:
        clf = load_model(str(p), threads=1)
        try:
            clf.warm_up()
        finally:
            clf.close()
    except EdgeError as e:
        raise EdgeError(f"--model {path}: {e}") from None
    return p


def device_view(data: dict, models: dict[str, Path], creds: Path) -> dict:
    """The config data with its model paths mapped to the files the image will hold (EdgeError for any other
    path under /var/lib/edge-daemon/models), and placeholder files in `creds` for secrets given by name."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}

    def mapped(path: object, key: str) -> object:
        if isinstance(path, str) and path.startswith(MODELS_DIR + "/"):
            name = path.removeprefix(MODELS_DIR + "/")
            if name not in models:
                raise EdgeError(f"{key} = {path!r}: the image holds only {', '.join(sorted(models))} in {MODELS_DIR}; "
                                f"give --model {name} or fix the path")  # fmt: skip
            return str(models[name])
        return path

    if isinstance(data.get("model"), dict) and "path" in data["model"]:
        data["model"]["path"] = mapped(data["model"]["path"], "model.path")
    regions = data.get("regions")
    if isinstance(regions, list):
        data["regions"] = [{**r, "model": mapped(r["model"], "regions.model")} if isinstance(r, dict) and "model" in r
                           else r for r in regions]  # fmt: skip
    for keys in SECRET_KEYS:
        table = data
        for k in keys[:-1]:
            table = table.get(k) if isinstance(table, dict) else None
        name = table.get(keys[-1]) if isinstance(table, dict) else None
        if isinstance(name, str) and name and not name.startswith("/") and "/" not in name:
            (creds / name).write_text("placeholder-secret\n")
    return data


def check_config(path: str, models: dict[str, Path]) -> bytes:
    """The config file's bytes once it validates as on the device (schema, rules, its models loaded and run)."""
    from edge.config.load import config_from_dict
    from edge.service.models import model_keys, open_model

    text = _read_text(path, "--config", limit=1 << 20)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EdgeError(f"--config {path}: not valid TOML ({e}); fix the syntax") from None
    with tempfile.TemporaryDirectory(prefix="edge-image-config-") as tmp:
        creds = Path(tmp)
        try:
            view = device_view(data, models, creds)
            cfg = config_from_dict(view, base=Path("/etc/edge-daemon"), environ={"CREDENTIALS_DIRECTORY": str(creds)},
                                   source=f"--config {path}")  # fmt: skip
            for key in model_keys(cfg):
                open_model(cfg, key).close()
        except EdgeError as e:
            msg = str(e)
            raise EdgeError(msg if msg.startswith("--config") else f"--config {path}: {msg}") from None
    return text.encode()
