"""Pull mode on real init (device lab, issue 24): three nspawn devices with no sshd update themselves from a
signed git repository, in their maintenance window, reporting on MQTT (tests/device/pull_fleet.py builds them).

One device life, in order (each step a Figure; the dashboard, a subscriber on the lab broker, is the only
observer besides `systemctl`/`journalctl` on the devices, as an operator would look):
1. first install: commit C0 (release r1 by URL from a signed folder, model A by URL + sha256, signed models)
   -> every device installs, starts, passes its health check and publishes `deployment` applied C0;
2. canary first: C1 gives the `canary` group model B -> dev1 applies it (time from commit to its retained
   `deployment`), dev2/dev3 apply C1 as unchanged and stay on A; C2 gives `stable` B -> dev2/dev3 follow;
3. refusals: an unsigned commit and one signed by an unknown key -> every device reports `refused`, nothing of
   either runs, the daemons go on classifying with B;
4. a tampered model (right URL, wrong bytes) -> dev1 reports `failed` (sha256 mismatch), nothing switched;
5. a release that fails its health check (release r2 with a broker port nothing listens on) -> dev1 rolls
   itself back to r1 and its old config, and reports `rolled back`;
6. the window: dev3's timer re-set to a window two hours ahead; a new commit -> dev2 applies it, dev3 started by
   hand (a timer firing late) does nothing, its next elapse is in its window.
7. a power cut during a pull: dev1 (on an ext4 image of its own) loses power (the file system shut down
   unflushed, the machine killed) at a seeded point 0-45 s after install.sh of release r3 started; it boots on a
   complete release (r1 or r3), and its timer finishes the pull by itself.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tests.device.host import LabError, wait_until
from tests.device.lab import Figure, Lab
from tests.device.pull_fleet import STATE, PullFleet, edge_deploy, window_around_now, window_not_now
from tests.support.mosquitto import free_port

NAMES = ("dev1", "dev2", "dev3")
INVENTORY = """[canary]
dev1

[stable]
dev2
dev3

[edge:children]
canary
stable

