#!/usr/bin/python
"""Ansible module run ON THE DEVICE by deploy/ansible/collect.yml: archive the frames the daemon kept, and later
remove exactly the archived ones.

    action=pack    list the complete pairs (`<label>/<stem>.jpg` with its `<stem>.json`; a .jpg is written after
                   its sidecar, temporary `.*.tmp` files are skipped) in the collect folder, read each once,
                   write them into an uncompressed tar (JPEGs do not compress) in a new private folder under
                   `stage_dir`, with a manifest of every file's sha256 as the tar's last member and beside it.
                   Returns the archive's path, sha256, number of images and bytes.
    action=remove  delete the files of that manifest whose content still has the sha256 it had when archived
                   (a file written or replaced since is kept), the .jpg before its .json; folders stay.

The collect folder: `dir` if given, else `[collect] dir` of the device's config (relative to `state_dir`),
else `<state_dir>/collected` (the daemon's default, $STATE_DIRECTORY/collected).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule

MANIFEST = "edge-collect-manifest.json"
TAR_OVERHEAD = 2048  # header (+ PAX header) and padding per member, at most


def collect_dir(module: AnsibleModule) -> str:
    """The folder the daemon writes collected frames into (see the module docstring)."""
    p = module.params
    if p["dir"]:
        return p["dir"]
    configured = None
    if p["config"] and os.path.isfile(p["config"]):
        try:
            import tomllib

            with open(p["config"], "rb") as f:
                configured = (tomllib.load(f).get("collect") or {}).get("dir")
        except (ImportError, OSError, ValueError) as e:
            module.warn(f"{p['config']}: cannot read [collect] dir ({e}); using the default folder")
    if isinstance(configured, str) and configured:
        return os.path.join(p["state_dir"], configured)  # an absolute dir stays as it is
    return os.path.join(p["state_dir"], "collected")


def complete_pairs(top: str) -> list[tuple[str, str]]:
    """(label folder, stem) of every .jpg with its .json sidecar, sorted; links and dot files are skipped."""
    pairs = []
    for folder in sorted(os.scandir(top), key=lambda e: e.name):
        if folder.name.startswith(".") or not folder.is_dir(follow_symlinks=False):
            continue
        names = {e.name for e in os.scandir(folder.path) if e.is_file(follow_symlinks=False)}
        for name in sorted(names):
            stem = name[:-4]
            if name.endswith(".jpg") and not name.startswith(".") and f"{stem}.json" in names:
                pairs.append((folder.name, stem))
    return pairs


def size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:  # pruned by the daemon since the listing
        return 0


def read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o600
    tar.addfile(info, io.BytesIO(data))


def pack(module: AnsibleModule) -> dict:
    top = collect_dir(module)
    result = {"changed": False, "dir": top, "images": 0, "bytes": 0, "work": "", "archive": "", "sha256": "",
              "fetch_become": False}  # fmt: skip
    if not os.path.isdir(top):
        return {**result, "missing": True}
    try:
        pairs = complete_pairs(top)
    except PermissionError as e:
        module.fail_json(msg=f"cannot read {top}: {e.strerror}; collecting needs become (root), the files belong "
                             "to the service user", **result)  # fmt: skip
    if not pairs:
        return result
    need = sum(size(os.path.join(top, d, s + ext)) + TAR_OVERHEAD for d, s in pairs for ext in (".jpg", ".json"))
    os.makedirs(module.params["stage_dir"], exist_ok=True)
    free = shutil.disk_usage(module.params["stage_dir"]).free
    if free < need + (16 << 20):
        module.fail_json(msg=f"{module.params['stage_dir']} has {free >> 20} MB free, the archive needs "
                             f"{need >> 20} MB and 16 MB to spare; free some space or set edge_collect_stage_dir",
                         **result)  # fmt: skip
    work = tempfile.mkdtemp(prefix=".edge-collect-", dir=module.params["stage_dir"])
    try:
        return write_archive(module, top, pairs, work, result)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # a full disk, a failed module: no half archive left behind
        raise


def write_archive(module: AnsibleModule, top: str, pairs: list[tuple[str, str]], work: str, result: dict) -> dict:
    archive, files = os.path.join(work, "collected.tar"), []
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder, stem in pairs:
            try:  # read each file once: what is archived is what the manifest hashes
                blobs = [(f"{folder}/{stem}{ext}", read_file(os.path.join(top, folder, stem + ext)))
                         for ext in (".json", ".jpg")]  # fmt: skip
            except FileNotFoundError:  # pruned by the daemon (quota) since the listing
                continue
            for name, data in blobs:
                add_member(tar, name, data)
                files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
        manifest = json.dumps({"dir": top, "files": files}, indent=0).encode()
        add_member(tar, MANIFEST, manifest)
    with open(os.path.join(work, MANIFEST), "wb") as f:
        f.write(manifest)
    fetch_become = module.params["escalated"]
    sudo_uid, sudo_gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if fetch_become and os.geteuid() == 0 and sudo_uid and sudo_gid:
        for path in (work, archive):  # the login user fetches it without sudo: streamed, not slurped into memory
            os.chown(path, int(sudo_uid), int(sudo_gid))
        fetch_become = False
    return {**result, "changed": True, "work": work, "archive": archive, "sha256": sha256_file(archive),
            "images": len(files) // 2, "bytes": os.path.getsize(archive), "fetch_become": fetch_become}  # fmt: skip


def remove(module: AnsibleModule) -> dict:
    work = module.params["work"]
    with open(os.path.join(work, MANIFEST), "rb") as f:
        manifest = json.load(f)
    top = os.path.realpath(manifest["dir"])
    expected = {e["path"]: e["sha256"] for e in manifest["files"]}
    removed = kept = gone = 0
    for path in sorted(p for p in expected if p.endswith(".jpg")):
        pair = [path, path[:-4] + ".json"]  # the image first: a .jpg on the device always has its sidecar
        full = [os.path.realpath(os.path.join(top, p)) for p in pair]
        if any(os.path.dirname(os.path.dirname(p)) != top for p in full):
            module.fail_json(msg=f"manifest path {path!r} is outside {top}")
        try:
            if any(sha256_file(p) != expected[name] for p, name in zip(full, pair, strict=True)):
                kept += 1  # replaced since it was archived: not what was transferred
                continue
        except FileNotFoundError:
            gone += 1  # pruned by the daemon meanwhile
            continue
        for p in full:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        removed += 1
    return {"changed": removed > 0, "dir": top, "removed": removed, "kept": kept, "gone": gone}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": ["pack", "remove"]},
            "dir": {"type": "str", "default": ""},
            "config": {"type": "str", "default": ""},
            "state_dir": {"type": "str", "default": "/var/lib/edge-daemon"},
            "stage_dir": {"type": "str", "default": "/var/tmp"},
            "escalated": {"type": "bool", "default": True},
            "work": {"type": "str", "default": ""},
        },
        supports_check_mode=False,
    )
    try:
        module.exit_json(**(pack(module) if module.params["action"] == "pack" else remove(module)))
    except OSError as e:
        module.fail_json(msg=f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))


if __name__ == "__main__":
    main()
