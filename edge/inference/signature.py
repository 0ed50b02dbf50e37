"""Signed model files: Ed25519 keys, the `MODEL.sig` beside a model, and verifying a model's bytes before a load.

A signature file is one small JSON object (at most `MAX_SIGNATURE_BYTES`, read with a bound: a huge or endless
file is refused without being read)::

    {"format": "edge-signature-v1", "file": "birds-v3.tflite", "size": 5242880, "sha256": "<64 hex>",
     "key": "<16 hex: the signer's key id>", "signature": "<base64 of 64 bytes>"}

The Ed25519 signature covers `signed_message()`: the format name and the canonical JSON of file, size, sha256 and
key, so a signature made for one file cannot be passed off as another's and a model signature is never mistaken
for a release manifest's (that text starts differently). The file name is signed but not required to match: a
renamed model still verifies, and a `.sig` whose sha256 differs names the model it was made for.

Keys are PEM: PKCS#8 private keys, SubjectPublicKeyInfo public keys, Ed25519 only; anything else (an RSA key, a
private key where a public one belongs, garbage, a file over `MAX_KEY_BYTES`) is refused with one line. The
cryptography is the `cryptography` package's (OpenSSL); digests are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

FORMAT = "edge-signature-v1"
SUFFIX = ".sig"
MAX_SIGNATURE_BYTES = 4096
MAX_KEY_BYTES = 4096
_HEX64, _HEX16 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{16}")
_FIELDS = {"format", "file", "size", "sha256", "key", "signature"}


class UntrustedModel(EdgeError):
    """A model refused by its signature: unsigned, changed since signed, signed by a key not trusted, a forged or
    damaged `.sig`. One line naming the file and the fix."""


@dataclass(frozen=True)
class PublicKey:
    """A trusted key: its id (the first 16 hex digits of the sha256 of its 32 raw bytes), file and key object."""

    key_id: str
    path: str
    key: Any  # cryptography's Ed25519PublicKey


@dataclass(frozen=True)
class Signature:
    """A parsed `.sig` file."""

    file: str
    size: int
    sha256: str
    key_id: str
    signature: bytes


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """At most `limit` bytes of a regular file, refused (one line) when it is larger, missing or not a file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such file") from None
    except OSError as e:
        raise EdgeError(f"{path}: cannot read {what} ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise EdgeError(f"{path}: not a regular file; give the {what} file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise EdgeError(f"{path}: over {limit} bytes, not a {what}; give the right file")
    return data


def key_id(public_key: Any) -> str:
    """The id of an Ed25519 public key: sha256 of its raw 32 bytes, first 16 hex digits."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: str | Path) -> PublicKey:
    """An Ed25519 public key from a PEM file (`edge-deploy keygen`'s `.pub`), parsed strictly."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = read_bounded(path, MAX_KEY_BYTES, "public key")
    if b"PRIVATE KEY" in data:
        raise EdgeError(f"{path}: is a private key; give the public key (the .pub file), keep this one secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise EdgeError(f"{path}: not a PEM public key ({_first_line(e)}); make one with edge-deploy keygen") from None
    if not isinstance(key, Ed25519PublicKey):
        raise EdgeError(f"{path}: a {type(key).__name__.removeprefix('_')}, not an Ed25519 key; make one with "
                        "edge-deploy keygen")  # fmt: skip
    return PublicKey(key_id(key), str(path), key)


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key (unencrypted PKCS#8 PEM, `edge-deploy keygen`), parsed strictly."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = read_bounded(path, MAX_KEY_BYTES, "private key")
    if b"PUBLIC KEY" in data:
        raise EdgeError(f"{path}: is a public key; signing needs the private key made beside it by edge-deploy keygen")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise EdgeError(f"{path}: the key is encrypted; give an unencrypted Ed25519 key (edge-deploy keygen)") from None
    except ValueError as e:
        raise EdgeError(f"{path}: not a PEM private key ({_first_line(e)}); make one with edge-deploy keygen") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EdgeError(f"{path}: not an Ed25519 key; make one with edge-deploy keygen")
    return key


def load_trusted_keys(paths: tuple[str, ...] | list[str]) -> tuple[PublicKey, ...]:
    """The keys of `[model] trusted_keys`, each parsed strictly (EdgeError naming the file)."""
    return tuple(load_public_key(p) for p in paths)


def signature_path(model: str | Path) -> Path:
    """Where a model's signature lives: `MODEL.sig` beside it."""
    return Path(f"{model}{SUFFIX}")


def signed_message(file: str, size: int, sha256: str, key: str) -> bytes:
    """The bytes an Ed25519 signature covers."""
    body = json.dumps({"file": file, "key": key, "sha256": sha256, "size": size}, sort_keys=True, separators=(",", ":"))
    return f"{FORMAT}\n{body}".encode()


def sign_bytes(data: bytes, name: str, private_key: Any) -> str:
    """The text of a `.sig` for `data` (a file called `name`), signed with an Ed25519 private key."""
    kid, digest = key_id(private_key.public_key()), hashlib.sha256(data).hexdigest()
    signature = private_key.sign(signed_message(name, len(data), digest, kid))
    fields = {"format": FORMAT, "file": name, "size": len(data), "sha256": digest, "key": kid,
              "signature": base64.b64encode(signature).decode()}  # fmt: skip
    return json.dumps(fields, indent=1) + "\n"


def parse_signature(data: bytes, source: str) -> Signature:
    """A `.sig` file's content, checked field by field; EdgeError (one line) for anything else."""

    def bad(why: str) -> EdgeError:
        return UntrustedModel(f"{source}: not an edge signature file ({why}); sign the model again with edge-deploy "
                              "sign")  # fmt: skip

    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("not JSON") from None
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise bad(f"expected the fields {', '.join(sorted(_FIELDS))}")
    if obj["format"] != FORMAT:
        raise bad(f"format {str(obj['format'])[:40]!r}, this daemon reads {FORMAT!r}")
    name, size, digest, kid = obj["file"], obj["size"], obj["sha256"], obj["key"]
    if not isinstance(name, str) or not 0 < len(name) <= 255 or "/" in name or "\0" in name:
        raise bad("file is not a file name")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("size is not a byte count")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise bad("sha256 is not 64 hex digits")
    if not isinstance(kid, str) or not _HEX16.fullmatch(kid):
        raise bad("key is not a key id")
    try:
        raw = base64.b64decode(obj["signature"], validate=True) if isinstance(obj["signature"], str) else b""
    except binascii.Error:
        raw = b""
    if len(raw) != 64:
        raise bad("signature is not 64 bytes of base64")
    return Signature(name, size, digest, kid, raw)


def verify_bytes(data: bytes, model: str | Path, keys: tuple[PublicKey, ...]) -> PublicKey:
    """Check `data` (the content of `model`) against `MODEL.sig` and the trusted keys; the key that signed it.

    Raises:
        UntrustedModel: unsigned, a .sig of garbage or over the size bound, a key not trusted, a signature that
            does not verify, or a .sig for other bytes (another model, or this one changed since it was signed).
    """
    from cryptography.exceptions import InvalidSignature

    sig_path = signature_path(model)
    if not sig_path.exists():
        raise UntrustedModel(f"{model}: not signed (no {sig_path.name}) and [model] trusted_keys is set; sign it "
                             f"with edge-deploy sign --key KEY {Path(model).name}")  # fmt: skip
    try:
        raw = read_bounded(sig_path, MAX_SIGNATURE_BYTES, "signature")
    except EdgeError as e:
        raise UntrustedModel(str(e)) from None
    sig = parse_signature(raw, str(sig_path))
    key = next((k for k in keys if hmac.compare_digest(k.key_id, sig.key_id)), None)
    if key is None:
        trusted = ", ".join(k.key_id for k in keys)
        raise UntrustedModel(f"{model}: signed by key {sig.key_id}, which is not a trusted key (trusted: {trusted}); "
                             "sign it with a trusted key, or trust that key's .pub")  # fmt: skip
    try:
        key.key.verify(sig.signature, signed_message(sig.file, sig.size, sig.sha256, sig.key_id))
    except InvalidSignature:
        raise UntrustedModel(f"{sig_path}: the signature does not verify with key {key.key_id} ({key.path}): the "
                             ".sig was forged or damaged; sign the model again") from None  # fmt: skip
    digest = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(digest, sig.sha256) or len(data) != sig.size:
        if sig.file != Path(model).name:
            raise UntrustedModel(f"{model}: {sig_path.name} is the signature of another model ({sig.file}); sign "
                                 "this model")  # fmt: skip
        raise UntrustedModel(f"{model}: changed since it was signed (sha256 {digest[:12]}..., signed "
                             f"{sig.sha256[:12]}...); put back the signed file or sign the new one")  # fmt: skip
    return key


def read_verified(path: str | Path, keys: tuple[PublicKey, ...]) -> bytes:
    """A model file's bytes, read once and returned only when they verify (`verify_bytes`); load those bytes,
    not the file again, so what runs is what was verified."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise EdgeError(f"{path}: cannot read the model ({e.strerror})") from None
    verify_bytes(data, path, keys)
    return data


def _first_line(e: BaseException) -> str:
    """The library's reason in a few words: its first line, without the sentence pointing to its FAQ."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return re.sub(r"\s*See https?://\S+ for more details\.", "", first).strip() or type(e).__name__