[edge:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
"""


def group_vars(fleet: PullFleet, port: int, release_url: str) -> str:
    return f"""edge_project_dir: "{{{{ playbook_dir }}}}"
edge_mqtt_host: 127.0.0.1
edge_mqtt_port: {port}
edge_mqtt_username: edge
edge_mqtt_password_file: edge-daemon.mqtt-password
edge_camera_source: /srv/edge-media/demo_clip.avi
edge_heartbeat_s: 2
edge_health_timeout: 30
edge_release_url: "{release_url}"
edge_release: r1
edge_release_keys: ["{{{{ playbook_dir }}}}/keys/release.pub"]
edge_trusted_keys: ["{{{{ playbook_dir }}}}/keys/model.pub"]
"""


def model_vars(url: str, digest: str, extra: str = "") -> str:
    return f'edge_model_url: "{url}"\nedge_model_sha256: "{digest}"\n{extra}'


class Pulls:
    """The fleet plus the dashboard's view of its `deployment` messages."""

    def __init__(self, lab: Lab, fleet: PullFleet) -> None:
        self.lab, self.fleet = lab, fleet

    def reported(self, name: str, revision: str, after: float, timeout: float) -> dict:
        """The first `deployment` of device `name` for desired `revision` received after `after`."""
        return self.reported_at(name, revision, after, timeout)[0]

    def reported_at(self, name: str, revision: str, after: float, timeout: float) -> tuple[dict, float]:
        """reported() and the monotonic time the dashboard received it."""
        try:
            msg = self.lab.wait_message(f"edge/{name}/deployment", after, timeout,
                                        lambda m: json.loads(m.payload)["desired_revision"] == revision)  # fmt: skip
        except LabError as e:
            d = self.fleet.device(name)
            raise LabError(f"{name}: {e}; edge-pull: {d.journal('edge-pull')[-1500:]}; state: "
                           f"{d.sh(f'cat {STATE}', check=False).stdout}") from None  # fmt: skip
        return json.loads(msg.payload), msg.received

    def classifying(self, name: str, model: str, timeout: float = 30) -> None:
        after = time.monotonic()
        self.lab.wait_message(f"edge/{name}/classification", after, timeout,
                              lambda m: json.loads(m.payload).get("model") == model)  # fmt: skip


def note(figures: list[Figure], lab: Lab, figure: Figure) -> None:
    """Record a figure as soon as it is measured (a later step failing keeps the earlier ones in the output)."""
    figures.append(lab.record(figure))
    print(f"\n{figure.scenario}: {figure.figure}", flush=True)


def scenario_pull(lab: Lab, model_a: Path, model_b: Path, seed: int) -> list[Figure]:
    broker = lab.start_broker()
    fleet = PullFleet(lab, NAMES, disks=("dev1",))
    figures: list[Figure] = []
    try:
        release = fleet.release("r1")
        a_url, a_sha = fleet.model(model_a, "model-a.tflite")
        b_url, b_sha = fleet.model(model_b, "model-b.tflite")
        repo = fleet.repo
        (repo.path / "keys").mkdir()
        (repo.path / "keys/model.pub").write_text((fleet.keys / "model/edge-signing.pub").read_text())
        (repo.path / "keys/release.pub").write_text((fleet.keys / "release/edge-signing.pub").read_text())
        repo.write({"inventory.ini": INVENTORY, "group_vars/edge.yml": group_vars(fleet, broker.port, release),
                    "group_vars/canary.yml": model_vars(a_url, a_sha),
                    "group_vars/stable.yml": model_vars(a_url, a_sha)})  # fmt: skip
        pulls = Pulls(lab, fleet)
        fleet.start(window_around_now())
        for d in fleet.devices:
            listening = d.sh("ss -ltnH", check=False).stdout
            assert ":22 " not in listening, f"{d.name}: something listens on port 22: {listening}"

        # 1. First install.
        t0 = time.monotonic()
        c0 = repo.commit("r1 with model A everywhere", fleet.ops)
        firsts = {}
        for d in fleet.devices:
            s, received = pulls.reported_at(d.name, c0, t0, 900)
            assert s["result"] == "applied" and s["applied_revision"] == c0 and s["release"] == "r1", s
            assert s["model"] == "model-a.tflite", s
            firsts[d.name] = received - t0
        for d in fleet.devices:
            pulls.classifying(d.name, "model-a")
        what = "3 devices, no sshd: signed commit -> release r1 + signed model A installed, health-checked, reported"
        took = ", ".join(f"{v:.0f}" for v in firsts.values())
        note(figures, lab, Figure("P1 first install by pull", what + " on MQTT", f"applied on all 3 in {took} s"))

        # 2. Canary first, stable later.
        repo.write({"group_vars/canary.yml": model_vars(b_url, b_sha)})
        t1 = time.monotonic()
        c1 = repo.commit("canary: model B", fleet.ops)
        s = pulls.reported("dev1", c1, t1, 300)
        canary_s = time.monotonic() - t1
        assert s["result"] == "applied" and s["model"] == "model-b.tflite", s
        for name in ("dev2", "dev3"):
            s = pulls.reported(name, c1, t1, 300)
            assert s["result"] in ("applied", "unchanged") and s["model"] == "model-a.tflite", s
        pulls.classifying("dev1", "model-b")
        pulls.classifying("dev2", "model-a")
        repo.write({"group_vars/stable.yml": model_vars(b_url, b_sha)})
        t2 = time.monotonic()
        c2 = repo.commit("stable: model B", fleet.ops)
        for name in ("dev2", "dev3"):
            s = pulls.reported(name, c2, t2, 300)
            assert s["result"] == "applied" and s["model"] == "model-b.tflite", s
        stable_s = time.monotonic() - t2
        took = f"commit -> applied on the canary {canary_s:.0f} s; stable (2 devices) {stable_s:.0f} s"
        note(figures, lab, Figure("P2 canary first, stable later", "commit for canary -> dev1 only; then stable", took))

        # 3. Refusals: unsigned, unknown key.
        refusals = []
        for what, key, expected in (("unsigned", None, "signature was refused"),
                                    ("unknown key", fleet.stranger, "No principal matched")):  # fmt: skip
            repo.write({"notes.txt": f"{what}\n"})
            t = time.monotonic()
            c = repo.commit(f"{what} commit", key)
            for d in fleet.devices:
                s = pulls.reported(d.name, c, t, 120)
                assert s["result"] == "refused" and s["applied_revision"] == c2, s
                assert expected in (s["error"] or ""), s
            refusals.append(f"{what} {time.monotonic() - t:.0f} s")
        for d in fleet.devices:
            pulls.classifying(d.name, "model-b")
        what, took = "refused by every device, reported, nothing run", "refused on all 3: " + ", ".join(refusals)
        note(figures, lab, Figure("P3 unsigned / unknown-key commits", what, took))

        # 4. A tampered model: the URL serves other bytes than the signed commit's sha256.
        c_url, c_sha = fleet.model(model_a, "model-c.tflite")
        served = fleet.files.root / "models/model-c.tflite"
        data = bytearray(served.read_bytes())
        data[len(data) // 2] ^= 0x01
        served.write_bytes(bytes(data))
        repo.write({"group_vars/canary.yml": model_vars(c_url, c_sha)})
        t = time.monotonic()
        c4 = repo.commit("canary: model C (tampered on the server)", fleet.ops)
        s = pulls.reported("dev1", c4, t, 300)
        assert s["result"] == "failed" and s["applied_revision"] == c2, s
        assert "checksum" in (s["error"] or "").lower() or "sha256" in (s["error"] or "").lower(), s
        pulls.classifying("dev1", "model-b")
        dev1 = fleet.device("dev1")
        assert "model-c" not in dev1.sh("cat /etc/edge-daemon/config.toml").stdout
        took = f"dev1 failed (sha256) in {time.monotonic() - t:.0f} s, still classifying with B"
        note(figures, lab, Figure("P4 tampered model by URL", "wrong bytes at the right URL: refused on arrival", took))

        # 5. A release that fails its health check: rolled back by the device itself.
        dead = free_port()
        repo.write({"group_vars/canary.yml": model_vars(b_url, b_sha, f"edge_release: r2\nedge_mqtt_port: {dead}\n")})
        t = time.monotonic()
        c5 = repo.commit("canary: release r2 with a broken broker port", fleet.ops)
        s = pulls.reported("dev1", c5, t, 600)
        assert s["result"] == "rolled back" and s["applied_revision"] == c2 and s["release"] == "r1", s
        assert str(dead) in (s["error"] or ""), s
        assert dev1.sh("readlink /opt/edge-daemon/current").stdout.strip() == "releases/r1"
        assert f"port = {broker.port}" in dev1.sh("cat /etc/edge-daemon/config.toml").stdout
        for name in ("dev2", "dev3"):
            assert pulls.reported(name, c5, t, 300)["result"] == "unchanged"
        pulls.classifying("dev1", "model-b")
        took = f"dev1 rolled itself back to r1 and reported it in {time.monotonic() - t:.0f} s"
        note(figures, lab, Figure("P5 failed health check", "release r2 that cannot reach its broker", took))

        # 6. The maintenance window: dev3 outside it.
        dev3 = fleet.device("dev3")
        fleet.setup(dev3, window_not_now())
        dev3.sh("systemctl restart edge-pull.timer")
        before = dev3.sh(f"cat {STATE}").stdout
        repo.write({"group_vars/stable.yml": model_vars(a_url, a_sha)})
        t = time.monotonic()
        c6 = repo.commit("stable: back to model A", fleet.ops)
        s = pulls.reported("dev2", c6, t, 300)
        assert s["result"] == "applied" and s["model"] == "model-a.tflite", s
        dev3.sh("systemctl start edge-pull.service")  # as a timer that fires late would
        assert "outside the maintenance window" in dev3.journal("edge-pull"), dev3.journal("edge-pull")[-800:]
        assert dev3.sh(f"cat {STATE}").stdout == before, "outside its window the device must do nothing"
        assert all(json.loads(m.payload)["desired_revision"] != c6 for m in lab.messages("edge/dev3/deployment", t))
        nxt = dev3.sh("systemctl show edge-pull.timer -p NextElapseUSecRealtime --value").stdout.strip()
        took = f"dev2 applied in {time.monotonic() - t:.0f} s; dev3 did nothing, next run {nxt}"
        note(figures, lab, Figure("P6 maintenance window", "dev3's window 2 h ahead, dev2's now; one commit", took))

        # The fleet from the broker alone: edge-deploy status --broker (no SSH; the devices have no sshd). dev1
        # (canary: still r2 with the broken port) tries c6 too and rolls back again: wait for that first.
        assert pulls.reported("dev1", c6, t, 300)["result"] == "rolled back"
        pw = fleet.dir / "dashboard.password"
        pw.write_text(lab.password)
        r = edge_deploy("status", "--broker", f"127.0.0.1:{broker.port}", "--username", "dashboard",
                        "--password-file", pw, "--json")  # fmt: skip
        seen = json.loads(r.stdout)
        assert r.returncode == 1, "dev1's last pull was rolled back (and dev3 is behind): not all healthy"
        assert seen["dev1"]["deployment"]["result"] == "rolled back", seen["dev1"]
        assert seen["dev2"]["deployment"]["applied_revision"] == c6, seen["dev2"]
        assert seen["dev3"]["deployment"]["desired_revision"] != c6, seen["dev3"]
        assert all(seen[n]["availability"] == "online" for n in NAMES), seen

        # 7. A power cut during a pull: dev1 (its own ext4 disk) loses power while install.sh installs release r3.
        repo.write({"group_vars/canary.yml": model_vars(a_url, a_sha, "edge_release: r3\n")})
        t = time.monotonic()
        c7 = repo.commit("canary: release r3 with model A", fleet.ops)
        wait_until(lambda: dev1.sh("pgrep -f '[i]nstall.sh.*--release r3'", check=False).returncode == 0, 300,
                   "dev1: install.sh of release r3 to start")  # fmt: skip
        delay = random.Random(seed).uniform(0, 45)
        time.sleep(delay)  # the cut point (seeded), not a synchronisation
        dev1.power_cut()
        booted = time.monotonic()
        dev1.start()
        current = dev1.sh("readlink /opt/edge-daemon/current").stdout.strip()
        assert current in ("releases/r1", "releases/r3"), current
        assert dev1.sh(f"test -e /opt/edge-daemon/{current}/.complete", check=False).returncode == 0, current
        unchecked = dev1.sh("test -e /opt/edge-daemon/.pending", check=False).returncode == 0  # cut after the switch
        back = lab.wait_message("edge/dev1/classification", booted, 60).received - booted  # the daemon, again
        s = pulls.reported("dev1", c7, t, 600)  # the timer runs the agent again: it finishes the pull itself
        assert s["result"] == "applied" and s["release"] == "r3" and s["applied_revision"] == c7, s
        assert s["model"] == "model-a.tflite" and s["error"] is None, s
        assert dev1.sh("readlink /opt/edge-daemon/current").stdout.strip() == "releases/r3"
        assert dev1.sh("test -e /opt/edge-daemon/.pending", check=False).returncode != 0, "left unchecked"
        pulls.classifying("dev1", "model-a")
        came = f"{current.removeprefix('releases/')}{' (switched, not yet checked)' if unchecked else ''}"
        note(figures, lab, Figure("P7 power cut during a pull", "dev1 cut at a seeded moment 0-45 s into install.sh "
                                  "of r3; after power-on a complete release, the daemon classifying, the pull "
                                  "finished by the device itself and reported",
                                  f"cut {delay:.1f} s into install.sh (seed {seed}): came back on {came}, classifying "
                                  f"{back:.0f} s after the cut; reported applied r3 {time.monotonic() - t:.0f} s after "
                                  "the commit"))  # fmt: skip
        return figures
    finally:
        fleet.close()
