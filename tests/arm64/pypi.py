"""What pip on a Raspberry Pi would pick from PyPI, judged from PyPI's JSON API.

`pick_release` is pure: given a project's releases (PyPI JSON `releases`) and a specifier, it returns the
release pip on the Pi installs: the newest non-yanked, non-pre-release version that has a file the Pi can use
(a fitting wheel, or an sdist pip would build) and whose Requires-Python admits 3.11. When that release has
only an sdist, a Pi would compile it (hours for OpenCV, or a failure): the dependency tests forbid that.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tests.arm64.target import PYTHON_FULL, wheel_fits_pi

PYPI = "https://pypi.org/pypi"


def _python_ok(file: Mapping) -> bool:
    try:
        return not file.get("requires_python") or SpecifierSet(file["requires_python"]).contains(PYTHON_FULL)
    except InvalidSpecifier:
        return True  # pip ignores a malformed Requires-Python


def usable_files(files: Sequence[Mapping]) -> list[Mapping]:
    """Files of one release pip on the Pi would consider: not yanked, Python 3.11 allowed, wheel fits or sdist."""
    return [
        f
        for f in files
        if not f.get("yanked") and _python_ok(f) and (f.get("packagetype") == "sdist" or wheel_fits_pi(f["filename"]))
    ]


def has_pi_wheel(files: Sequence[Mapping]) -> bool:
    """True when one of the release's usable files is a wheel (pip prefers it over the sdist)."""
    return any(f["filename"].endswith(".whl") for f in usable_files(files))


def allowed_releases(releases: Mapping[str, Sequence[Mapping]], spec: SpecifierSet) -> list[str]:
    """Versions (PyPI's keys) inside `spec` that pip on the Pi could install, oldest first.

    Pre-releases count only when the specifier names one, as in pip.
    """
    out: list[tuple[Version, str]] = []
    for key, files in releases.items():
        try:
            version = Version(key)
        except InvalidVersion:
            continue
        if (version.is_prerelease and not spec.prereleases) or version not in spec:
            continue
        if usable_files(files):
            out.append((version, key))
    return [key for _, key in sorted(out)]


def pick_release(releases: Mapping[str, Sequence[Mapping]], spec: SpecifierSet) -> str | None:
    """The version pip on the Pi installs for `spec` with nothing else constraining it (None: none fits)."""
    allowed = allowed_releases(releases, spec)
    return allowed[-1] if allowed else None


@lru_cache(maxsize=64)
def releases_of(name: str, timeout: float = 30.0) -> dict[str, list[dict]]:
    """PyPI's `releases` table for a project (network; cached for the test session)."""
    cafile = os.environ.get("PIP_CERT") or None
    ctx = ssl.create_default_context(cafile=cafile)
    url = f"{PYPI}/{canonicalize_name(name)}/json"
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
        return json.load(resp)["releases"]
