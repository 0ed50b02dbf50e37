"""`edge-deploy keygen`, `sign` and `verify`: the keys that sign models and releases, and the signatures.

    edge-deploy keygen keys/                          keys/edge-signing.key (private, 0600) + keys/edge-signing.pub
    edge-deploy sign --key keys/edge-signing.key birds-v3.tflite     -> birds-v3.tflite.sig beside the model
    edge-deploy sign --key keys/edge-signing.key release/            -> release/SHA256SUMS + SHA256SUMS.sig
    edge-deploy verify --key keys/edge-signing.pub birds-v3.tflite   (or a release folder); exit 1 when it fails,
                                                                     2 for a bad key or path

Keys are Ed25519 (the `cryptography` package; PEM: PKCS#8 private, SubjectPublicKeyInfo public), so a device
checks a model with the daemon's own dependency and a release manifest with the system's `openssl`. The formats
are `edge.inference.signature` (models) and `deploy.manifest` (releases). A private key readable by anyone but its
owner is refused, as ssh refuses one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from deploy.manifest import sign_release, verify_release
from edge.errors import EdgeError, Failure
from edge.files import write_durably
from edge.inference.signature import (
    key_id,
    load_private_key,
    load_trusted_keys,
    read_verified,
    sign_bytes,
    signature_path,
)

DEFAULT_NAME = "edge-signing"


def keygen(folder: Path, name: str = DEFAULT_NAME) -> tuple[Path, Path, str]:
    """A new Ed25519 key pair in `folder` (made 0700 if new): NAME.key (0600) and NAME.pub; (key, pub, key id).
    Existing files are never overwritten."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if folder.exists() and not folder.is_dir():
        raise EdgeError(f"{folder}: not a folder; give the folder to put the keys in")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    for p in (private, public):
        if p.exists():
            raise EdgeError(f"{p}: exists; keygen never overwrites a key (give another folder or --name)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_durably(private, pem)  # 0600 from its creation on
    write_durably(public, pub)
    public.chmod(0o644)
    return private, public, key_id(key.public_key())


def private_key(path: str) -> Any:
    """The signing key, refused when group or others may read it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise EdgeError(f"--key {path}: cannot read the key ({e.strerror})") from None
    key = load_private_key(path)
    if mode & 0o077:
        raise EdgeError(f"--key {path}: readable by others (mode {mode & 0o777:04o}); chmod 600 {path}")
    return key


def sign_model(model: Path, key: Any) -> Path:
    """Write `MODEL.sig` beside a model file (0644: the service user reads it on the device)."""
    try:
        data = model.read_bytes()
    except OSError as e:
        raise EdgeError(f"{model}: cannot read the model ({e.strerror})") from None
    sig = signature_path(model)
    write_durably(sig, sign_bytes(data, model.name, key).encode())
    sig.chmod(0o644)
    return sig


def add_keygen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="folder for the key pair (made 0700 if new)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"file name of the pair (default {DEFAULT_NAME})")


def run_keygen(args: argparse.Namespace) -> int:
    private, public, kid = keygen(Path(args.dir), args.name)
    print(f"edge-deploy: wrote {private} (private: keep it off the devices) and {public} (give this to the "
          f"devices); key id {kid}")  # fmt: skip
    return 0


def add_sign_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", "-k", required=True, help="the private key (edge-deploy keygen's .key)")
    p.add_argument("path", nargs="+", help="a .tflite model (or label file), or a release folder of wheels")


def run_sign(args: argparse.Namespace) -> int:
    key = private_key(args.key)
    for item in map(Path, args.path):
        if item.is_dir():
            manifest, count = sign_release(item, key)
            print(f"edge-deploy: signed {count} wheel(s) of {item}: {manifest.name} + {manifest.name}.sig "
                  f"(key {key_id(key.public_key())})")  # fmt: skip
        elif item.is_file():
            print(f"edge-deploy: wrote {sign_model(item, key)} (key {key_id(key.public_key())})")
        else:
            raise EdgeError(f"{item}: no such file or folder")
    return 0


def add_verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", "-k", required=True, action="append",
                   help="a trusted public key (.pub); repeat for several (key rotation)")  # fmt: skip
    p.add_argument("path", nargs="+", help="a signed model (its .sig beside it) or a release folder")


def run_verify(args: argparse.Namespace) -> int:
    keys = load_trusted_keys(args.key)
    for item in map(Path, args.path):
        if item.is_dir():
            signer, wheels = verify_release(item, keys)
            print(f"{item}: {len(wheels)} wheel(s) verified, signed by key {signer.key_id}")
        elif item.is_file():
            try:
                read_verified(item, keys)
            except EdgeError as e:
                raise Failure(str(e)) from None
            print(f"{item}: signature verified")
        else:
            raise EdgeError(f"{item}: no such file or folder")
        sys.stdout.flush()
    return 0
