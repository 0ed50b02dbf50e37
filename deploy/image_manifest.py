"""The manifest written beside an image (`<image>.manifest.json`): what it holds, with versions and sha256.

- every Debian package installed: name, version, architecture and the sha256 of its .deb as the archive's
  signed package lists state it (`package_hashes`, read from the root's apt lists before they are dropped);
- every wheel installed into the daemon's venv: file name and sha256 (`wheel_hashes`);
- the image file's sha256 and size, the kernel, Python and suite, the given config and model, the cache keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from deploy import image_cache


def _stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if "Package" in fields:
            out.append(fields)
    return out


def package_hashes(root: Path, installed: str) -> list[dict[str, str]]:
    """`installed` (dpkg-query lines `name version arch`) with each .deb's sha256 from the apt lists in `root`."""
    known: dict[tuple[str, str, str], str] = {}
    for lst in (root / "var/lib/apt/lists").glob("*_Packages"):
        for st in _stanzas(lst.read_text(errors="replace")):
            known[(st["Package"], st.get("Version", ""), st.get("Architecture", ""))] = st.get("SHA256", "")
    rows = []
    for line in sorted(installed.splitlines()):
        name, version, arch = line.split()
        rows.append({"name": name, "version": version, "arch": arch, "sha256": known.get((name, version, arch), "")})
    return rows


def wheel_hashes(folder: Path) -> list[dict[str, str]]:
    return [{"file": w.name, "sha256": image_cache.file_sha256(w)} for w in sorted(folder.rglob("*.whl"))]


def write(path: Path, image: Path, name: str, info: dict, layer: Path) -> dict:
    """The manifest for `image` (to be renamed `name`) built from the system `layer` (packages.json, wheels.json)."""
    data = {
        "image": name,
        "sha256": image_cache.file_sha256(image),
        "bytes": image.stat().st_size,
        **info,
        "packages": json.loads((layer / "packages.json").read_text()),
        "wheels": json.loads((layer / "wheels.json").read_text()),
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data
