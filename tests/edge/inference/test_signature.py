"""Signed model files (`edge.inference.signature`): real Ed25519 keys, real `.sig` files, every way a model can be
refused, each as one line naming the file; and a signed model loaded from the verified bytes only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from deploy.signing import keygen, sign_model
from edge.errors import EdgeError
from edge.inference import signature as sg
from edge.inference.model import load_model


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    a_key, a_pub, _ = keygen(tmp_path / "a")
    b_key, b_pub, _ = keygen(tmp_path / "b")
    return {"a.key": a_key, "a.pub": a_pub, "b.key": b_key, "b.pub": b_pub}


@pytest.fixture
def signed(tmp_path: Path, demo_model: Path, keys) -> Path:
    model = tmp_path / "model.tflite"
    model.write_bytes(demo_model.read_bytes())
    sign_model(model, sg.load_private_key(keys["a.key"]))
    return model


def trusted(*paths: Path) -> tuple[sg.PublicKey, ...]:
    return sg.load_trusted_keys([str(p) for p in paths])


def test_a_signed_model_verifies_with_its_key_and_a_rotated_set(signed, keys) -> None:
    data = sg.read_verified(signed, trusted(keys["a.pub"]))
    assert data == signed.read_bytes()
    assert sg.verify_bytes(data, signed, trusted(keys["b.pub"], keys["a.pub"])).path == str(keys["a.pub"])


def test_sig_records_the_file_its_size_sha256_and_key(signed, keys) -> None:
    sig = json.loads(sg.signature_path(signed).read_text())
    assert set(sig) == {"format", "file", "size", "sha256", "key", "signature"}
    assert sig["file"] == "model.tflite" and sig["size"] == signed.stat().st_size
    assert sig["key"] == sg.load_public_key(keys["a.pub"]).key_id


def flip_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite_sig(path: Path, **fields: object) -> None:
    sig = sg.signature_path(path)
    sig.write_text(json.dumps({**json.loads(sig.read_text()), **fields}))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda m, k: flip_byte(m), "changed since it was signed"),
        (lambda m, k: m.write_bytes(m.read_bytes() + b"\0"), "changed since it was signed"),
        (lambda m, k: sg.signature_path(m).unlink(), "not signed (no model.tflite.sig)"),
        (lambda m, k: sign_model(m, sg.load_private_key(k["b.key"])), "which is not a trusted key"),
        (lambda m, k: sg.signature_path(m).write_bytes(os.urandom(300)), "not an edge signature file (not JSON)"),
        (lambda m, k: sg.signature_path(m).write_text("[]"), "expected the fields"),
        (lambda m, k: rewrite_sig(m, format="edge-signature-v9"), "format 'edge-signature-v9'"),
        (lambda m, k: rewrite_sig(m, size=-1), "size is not a byte count"),
        (lambda m, k: rewrite_sig(m, size=True), "size is not a byte count"),
        (lambda m, k: rewrite_sig(m, sha256="AB" * 32), "sha256 is not 64 hex digits"),
        (lambda m, k: rewrite_sig(m, file="../etc/passwd"), "file is not a file name"),
        (lambda m, k: rewrite_sig(m, signature="not base64!"), "signature is not 64 bytes"),
        (lambda m, k: rewrite_sig(m, signature="AAAA"), "signature is not 64 bytes"),
        (lambda m, k: rewrite_sig(m, size=12), "does not verify with key"),  # a field changed: the signature breaks
        (lambda m, k: rewrite_sig(m, signature="A" * 86 + "=="), "does not verify with key"),
        (lambda m, k: os.truncate(sg.signature_path(m), 1 << 30), "over 4096 bytes, not a signature"),
    ],
)
def test_refused_models_say_why_in_one_line(signed, keys, damage, expected) -> None:
    damage(signed, keys)
    with pytest.raises(sg.UntrustedModel) as e:
        sg.read_verified(signed, trusted(keys["a.pub"]))
    assert expected in str(e.value) and "\n" not in str(e.value), e.value


def test_a_sig_of_another_model_names_that_model(tmp_path, signed, keys, coral_model) -> None:
    other = tmp_path / "other.tflite"
    other.write_bytes(coral_model.read_bytes())
    sg.signature_path(other).write_bytes(sg.signature_path(signed).read_bytes())
    with pytest.raises(sg.UntrustedModel, match=r"other.tflite.sig is the signature of another model \(model.tflite\)"):
        sg.read_verified(other, trusted(keys["a.pub"]))


def test_a_renamed_signed_model_still_verifies(tmp_path, signed, keys) -> None:
    renamed = tmp_path / "renamed.tflite"
    signed.rename(renamed)
    sg.signature_path(signed).rename(sg.signature_path(renamed))
    sg.read_verified(renamed, trusted(keys["a.pub"]))


def test_a_huge_sig_is_not_read_into_memory(signed, keys) -> None:
    os.truncate(sg.signature_path(signed), 1 << 30)  # sparse: 1 GB on paper
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(sg.UntrustedModel, match="over 4096 bytes"):
        sg.read_verified(signed, trusted(keys["a.pub"]))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KB: far below 1 GB


def test_a_fifo_as_sig_is_refused_without_blocking(signed, keys) -> None:
    sig = sg.signature_path(signed)
    sig.unlink()
    os.mkfifo(sig)
    with pytest.raises(sg.UntrustedModel, match="not a regular file"):
        sg.read_verified(signed, trusted(keys["a.pub"]))


def _pem_public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a PEM public key"),
        (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx user@host\n", "not a PEM public key"),
        (b"-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        (_pem_public(ec.generate_private_key(ec.SECP256R1()).public_key()), "not an Ed25519 key"),
        (ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ), "is a private key"),
        (b"A" * 5000, "over 4096 bytes"),
    ],
)
def test_keys_are_parsed_strictly(tmp_path, content, expected) -> None:
    path = tmp_path / "key.pub"
    path.write_bytes(content)
    with pytest.raises(EdgeError) as e:
        sg.load_public_key(path)
    assert expected in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_public_key_is_no_signing_key(keys) -> None:
    with pytest.raises(EdgeError, match="is a public key"):
        sg.load_private_key(keys["a.pub"])


def test_a_signed_model_runs_from_the_verified_bytes_not_the_file(signed, keys, coral_model) -> None:
    """Swapping the file after the check changes nothing: the interpreter and the labels come from those bytes."""
    keyset = trusted(keys["a.pub"])

    def verify_then_swap(path: Path) -> bytes:
        data = sg.read_verified(path, keyset)
        path.write_bytes(coral_model.read_bytes())  # an attacker's model, too late
        return data

    with load_model(signed, device="cpu", threads=1, verify=verify_then_swap) as clf:
        assert clf.spec.num_classes == 10 and clf.spec.labels[0] != "class_0"  # the demo model's own labels


def test_a_separate_label_file_must_be_signed_too(tmp_path, signed, keys) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"thing {i}" for i in range(10)) + "\n")
    keyset = trusted(keys["a.pub"])
    with pytest.raises(sg.UntrustedModel, match=r"labels\.txt: not signed"):
        load_model(signed, labels=labels, device="cpu", verify=lambda p: sg.read_verified(p, keyset))
    sign_model(labels, sg.load_private_key(keys["a.key"]))
    with load_model(signed, labels=labels, device="cpu", verify=lambda p: sg.read_verified(p, keyset)) as clf:
        assert clf.spec.labels[3] == "thing 3"
