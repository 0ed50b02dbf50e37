"""The signed manifest of a release: a folder of wheels, `SHA256SUMS` listing every wheel, `SHA256SUMS.sig`.

    # edge-release-manifest-v1
    # key 3f2a9c0d1e4b5a67
    4d5e...64 hex...  edge_daemon-0.2.0-py3-none-any.whl
    9a0b...64 hex...  numpy-2.2.6-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl

`SHA256SUMS` is `sha256sum`'s own format (its `#` lines are comments to it), sorted by name; `SHA256SUMS.sig` is
the raw 64-byte Ed25519 signature of that file's bytes. On a device the manifest is checked by `install.sh` with
the operating system's own `openssl pkeyutl -verify -rawin` and `sha256sum --check` before anything of the
release is installed or run (the verifier cannot come from the release it verifies); `verify_release` here is
the same check for `edge-deploy verify` on the desk. A release verifies when the signature verifies with one of
the trusted keys, every line is well formed, the folder holds exactly the listed wheels (no extra file, none
missing, no link or folder) and each has its listed sha256.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, Failure
from edge.files import write_durably
from edge.inference.signature import PublicKey, key_id, read_bounded

MANIFEST = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
HEADER = "# edge-release-manifest-v1"
MAX_MANIFEST_BYTES = 1 << 20  # some 10,000 wheels
_LINE = re.compile(r"([0-9a-f]{64})  ([A-Za-z0-9][A-Za-z0-9._+-]*\.whl)")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release_files(folder: Path) -> list[str]:
    """The names in a release folder besides the manifest and its signature; a link, folder or other non-file and a
    name that is no wheel are errors (one line)."""
    if not folder.is_dir():
        raise EdgeError(f"{folder}: not a folder; give the folder of the release's wheels")
    names = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name in (MANIFEST, SIGNATURE):
            continue
        if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
            raise Failure(f"{folder}: {entry.name} is not a regular file; a release folder holds only wheels")
        if not _LINE.fullmatch(f"{'0' * 64}  {entry.name}"):
            raise Failure(f"{folder}: {entry.name} is not a wheel; a release folder holds only wheels")
        names.append(entry.name)
    return names


def manifest_text(folder: Path, signer: str) -> str:
    """The manifest of a folder's wheels (`signer`: the key id), sorted by name."""
    names = release_files(folder)
    if not names:
        raise EdgeError(f"{folder}: no wheels to sign; put the release's wheels in it (pip wheel / pip download)")
    lines = [HEADER, f"# key {signer}", *(f"{sha256_file(folder / n)}  {n}" for n in names)]
    return "\n".join(lines) + "\n"


def sign_release(folder: Path, private_key: Any) -> tuple[Path, int]:
    """Write `SHA256SUMS` and `SHA256SUMS.sig` into a folder of wheels; (manifest path, number of wheels)."""
    text = manifest_text(folder, key_id(private_key.public_key())).encode()
    for name, data in ((MANIFEST, text), (SIGNATURE, private_key.sign(text))):
        write_durably(folder / name, data)
        (folder / name).chmod(0o644)  # served to devices as the wheels are
    return folder / MANIFEST, text.count(b"\n") - 2


def parse_manifest(text: bytes, source: str) -> dict[str, str]:
    """{wheel: sha256} of a manifest, every line checked; Failure (one line) for anything else."""
    try:
        lines = text.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise Failure(f"{source}: not a release manifest (not ASCII)") from None
    if lines[0] != HEADER or lines[-1] != "":
        raise Failure(f"{source}: not a release manifest (it must start with {HEADER!r} and end with a newline)")
    entries: dict[str, str] = {}
    for n, line in enumerate(lines[1:-1], start=2):
        if line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if not m:
            raise Failure(f"{source}: line {n} is not '<sha256>  <wheel>': {line[:80]!r}")
        if m.group(2) in entries:
            raise Failure(f"{source}: {m.group(2)} is listed twice")
        entries[m.group(2)] = m.group(1)
    if not entries:
        raise Failure(f"{source}: lists no wheel")
    return entries


def verify_release(folder: Path, keys: tuple[PublicKey, ...]) -> tuple[PublicKey, dict[str, str]]:
    """Check a release folder against its signed manifest; (the key that signed it, {wheel: sha256}).

    Raises:
        Failure: no manifest, a signature that verifies with none of the keys, a malformed manifest, an extra or
            missing wheel, a wheel whose bytes changed. One line naming the file.
    """
    from cryptography.exceptions import InvalidSignature

    manifest, sig_path = folder / MANIFEST, folder / SIGNATURE
    if not manifest.exists() or not sig_path.exists():
        raise Failure(f"{folder}: no signed manifest ({MANIFEST} and {SIGNATURE}); sign the folder with "
                      f"edge-deploy sign --key KEY {folder}")  # fmt: skip
    try:
        text = read_bounded(manifest, MAX_MANIFEST_BYTES, "release manifest")
        signature = read_bounded(sig_path, 64, "manifest signature")
    except EdgeError as e:
        raise Failure(str(e)) from None
    signer = None
    for key in keys:
        try:
            key.key.verify(signature, text)
        except InvalidSignature:
            continue
        signer = key
        break
    if signer is None:
        ids = ", ".join(k.key_id for k in keys)
        raise Failure(f"{manifest}: the signature does not verify with any trusted key ({ids}): signed by another "
                      "key, or the manifest or its .sig was changed; nothing from this release may be installed")
    entries = parse_manifest(text, str(manifest))
    present = set(release_files(folder))
    if extra := sorted(present - set(entries)):
        raise Failure(f"{folder}: {extra[0]} is not in the signed manifest" + (f" (and {len(extra) - 1} more)" if
                      len(extra) > 1 else "") + "; remove it or sign the folder again")  # fmt: skip
    if missing := sorted(set(entries) - present):
        raise Failure(f"{folder}: {missing[0]} is listed in the signed manifest but missing" +
                      (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))  # fmt: skip
    for name, digest in entries.items():
        if not hmac.compare_digest(sha256_file(folder / name), digest):
            raise Failure(f"{folder / name}: its sha256 is not the one in the signed manifest: the wheel was changed")
    return signer, entries
