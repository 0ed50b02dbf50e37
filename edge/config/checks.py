"""Checks of a whole configuration that one field's type and range cannot express (the config layer's rules).

`edge.config.load` applies `check_text` to every string as it builds the sections and `cross_checks` to the
built `Config`, so `edge-daemon check-config` refuses everything `edge-daemon run` would: an unknown device,
a camera source that cannot exist, MQTT names the protocol or the broker would refuse, TLS files that do not load.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from edge.config.devices import parse_device
from edge.config.listen import parse_listen
from edge.config.schema import MQTT_STRING_BYTES, Config, Secret
from edge.config.source_commands import command_for
from edge.config.tls import ssl_context
from edge.config.urls import is_url
from edge.errors import EdgeError

_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")
TOKEN_MIN_CHARS, TOKEN_MAX_BYTES = 16, 4096
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: fits an HTTP header and a URL query as it is


def check_text(value: str, key: str, mqtt: str | None) -> None:
    """One string's rules: no NUL anywhere; for MQTT names (`mqtt` = prefix, level, string) MQTT's own limits.

    A topic prefix has no wildcards (`+`, `#`), no empty level, no leading `/` and no leading `$` (brokers
    reserve `$SYS`...: they drop what a client publishes there, silently); a topic level is one level.
    """
    if "\x00" in value:
        raise EdgeError(f"{key}: contains a NUL character; remove it")
    if mqtt is None:
        return
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MQTT_STRING_BYTES:
        raise EdgeError(f"{key}: {size} bytes long; MQTT allows at most {MQTT_STRING_BYTES} (UTF-8): shorten it")
    if mqtt == "prefix":
        levels = value.split("/")
        if any(c in value for c in "+#") or "" in levels:
            raise EdgeError(
                f'{key}: {value!r} may not contain + or #, start or end with / or have an empty level; e.g. "edge"'
            )
        if value.startswith("$"):
            raise EdgeError(f"{key}: {value!r} starts with $, which brokers reserve ($SYS); choose another name")
    elif mqtt == "level" and not _TOPIC_LEVEL.match(value):
        raise EdgeError(f"{key}: {value!r} may only contain letters, digits, '_', '-', '.'")


def default_device_id() -> str:
    """The host name, cut at the first dot, with characters MQTT topics cannot take replaced."""
    name = socket.gethostname().split(".")[0] or "edge"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]


def command_source(src: str) -> str:
    """A `csi:N` or `exec:COMMAND` source checked: the command can be built and its program exists."""
    try:
        argv = command_for(src)
    except ValueError as e:
        raise EdgeError(f"camera.source: {e}") from None
    if src.startswith("exec:") and shutil.which(argv[0]) is None:
        raise EdgeError(f"camera.source: exec: {argv[0]!r} is not an executable on PATH; give its full path")
    return src


def camera_source(source: str, base: Path) -> str:
    """The source as the camera will open it: a V4L2 index or device, a URL, a `csi:`/`exec:` command, or an
    existing file (made absolute)."""
    src = source.strip()
    if src.isdigit() or src.startswith("/dev/") or is_url(src):
        return src
    if src.startswith(("csi:", "exec:")):
        return command_source(src)
    p = Path(src).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise EdgeError(
            f"camera.source: {p} is not a file; give a V4L2 index, /dev/videoN, an rtsp:// or http:// URL, "
            "csi:N, exec:COMMAND or an existing video file"
        )
    return str(p)


def cross_checks(cfg: Config, base: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Rules between fields, and values resolved once (camera source path, device id); returns the new Config."""
    cam, m, tls = cfg.camera, cfg.mqtt, cfg.mqtt.tls
    cam = dataclasses.replace(cam, source=camera_source(cam.source, base))
    if cam.reconnect_min_s > cam.reconnect_max_s:
        raise EdgeError("camera.reconnect_min_s: larger than camera.reconnect_max_s; make it smaller or equal")
    if (cam.width == 0) != (cam.height == 0):
        raise EdgeError("camera.width/height: give both or neither (0 = the camera's default)")
    try:
        parse_device(cfg.model.device)
    except EdgeError as e:
        raise EdgeError(f"model.{e}") from None
    if not tls.enabled and (tls.ca or tls.cert or tls.key or tls.insecure):
        raise EdgeError("mqtt.tls: ca/cert/key/insecure are set but mqtt.tls.enabled is false; set enabled = true")
    if bool(tls.cert) != bool(tls.key):
        raise EdgeError("mqtt.tls.cert/key: a client certificate needs both cert and key; give both or neither")
    if tls.enabled:
        ssl_context(tls)  # the files load, belong together and need no passphrase
    if m.password_file and not m.username:
        raise EdgeError("mqtt.password_file: set, but mqtt.username is not; give the user name too")
    check_regions(cfg)
    collect = dataclasses.replace(cfg.collect, dir=collect_dir(cfg.collect.dir, base, environ or {}))
    device_id = m.device_id or default_device_id()
    check_text(device_id, "mqtt.device_id", "level")
    client_id = m.client_id or f"edge-daemon-{device_id}"
    check_text(client_id, "mqtt.client_id", "string")
    cfg = check_http(cfg)
    return dataclasses.replace(cfg, camera=cam, collect=collect,
                               mqtt=dataclasses.replace(m, device_id=device_id, client_id=client_id))  # fmt: skip


