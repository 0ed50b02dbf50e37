"""`[model] trusted_keys` end to end: the issue's walk-through with a real daemon, a real mosquitto and real keys.

Keys made by `edge-deploy keygen`, the demo model signed by `edge-deploy sign`; `check-config` refuses a model with
one byte flipped, an unsigned one and one signed by another key, each with one line and exit 2; a running daemon
refuses the same on hot reload (the file watch and SIGHUP) with a `model_rejected` event while the old model's
labels keep coming, and takes a newly signed model. Regions' own models are checked too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from deploy.signing import keygen, sign_model
from edge.inference.signature import load_private_key, signature_path
from tests.edge.conftest import CLI, REPO
from tests.edge.service.test_daemon import T, config, wait_payload
from tests.support.payload_schemas import check_message


@pytest.fixture
def signer(tmp_path: Path) -> dict:
    key, pub, _ = keygen(tmp_path / "keys")
    other_key, other_pub, _ = keygen(tmp_path / "other")
    return {"key": load_private_key(key), "pub": pub, "other": load_private_key(other_key), "other_pub": other_pub}


def check_config(cfg: Path, *options: str) -> subprocess.CompletedProcess:
    """`edge-daemon check-config` as a user runs it (default log level: the refusal must be the only line)."""
    return subprocess.run([*CLI, *options, "check-config", "--quiet", str(cfg)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)  # fmt: skip


def one_line_error(r: subprocess.CompletedProcess, expected: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-daemon: error: ") and expected in lines[0], r.stderr


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    tmp = path.with_name("incoming.tflite")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def test_check_config_accepts_a_signed_model_and_refuses_the_others(tmp_path, demo_model, signer) -> None:
    model = tmp_path / "model.tflite"
    shutil.copy(demo_model, model)
    cfg = config(tmp_path, None, model, "0", model={"trusted_keys": [str(signer["pub"])]})
    one_line_error(check_config(cfg), "model.tflite: not signed (no model.tflite.sig)")
    sign_model(model, signer["key"])
    assert check_config(cfg).returncode == 0
    flip_one_byte(model)
    one_line_error(check_config(cfg), "model.tflite: changed since it was signed")
    shutil.copy(demo_model, model)
    sign_model(model, signer["other"])
    one_line_error(check_config(cfg), "which is not a trusted key")
    cfg = config(tmp_path, None, model, "0", model={"trusted_keys": [str(signer["pub"]), str(signer["other_pub"])]})
    assert check_config(cfg).returncode == 0, "a second trusted key (rotation) accepts its models"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["missing.pub"], "model.trusted_keys[0]: cannot read file"),
        (["config.toml"], "model.trusted_keys: "),  # a file that is no key
        ("a.pub", "model.trusted_keys: expected a list of at most 8 strings"),
        ([f"k{i}.pub" for i in range(9)], "expected a list of at most 8 strings"),
    ],
)
def test_bad_trusted_keys_are_one_line(tmp_path, demo_model, keys, expected) -> None:
    cfg = config(tmp_path, None, demo_model, "0", model={"trusted_keys": keys})
    one_line_error(check_config(cfg), expected)


def test_a_regions_own_model_must_be_signed_too(tmp_path, demo_model, coral_model, signer) -> None:
    main, own = tmp_path / "main.tflite", tmp_path / "own.tflite"
    shutil.copy(demo_model, main)
    shutil.copy(coral_model, own)
    sign_model(main, signer["key"])
    regions = [{"name": "door", "box": [0, 0, 0.5, 0.5]},
               {"name": "yard", "box": [0.5, 0, 0.5, 0.5], "model": str(own)}]
    cfg = config(tmp_path, None, main, "0", model={"trusted_keys": [str(signer["pub"])]})
    tables = [f'\n[[regions]]\nname = "{r["name"]}"\nbox = {r["box"]}\n' + (f'model = "{r.get("model")}"\n'
              * ("model" in r)) for r in regions]  # fmt: skip
    cfg.write_text(cfg.read_text() + "".join(tables))
    # (the main model loads first and says so at INFO level; the refusal is the one error line)
    one_line_error(check_config(cfg, "--log-level", "WARNING"), "own.tflite: not signed")
    sign_model(own, signer["key"])
    assert check_config(cfg).returncode == 0


def test_hot_reload_refuses_untrusted_models_while_the_old_labels_keep_coming(
    mosquitto, subscriber_factory, daemon_factory, demo_model, coral_model, fm_clip, fm_labels, tmp_path, signer
) -> None:
    model = tmp_path / "model.tflite"
    shutil.copy(demo_model, model)
    sign_model(model, signer["key"])
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    cfg = config(tmp_path, mosquitto, model, fm_clip, camera={"max_rate": 10.0}, smoothing={"mode": "off"},
                 model={"watch": True, "watch_interval_s": 0.2, "trusted_keys": [str(signer["pub"])]})  # fmt: skip
    d = daemon_factory(cfg)
    wait_payload(sub, f"{T}/classification", lambda p: p["label"] in fm_labels, timeout=20)

    def still_classifying_with_the_old_model() -> None:
        n = len(sub.received(f"{T}/classification"))
        wait_payload(sub, f"{T}/classification", lambda p: p["label"] in fm_labels and p["model"] == "model"
                     and p["frame"] > n)  # fmt: skip

    flip_one_byte(model)  # the watch sees it
    rejected = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_rejected")
    assert rejected["reason"] == "model file changed" and "changed since it was signed" in rejected["error"]
    assert rejected["model"] == "model"
    still_classifying_with_the_old_model()

    shutil.copy(demo_model, model)
    signature_path(model).unlink()  # an unsigned model
    d.send(signal.SIGHUP)
    wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_rejected" and "not signed" in p["error"]
                 and p["reason"] == "SIGHUP")  # fmt: skip
    still_classifying_with_the_old_model()

    sign_model(model, signer["other"])  # signed, but by a key the device does not trust
    d.send(signal.SIGHUP)
    wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_rejected" and "not a trusted key" in p["error"])
    still_classifying_with_the_old_model()

    incoming = tmp_path / "incoming.tflite"  # a new model signed with the trusted key: the .sig first, then the model
    shutil.copy(coral_model, incoming)
    sign_model(incoming, signer["key"])
    os.replace(signature_path(incoming), signature_path(model))
    os.replace(incoming, model)
    ok = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "model_reloaded")
    assert ok["classes"] == 1001
    wait_payload(sub, f"{T}/classification", lambda p: p["label"] not in fm_labels)
    assert d.stop()[0] == 0
    log = d.log()
    assert log.count("model reload (model file changed) refused") == 1 and "signature verified" in log, log
    retained = [m for m in sub.received(f"{T}/event")]
    assert len([m for m in retained if m.json()["event"] == "model_rejected"]) == 3
    for m in sub.received():
        check_message(m.topic, m.payload)
