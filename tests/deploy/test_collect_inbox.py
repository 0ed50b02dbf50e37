"""`python -m deploy.inbox`, the collect playbook's step on this machine: an archive made by the device-side module
(`edge_collect_files`, run through Ansible) is verified completely before anything is written; a damaged, forged
or incomplete one is refused with one line and exit 1, and the inbox is left untouched."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.inbox import INDEX, MANIFEST, provenance
from tests.deploy.collect_fixtures import make_device, pack, seed
from tests.support.peak_memory import run_measured

Member = tuple[str, bytes]


def prerequisites() -> str | None:
    if not (Path(sys.executable).parent / "ansible").exists() and not shutil.which("ansible"):
        return "ansible-core not installed (pip install -e '.[deploy]')"
    return None


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, dict]:
    """A device with three frames (two cats, one dog), archived by the device-side module."""
    reason = prerequisites()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("device")
    top = make_device(base / "dev1")
    seed(top, "dev1", [("cat", 1), ("cat", 2), ("dog", 3)])
    return top, pack(top, base / "stage")


def unpack(archive: Path, sha: str, out: Path, host: str = "dev1") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deploy.inbox", str(archive), "--sha256", sha, "--host", host, "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def members(archive: Path) -> list[Member]:
    with tarfile.open(archive) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


def write_tar(path: Path, items: list[Member], links: tuple[str, ...] = ()) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tar.addfile(info)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_module_archives_complete_pairs_with_their_checksums(packed):
    top, result = packed
    assert result["images"] == 3 and result["dir"] == str(top) and not result["fetch_become"]
    items = dict(members(Path(result["archive"])))
    manifest = json.loads(items.pop(MANIFEST))
    assert sorted(items) == sorted(str(p.relative_to(top)) for p in top.glob("*/*"))
    assert {e["path"]: e["sha256"] for e in manifest["files"]} == {
        name: hashlib.sha256((top / name).read_bytes()).hexdigest() for name in items
    }
    assert hashlib.sha256(Path(result["archive"]).read_bytes()).hexdigest() == result["sha256"]


def test_a_good_archive_is_unpacked_with_provenance(packed, tmp_path):
    _, result = packed
    out = tmp_path / "inbox"
    r = unpack(Path(result["archive"]), result["sha256"], out)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"images": 3, "collected": 3, "duplicates": 0}
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["cat", "dog"]
    assert len((out / INDEX).read_text().splitlines()) == 3
    r = unpack(Path(result["archive"]), result["sha256"], out, host="dev9")
    assert json.loads(r.stdout) == {"images": 3, "collected": 0, "duplicates": 3}, "same content, any device"


def test_a_name_taken_by_another_image_gets_the_device_s_name(packed, tmp_path):
    top, result = packed
    out = tmp_path / "inbox"
    taken = next(top.glob("dog/*.jpg"))
    (out / "dog").mkdir(parents=True)
    (out / "dog" / taken.name).write_bytes(b"another image")
    r = unpack(Path(result["archive"]), result["sha256"], out)
    assert r.returncode == 0, r.stderr
    assert (out / "dog" / taken.name).read_bytes() == b"another image"
    renamed = out / "dog" / f"{taken.stem}-dev1.jpg"
    assert renamed.read_bytes() == taken.read_bytes()
    assert json.loads(renamed.with_suffix(".json").read_text())["collected_from"] == "dev1"


def _flip_first_jpeg(items: list[Member]) -> list[Member]:
    name = next(n for n, _ in items if n.endswith(".jpg"))
    return [(n, bytes([d[0] ^ 1]) + d[1:] if n == name else d) for n, d in items]


def _drop_first_jpeg(items: list[Member]) -> list[Member]:
    name = next(n for n, _ in items if n.endswith(".jpg"))
    kept = [(n, d) for n, d in items if n not in (name, MANIFEST)]
    listed = [{"path": n, "sha256": hashlib.sha256(d).hexdigest()} for n, d in kept]
    return [*kept, (MANIFEST, json.dumps({"files": listed}).encode())]


CASES: list[tuple[str, Callable[[list[Member]], list[Member]], tuple[str, ...], str]] = [
    ("damaged member", _flip_first_jpeg, (), "does not match the manifest's sha256; transfer damaged"),
    ("no manifest", lambda items: [(n, d) for n, d in items if n != MANIFEST], (), f"no readable {MANIFEST}"),
    ("member outside", lambda items: [("../evil.jpg", b"x"), *items], (), "unexpected member '../evil.jpg'"),
    ("dot file", lambda items: [("cat/.hidden.jpg", b"x"), *items], (), "unexpected member 'cat/.hidden.jpg'"),
    ("symlink", lambda items: items, ("cat/link.jpg",), "'cat/link.jpg' is not a regular file"),
    ("half a pair", _drop_first_jpeg, (), "lacks its .jpg or .json; the device's archive is incomplete"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "links", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_forged_or_damaged_archive_writes_nothing(packed, tmp_path, change, links, message):
    _, result = packed
    archive = tmp_path / "forged.tar"
    sha = write_tar(archive, change(members(Path(result["archive"]))), links)
    out = tmp_path / "inbox"
    r = unpack(archive, sha, out)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("deploy.inbox: error: ") and message in r.stderr, r.stderr
    assert not out.exists() and r.stdout == ""


def test_an_archive_that_is_not_the_device_s_writes_nothing(packed, tmp_path):
    _, result = packed
    out = tmp_path / "inbox"
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(Path(result["archive"]).read_bytes()[:5000])
    for archive, sha, message in [
        (Path(result["archive"]), "0" * 64, "differs from the device's 000000000000...: transfer damaged"),
        (truncated, result["sha256"], "differs from the device's"),
        (truncated, hashlib.sha256(truncated.read_bytes()).hexdigest(), "not a readable tar archive"),
        (tmp_path / "missing.tar", result["sha256"], "cannot read the fetched archive"),
    ]:
        r = unpack(archive, sha, out)
        assert r.returncode == 1 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not out.exists()


@pytest.mark.parametrize(
    ("sidecar", "kept"),
    [
        (b'{"label": "cat", "score": 0.4}', {"label": "cat", "score": 0.4}),
        (b"not json", {"sidecar_unreadable": "not json"}),
        (b"[1, 2]", {"sidecar_unreadable": "[1, 2]"}),
    ],
)
def test_provenance_is_added_to_the_sidecar(sidecar, kept):
    doc = json.loads(provenance(sidecar, "kitchen-cam", "2026-03-01T12:00:00Z"))
    assert doc == {**kept, "collected_from": "kitchen-cam", "collected_at": "2026-03-01T12:00:00Z"}


def test_a_sparse_8_gb_member_is_refused_by_its_size_within_the_memory_budget(tmp_path):
    """A 10 KB archive holding a GNU sparse member of 8 GB apparent size (made by GNU tar, as a device could)."""
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    with open(src / "cat" / "x.jpg", "wb") as f:
        f.truncate(8 << 30)
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(archive), "cat/x.jpg"], cwd=src, check=True)
    assert archive.stat().st_size < 64 << 10
    out = tmp_path / "inbox"
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    r = run_measured("deploy.inbox", str(archive), "--sha256", sha, "--host", "dev1", "--out", str(out), tmp=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "member 'cat/x.jpg': over 32 MB, the most read from it" in r.stderr, r.stderr
    assert r.growth < 100 << 20, f"{r.growth >> 20} MB over the baseline"
    print(f"peak {r.growth / 2**20:.2f} MB over a {r.baseline >> 20} MB baseline")
    assert not out.exists()


def test_a_device_file_name_cannot_forge_an_index_line(packed, tmp_path):
    """A device-side name holding a newline and tab would write a second index line (another device's image then
    skipped as a duplicate): the archive is refused, nothing written, and a clean archive after it is indexed."""
    _, result = packed
    items = members(Path(result["archive"]))
    other = hashlib.sha256(b"another device's image").hexdigest()
    forged_name = f"cat/x.jpg\tdev1\tT\n{other}\ty.jpg"  # two parts, ends in .jpg: only the name rule refuses it
    forged = [(forged_name, b"x"), *items]
    archive = tmp_path / "forged.tar"
    sha = write_tar(archive, forged)
    out = tmp_path / "inbox"
    r = unpack(archive, sha, out)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "unexpected member" in r.stderr, r.stderr
    assert not out.exists()
    r = unpack(Path(result["archive"]), result["sha256"], out)
    assert r.returncode == 0, r.stderr
    lines = (out / INDEX).read_text().splitlines()
    assert len(lines) == 3 and all(len(line.split("\t")) == 4 for line in lines) and other not in str(lines)


@pytest.mark.parametrize("host", ["dev1\n", "dev\t1", "dev\u202e1", ""])
def test_a_host_name_outside_the_rule_is_refused(packed, tmp_path, host):
    _, result = packed
    r = unpack(Path(result["archive"]), result["sha256"], tmp_path / "inbox", host=host)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "give the device's inventory name" in r.stderr
    assert not (tmp_path / "inbox").exists()