def check_http(cfg: Config) -> Config:
    """`[http]`: a valid address; a token whenever other machines can connect; the token read into `http_token`."""
    h = cfg.http
    if h.listen is None:
        if h.token_file:
            raise EdgeError('http.token_file: set, but http.listen is not; set listen (e.g. "127.0.0.1:8080")')
        return cfg
    where = parse_listen(h.listen)
    if not where.loopback and not h.token_file:
        raise EdgeError(
            f"http.listen: {where.host} lets other machines connect, so http.token_file is required; set it "
            "(a file holding e.g. `openssl rand -hex 32`) or listen on 127.0.0.1"
        )
    return dataclasses.replace(cfg, http_token=read_token(h.token_file) if h.token_file else None)


def read_token(path: str, key: str = "http.token_file") -> Secret:
    """The access token from its file (trailing newline removed): 16 to 4096 visible ASCII characters."""
    try:
        with open(path, "rb") as f:
            data = f.read(TOKEN_MAX_BYTES + 2)
    except OSError as e:
        raise EdgeError(f"{key}: cannot read {path} ({e.__class__.__name__}); fix the file") from None
    text = data.rstrip(b"\r\n").decode("ascii", "replace")
    if len(text) > TOKEN_MAX_BYTES:
        raise EdgeError(f"{key}: {path} is over {TOKEN_MAX_BYTES} bytes; it should hold only the token")
    if len(text) < TOKEN_MIN_CHARS or not _TOKEN.match(text):
        raise EdgeError(
            f"{key}: {path} must hold one token of at least {TOKEN_MIN_CHARS} visible ASCII characters (no spaces); "
            "make one with `openssl rand -hex 32`"
        )
    return Secret(text, path)


def check_password(text: str, key: str) -> None:
    """The password read from its file: not empty, no NUL, within MQTT's string limit."""
    if not text:
        raise EdgeError(f"{key}: the file is empty; write the password in it")
    check_text(text, key, "string")


def check_regions(cfg: Config) -> None:
    """`[[regions]]`: names unique, boxes inside the frame (fractions, or pixels of a known frame size)."""
    seen: set[str] = set()
    cam = cfg.camera
    for r in cfg.regions:
        key = f"regions.{r.name}"
        if r.name in seen:
            raise EdgeError(f"{key}: two regions have this name; give each its own (it is its topic level)")
        seen.add(r.name)
        x, y, w, h = r.box
        if max(r.box) <= 1:  # fractions of the frame
            if w <= 0 or h <= 0 or x + w > 1 or y + h > 1:
                raise EdgeError(f"{key}.box: {list(r.box)} is not inside the frame; fractions need w, h > 0, "
                                "x + w <= 1 and y + h <= 1")  # fmt: skip
            continue
        if any(v != int(v) for v in r.box):
            raise EdgeError(f"{key}.box: {list(r.box)} mixes fractions and pixels; give whole pixels or all <= 1")
        if not (cam.width and cam.height):
            raise EdgeError(f"{key}.box: pixels need the frame size: set camera.width/height, or give fractions")
        if w < 1 or h < 1 or x + w > cam.width or y + h > cam.height:
            raise EdgeError(f"{key}.box: {[int(v) for v in r.box]} is not inside the {cam.width}x{cam.height} frame "
                            "(camera.width/height); x + w and y + h must fit")  # fmt: skip


def collect_dir(value: str | None, base: Path, environ: Mapping[str, str]) -> str:
    """`[collect] dir` made absolute: relative to the config file; default `collected` in the state directory
    (`$STATE_DIRECTORY`, which systemd sets from `StateDirectory=`, else /var/lib/edge-daemon)."""
    if value is None:
        state = environ.get("STATE_DIRECTORY", "").split(":")[0] or "/var/lib/edge-daemon"
        return str(Path(state) / "collected")
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)
