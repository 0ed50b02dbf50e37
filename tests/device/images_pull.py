"""The pull-mode devices' root file system: the lab's (`images.rootfs`'s suite, sources and packages) plus what a
device needs to update itself (`edge-deploy pull-setup`): git, ansible-core (Debian's own packages) and
ssh-keygen (openssh-client, already there with openssh-server), which verifies SSH-signed commits. Cached like
the other images, under a key of those inputs; sshd stays disabled (a field device opens no port)."""

from __future__ import annotations

import inspect
from pathlib import Path

from tests.device import images
from tests.device.host import run

PULL_PACKAGES = ("git", "ansible-core", "openssh-client")


def pull_rootfs() -> Path:
    """The root file system (directory `root/` inside the cache entry `pullroot-<key>`)."""
    packages = (*images.PACKAGES, *PULL_PACKAGES)

    def build(out: Path) -> None:
        root = out / "root"
        run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(packages), images.SUITE, root,
             *images.SOURCES], "mmdebstrap (pull-mode devices)", timeout=1200)  # fmt: skip
        run(["chroot", root, "systemctl", "mask", *images.MASKED], "masking timers")
        run(["chroot", root, "systemctl", "disable", "ssh.service"], "disabling sshd")
        (root / "etc/hostname").write_text("edge-lab\n")

    key = images._key(images.SUITE, images.SOURCES, packages, images.MASKED, inspect.getsource(build))
    return images._cached("pullroot", key, build) / "root"
