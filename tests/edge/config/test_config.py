"""Config loading: schema errors as one line with key path and fix, env overrides, secrets, check-config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge.config.docs import example_toml, reference_markdown, to_toml
from edge.config.load import config_from_dict, load_config
from edge.config.urls import redact_url
from edge.errors import EdgeError
from tests.edge.conftest import CLI, REPO, write_config


@pytest.fixture
def model(demo_model: Path) -> str:
    return str(demo_model)


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"camera": {"sorce": "0"}}, "camera.sorce: unknown key; did you mean 'source'?"),
        ({"cam": {}}, "cam: unknown key; did you mean 'camera'?"),
        ({"mqtt": {"port": "1883"}}, "mqtt.port: expected an integer, got '1883'; write e.g. port = 1883"),
        ({"mqtt": {"port": 70000}}, "mqtt.port: 70000 is too large; use 1 to 65535"),
        ({"mqtt": {"qos": 3}}, "mqtt.qos: 3 is not one of 0, 1, 2"),
        ({"mqtt": {"tls": True}}, "mqtt.tls: expected a table [mqtt.tls]"),
        ({"mqtt.tls": {"ca": "ca.pem"}}, "mqtt.tls.ca: cannot read file"),
        ({"mqtt": {"password_file": "pw"}}, "mqtt.password_file: cannot read file"),
        ({"mqtt": {"device_id": "a/b"}}, "mqtt.device_id: 'a/b' may only contain"),
        ({"mqtt": {"topic_prefix": "edge/#"}}, "mqtt.topic_prefix: 'edge/#' may not contain"),
        ({"model": {"threads": 0}}, "model.threads: 0 is too small; use 1 to 64"),
        ({"model": {"threshold": 1.5}}, "model.threshold: 1.5 is too large"),
        ({"model": {"watch": "yes"}}, "model.watch: expected true or false, got 'yes'"),
        ({"model": {"path": "missing.tflite"}}, "model.path: cannot read file"),
        ({"smoothing": {"mode": "median"}}, "smoothing.mode: 'median' is not one of"),
        ({"camera": {"source": "nothere.avi"}}, "camera.source: "),
        ({"camera": {"width": 640}}, "camera.width/height: give both or neither"),
        ({"camera": {"reconnect_min_s": 60.0}}, "camera.reconnect_min_s: larger than"),
        ({"homeassistant": {"prefix": ""}}, "homeassistant.prefix: must not be empty"),
        ({"mqtt": {"topic_prefix": ""}}, "mqtt.topic_prefix: must not be empty"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, model: str, sections, expected) -> None:
    sections = {"model": {"path": model}, **sections} if "model" not in sections else sections
    if "path" not in sections.get("model", {"path": 1}):
        sections["model"] = {"path": model, **sections["model"]}
    cfg = write_config(tmp_path / "c.toml", sections)
    with pytest.raises(EdgeError) as e:
        load_config(cfg, environ={})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cfg}: ")
    assert expected in msg


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nhost = 1")
    with pytest.raises(EdgeError, match=r"bad.toml: not valid TOML .*fix the syntax"):
        load_config(bad, environ={})
    with pytest.raises(EdgeError, match="config file not found"):
        load_config(tmp_path / "none.toml", environ={})


def test_defaults_relative_paths_and_int_source(tmp_path: Path, model: str, fm_clip: Path) -> None:
    (tmp_path / "clip.avi").write_bytes(fm_clip.read_bytes())
    cfg = load_config(write_config(tmp_path / "c.toml", {"camera": {"source": "clip.avi"}, "model": {"path": model}}))
    assert cfg.camera.source == str(tmp_path / "clip.avi")
    assert cfg.mqtt.port == 1883 and cfg.mqtt.topic_prefix == "edge" and cfg.mqtt.device_id  # hostname
    assert cfg.smoothing.mode == "stable"
    cfg = load_config(write_config(tmp_path / "d.toml", {"camera": {"source": 2}, "model": {"path": model}}))
    assert cfg.camera.source == "2"


def test_environment_overrides(tmp_path: Path, model: str) -> None:
    cfg_file = write_config(tmp_path / "c.toml", {"model": {"path": model}, "mqtt": {"host": "file-host"}})
    env = {
        "EDGE_MQTT__HOST": "env-host",
        "EDGE_MQTT__PORT": "8883",
        "EDGE_MQTT__TLS__ENABLED": "true",
        "EDGE_MQTT__USERNAME": "",  # empty = unset for optional fields
        "EDGE_CAMERA__MAX_RATE": "2.5",
        "EDGE_LOG_LEVEL": "DEBUG",  # no "__": not a config override
    }
    cfg = load_config(cfg_file, environ=env)
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls.enabled, cfg.camera.max_rate) == ("env-host", 8883, True, 2.5)
    with pytest.raises(EdgeError, match=r"EDGE_MQTT__PORT: expected an integer, got 'x'; fix the environment"):
        load_config(cfg_file, environ={"EDGE_MQTT__PORT": "x"})
    with pytest.raises(EdgeError, match=r"mqtt.hots \(from EDGE_MQTT__HOTS\): unknown key; did you mean 'host'"):
        load_config(cfg_file, environ={"EDGE_MQTT__HOTS": "x"})
    with pytest.raises(EdgeError, match=r"EDGE_MQTT__TLS: mqtt.tls is not a single setting"):
        load_config(cfg_file, environ={"EDGE_MQTT__TLS": "x"})


def test_secret_from_credentials_directory_never_shown(tmp_path: Path, model: str) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cr3t-pa55\n")
    cfg_file = write_config(
        tmp_path / "c.toml",
        {"model": {"path": model}, "mqtt": {"username": "edge", "password_file": "mqtt-password"}},
    )
    with pytest.raises(EdgeError, match=r"mqtt.password_file: cannot read file .*looked in \$CREDENTIALS_DIRECTORY"):
        load_config(cfg_file, environ={})
    cfg = load_config(cfg_file, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.mqtt.password_file == str(creds / "mqtt-password")
    assert cfg.password is not None and cfg.password.reveal() == "s3cr3t-pa55"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in to_toml(cfg)
    (creds / "mqtt-password").write_text("")
    with pytest.raises(EdgeError, match="the file is empty; write the password in it"):
        load_config(cfg_file, environ={"CREDENTIALS_DIRECTORY": str(creds)})


def _encrypted_copy(key: Path, out: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    k = serialization.load_pem_private_key(key.read_bytes(), password=None)
    out.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(b"passphrase")))  # fmt: skip
    return out


def test_tls_rules(tmp_path: Path, model: str) -> None:
    from tests.support.mosquitto import make_tls_files

    f = make_tls_files(tmp_path / "pki")
    (tmp_path / "junk.pem").write_text("x")
    base = {"model": {"path": model}}

    def load(tls: dict) -> object:
        return config_from_dict({**base, "mqtt": {"tls": tls}}, base=tmp_path, environ={})

    with pytest.raises(EdgeError, match=r"ca/cert/key/insecure are set but mqtt.tls.enabled is false"):
        load({"ca": str(f.ca)})
    with pytest.raises(EdgeError, match="needs both cert and key"):
        load({"enabled": True, "cert": str(f.client_cert)})
    with pytest.raises(EdgeError, match=r"^mqtt\.tls\.ca: .*junk.pem is not a readable PEM CA certificate"):
        load({"enabled": True, "ca": "junk.pem"})
    with pytest.raises(EdgeError, match=r"^mqtt\.tls\.cert/key: the key .*server.key does not belong to"):
        load({"enabled": True, "ca": str(f.ca), "cert": str(f.client_cert), "key": str(f.server_key)})
    encrypted = _encrypted_copy(f.client_key, tmp_path / "encrypted.key")
    with pytest.raises(EdgeError, match=r"^mqtt\.tls\.key: .*encrypted.key is protected by a passphrase"):
        load({"enabled": True, "ca": str(f.ca), "cert": str(f.client_cert), "key": str(encrypted)})
    cfg = load({"enabled": True, "ca": str(f.ca), "cert": str(f.client_cert), "key": str(f.client_key)})
    assert cfg.mqtt.tls.enabled and cfg.mqtt.tls.ca == str(f.ca)
    assert cfg.mqtt.client_id == f"edge-daemon-{cfg.mqtt.device_id}"  # resolved once, by the config layer


def test_check_config_cli(tmp_path: Path, model: str) -> None:
    (tmp_path / "pw").write_text("hunter2")
    good = write_config(
        tmp_path / "c.toml", {"model": {"path": model}, "mqtt": {"username": "u", "password_file": "pw"}}
    )
    r = subprocess.run([*CLI, "check-config", str(good)], capture_output=True, text=True,
                       cwd=REPO, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert 'username = "u"' in r.stdout and f'password_file = "{tmp_path / "pw"}"' in r.stdout
    assert "hunter2" not in r.stdout + r.stderr
    bad = write_config(tmp_path / "b.toml", {"model": {"path": model}, "mqtt": {"prot": 1}})
    r = subprocess.run([*CLI, "check-config", str(bad)], capture_output=True, text=True,
                       cwd=REPO, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"edge-daemon: error: {bad}: mqtt.prot: unknown key; did you mean 'port'? valid keys here: host, port, "
        "username, password_file, client_id, qos, keepalive, topic_prefix, device_id, queue_size, label_topic, tls"
    ]


def test_default_config_file_is_the_schema_and_loads(model: str) -> None:
    committed = REPO / "edge" / "config" / "default-config.toml"
    regenerate = "regenerate: python -m edge.config.docs > edge/config/default-config.toml"
    assert committed.read_text() == example_toml(), regenerate
    r = subprocess.run([*CLI, "check-config", "--defaults"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and r.stdout == example_toml()
    cfg = load_config(committed, environ={"EDGE_MODEL__PATH": model})
    assert cfg == config_from_dict({"model": {"path": model}}, environ={}, source=str(committed))


def test_configuration_page_reference_is_generated_from_the_schema() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    begin, end = "<!-- BEGIN reference -->\n", "<!-- END reference -->"
    assert begin in page and end in page, f"docs/configuration.md lost its {begin.strip()} / {end} marks"
    committed = page[page.index(begin) + len(begin) : page.index(end)]
    assert committed == reference_markdown(), (
        "docs/configuration.md's reference is stale: put the output of `python -m edge.config.docs --reference` "
        "between its BEGIN reference and END reference marks"
    )


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.2:554/live", "rtsp://admin:***@10.0.0.2:554/live"),
        ("http://u:p@cam/stream.mjpg", "http://u:***@cam/stream.mjpg"),
        ("rtsp://cam/live", "rtsp://cam/live"),
        ("http://user@cam/x", "http://***@cam/x"),  # a lone user info may be a token
        ("/dev/video0", "/dev/video0"),
    ],
)
def test_camera_url_password_is_redacted_in_output(source: str, shown: str, model: str) -> None:
    assert redact_url(source) == shown
    cfg = config_from_dict({"camera": {"source": source}, "model": {"path": model}}, environ={})
    assert cfg.camera.source == source  # the real one is used
    assert f'source = "{shown}"' in to_toml(cfg)
