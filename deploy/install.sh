#!/usr/bin/env bash
# Install, upgrade, roll back or remove edge-daemon on one device (Raspberry Pi OS bookworm 64-bit or Debian 12).
# Idempotent: running it again with the same arguments changes nothing. Run as root.
#
#   sudo deploy/install.sh [--wheel FILE | --package SPEC] [--model FILE] [--config FILE]   install / upgrade
#   sudo deploy/install.sh --rollback                                                      back to the previous release
#   sudo deploy/install.sh --uninstall [--purge]                                           remove (keeps config+models)
#
# Layout (every path below is under $EDGE_ROOT, default /):
#   /opt/edge-daemon/releases/<version>/  one Python venv per release, the daemon only (no trainer, no TensorFlow)
#   /opt/edge-daemon/current -> releases/<version>    switched atomically (ln -s + mv -T); `previous` is the last one
#   /etc/edge-daemon/config.toml          created once (never overwritten); /etc/credstore/ for secrets
#   /var/lib/edge-daemon/models/          models; state of the service (owned by the edge-daemon user)
#   /etc/systemd/system/edge-daemon.service        the service, reading /etc/edge-daemon/config.toml
#   /etc/systemd/system/edge-daemon@.service       one instance per camera, reading /etc/edge-daemon/NAME.toml
#   /etc/udev/rules.d/60-edge-daemon-coral.rules, /etc/modules-load.d/edge-daemon.conf (V4L2 core at boot)
# EDGE_ROOT=/some/dir makes a self-contained install that runs in place (the unit and config name the prefixed
# paths; users go into $EDGE_ROOT/etc/passwd): tests use it for one root per simulated device.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; cat <<'EOF'

Options:
  --wheel FILE | --sdist FILE   install this built package (default: the project this script belongs to)
  --package SPEC                a pip requirement instead, e.g. edge-daemon==0.2.0
  --find-links DIR              look for packages (wheels of the dependencies) in DIR; add --offline to use only it
  --trusted-key FILE            an Ed25519 public key (edge-deploy keygen) that signs releases; repeatable. Kept in
                                /etc/edge-daemon/release-keys/: from then on only a release folder whose signed
                                SHA256SUMS verifies (edge-deploy sign --key KEY FOLDER) is installed
  --offline                     never contact an index (pip --no-index)
  --release NAME                name of the release directory (default: the package version)
  --reinstall                   rebuild the release's venv even if it is complete
  --system-site-packages        let the venv see the system's Python packages (e.g. python3-numpy from apt)
  --python PATH                 the interpreter for the venv (default: python3)
  --model FILE                  copy this model into /var/lib/edge-daemon/models/ (and use it in a new config)
  --config FILE                 install this config if /etc/edge-daemon/config.toml does not exist yet
  --mqtt-host HOST              broker for a generated default config (default: localhost)
  --no-switch                   install the release but leave `current` as it is
  --switch NAME                 only point `current` at an installed release
  --rollback                    point `current` back at `previous`
  --no-apt                      do not install apt prerequisites
  --no-systemd                  install files but do not call systemctl/udevadm (automatic when systemd is not PID 1)
  --no-start                    enable the service but do not (re)start it
  --uninstall [--purge]         remove the daemon; --purge also removes config, models, secrets and the user
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${EDGE_ROOT:-/}"
ROOT="${ROOT%/}"  # "" for /
P() { printf '%s%s' "$ROOT" "$1"; }
OPT="$(P /opt/edge-daemon)"
ETC="$(P /etc/edge-daemon)"
STATE="$(P /var/lib/edge-daemon)"
CREDSTORE="$(P /etc/credstore)"
UNIT="$(P /etc/systemd/system/edge-daemon.service)"
TEMPLATE="$(P /etc/systemd/system/edge-daemon@.service)"
MODULES_LOAD="$(P /etc/modules-load.d/edge-daemon.conf)"
UDEV="$(P /etc/udev/rules.d/60-edge-daemon-coral.rules)"
USER_NAME="${EDGE_USER:-edge-daemon}"

ACTION=install SRC="" SRC_KIND=project RELEASE="" MODEL="" CONFIG="" MQTT_HOST=localhost PYTHON=python3
TRUSTED_KEYS=() FIND_LINKS="" OFFLINE=0 REINSTALL=0 SYSTEM_SITE=0 SWITCH=1 APT=1 SYSTEMD=1 START=1 PURGE=0 SWITCH_TO=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheel|--sdist) SRC="${2:?$1 needs a file}"; SRC_KIND=file; shift ;;
    --package) SRC="${2:?--package needs a requirement}"; SRC_KIND=spec; shift ;;
    --find-links) FIND_LINKS="${2:?--find-links needs a directory}"; shift ;;
    --offline) OFFLINE=1 ;;
    --trusted-key) TRUSTED_KEYS+=("${2:?--trusted-key needs a public key file}"); shift ;;
    --release) RELEASE="${2:?--release needs a name}"; shift ;;
    --reinstall) REINSTALL=1 ;;
    --system-site-packages) SYSTEM_SITE=1 ;;
    --python) PYTHON="${2:?--python needs a path}"; shift ;;
    --model) MODEL="${2:?--model needs a file}"; shift ;;
    --config) CONFIG="${2:?--config needs a file}"; shift ;;
    --mqtt-host) MQTT_HOST="${2:?--mqtt-host needs a host}"; shift ;;
    --no-switch) SWITCH=0 ;;
    --switch) ACTION=switch; SWITCH_TO="${2:?--switch needs a release name}"; shift ;;
    --rollback) ACTION=rollback ;;
    --no-apt) APT=0 ;;
    --no-systemd) SYSTEMD=0 ;;
    --no-start) START=0 ;;
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1; see --help" ;;
  esac
  shift
done

[ "$(id -u)" = 0 ] || die "must run as root (sudo $0 ...)"
[ -d /run/systemd/system ] || { [ "$SYSTEMD" = 0 ] || say "systemd is not running here: skipping systemctl/udevadm"; SYSTEMD=0; }
[ "$PURGE" = 0 ] || [ "$ACTION" = uninstall ] || die "--purge only goes with --uninstall"

systemctl_() { if [ "$SYSTEMD" = 1 ]; then systemctl "$@"; fi; }

# ---- durability ------------------------------------------------------------------------------------------------
# A power cut must never find a link, marker or config that points at data still in the page cache: ext4 commits
# names (a rename, a new symlink) within seconds but writes new files' data back up to half a minute later, so a
# release could be `current` with zero-length files (the device lab's power-cut trials found exactly that). Each
# step below makes what it wrote durable before the next one refers to it.
durable() { sync; }

# Install a file as `dest` by writing a temporary copy, making it durable and renaming it over (atomic).
put_copy() {
  local src="$1" dest="$2" mode="$3" owner="${4:-}" group="${5:-}" tmp
  tmp="$(dirname "$dest")/.$(basename "$dest").new"
  install -m "$mode" ${owner:+-o "$owner"} ${group:+-g "$group"} "$src" "$tmp"
  sync "$tmp"
  mv -T "$tmp" "$dest"
}

# ---- release switching ---------------------------------------------------------------------------------------
current_release() { if [ -L "$OPT/current" ]; then basename "$(readlink "$OPT/current")"; fi; }

# Point `link` at releases/NAME atomically: a new symlink is renamed over the old one (rename(2) is atomic).
flip() {
  local link="$1" name="$2"
  ln -sfn "releases/$name" "$OPT/.$link.new"
  mv -T "$OPT/.$link.new" "$OPT/$link"
  durable
}

switch_to() {
  local name="$1" old
  [ -f "$OPT/releases/$name/.complete" ] || die "release $name is not installed under $OPT/releases; install it first"
  old="$(current_release)"
  if [ "$old" = "$name" ]; then say "release $name is already current"; return 1; fi
  if [ -n "$old" ]; then flip previous "$old"; fi
  flip current "$name"
  say "current release: $name${old:+ (previous: $old)}"
}

# The running per-camera instances (edge-daemon@NAME.service), one per line.
instances() { systemctl list-units --plain --no-legend --state=active 'edge-daemon@*.service' 2>/dev/null | awk '{print $1}'; }

restart_service() {
  if [ "$SYSTEMD" = 1 ] && [ "$START" = 1 ]; then
    if systemctl is-enabled --quiet edge-daemon 2>/dev/null; then
      systemctl restart edge-daemon
      say "restarted edge-daemon"
    fi
    for unit in $(instances); do systemctl restart "$unit"; say "restarted $unit"; done
  fi
}

if [ "$ACTION" = switch ]; then
  if switch_to "$SWITCH_TO"; then restart_service; fi
  exit 0
fi
if [ "$ACTION" = rollback ]; then
  [ -L "$OPT/previous" ] || die "no previous release recorded in $OPT/previous; nothing to roll back to"
  if switch_to "$(basename "$(readlink "$OPT/previous")")"; then restart_service; fi
  exit 0
fi

# ---- uninstall ---------------------------------------------------------------------------------------------------
if [ "$ACTION" = uninstall ]; then
  if [ "$SYSTEMD" = 1 ]; then
    systemctl disable --now edge-daemon 2>/dev/null || true
    for unit in $(instances); do systemctl disable --now "$unit" || true; done
  fi
  rm -f "$UNIT" "$TEMPLATE" "$UDEV" "$MODULES_LOAD"
  systemctl_ daemon-reload
  if [ "$SYSTEMD" = 1 ] && command -v udevadm >/dev/null; then udevadm control --reload || true; fi
  rm -rf "$OPT"
  say "removed $OPT, the unit and the udev rules"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE" "$CREDSTORE"/edge-daemon.*
    PREFIX_ARGS=(); [ -z "$ROOT" ] || PREFIX_ARGS=(--prefix "$ROOT")
    if grep -q "^$USER_NAME:" "$(P /etc/passwd)" 2>/dev/null; then userdel "${PREFIX_ARGS[@]}" "$USER_NAME" || true; fi
    if grep -q "^$USER_NAME:" "$(P /etc/group)" 2>/dev/null; then groupdel "${PREFIX_ARGS[@]}" "$USER_NAME" || true; fi
    say "purged config ($ETC), models and state ($STATE), secrets and the $USER_NAME user"
  else
    say "kept config ($ETC) and models ($STATE); --uninstall --purge removes them too"
  fi
  exit 0
fi

# ---- install / upgrade -------------------------------------------------------------------------------------------
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  case " ${ID:-} ${ID_LIKE:-} " in
    *" debian "*|*" raspbian "*) ;;
    *) die "this installer supports Debian and Raspberry Pi OS (found ${PRETTY_NAME:-unknown}); install with pip by hand" ;;
  esac
fi

# openssl: verifies signed releases (it also comes with ca-certificates).
APT_PACKAGES="python3 python3-venv ca-certificates libusb-1.0-0 openssl"
if [ "$APT" = 1 ]; then
  missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    say "installing apt packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

# The service user: a system account without a shell or a home of its own, in video (cameras) and plugdev (Coral).
if [ -n "$ROOT" ]; then
  # A per-device root gets its own account files, seeded with the groups the account joins.
  mkdir -p "$(P /etc)"
  [ -e "$(P /etc/passwd)" ] || grep '^root:' /etc/passwd > "$(P /etc/passwd)"
  [ -e "$(P /etc/shadow)" ] || { echo 'root:*:19000:0:99999:7:::' > "$(P /etc/shadow)"; chmod 600 "$(P /etc/shadow)"; }
  [ -e "$(P /etc/group)" ] || grep -E '^(root|video|plugdev):' /etc/group > "$(P /etc/group)"
  [ -e "$(P /etc/gshadow)" ] || { grep -E '^(root|video|plugdev):' /etc/group | cut -d: -f1 | sed 's/$/:*::/' \
    > "$(P /etc/gshadow)"; chmod 600 "$(P /etc/gshadow)"; }
  PREFIX_ARGS=(--prefix "$ROOT")
else
  PREFIX_ARGS=()
fi
if ! grep -q "^$USER_NAME:" "$(P /etc/group)"; then groupadd "${PREFIX_ARGS[@]}" --system "$USER_NAME"; fi
if ! grep -q "^$USER_NAME:" "$(P /etc/passwd)"; then
  useradd "${PREFIX_ARGS[@]}" --system --gid "$USER_NAME" --no-create-home --home-dir /var/lib/edge-daemon \
    --shell /usr/sbin/nologin --comment "edge-daemon service" "$USER_NAME"
  say "created user $USER_NAME"
fi
for g in video plugdev; do
  if grep -q "^$g:" "$(P /etc/group)" && ! grep -qE "^$g:.*[:,]$USER_NAME(,|$)" "$(P /etc/group)"; then
    usermod "${PREFIX_ARGS[@]}" --append --groups "$g" "$USER_NAME"
  fi
done
USER_UID="$(awk -F: -v u="$USER_NAME" '$1 == u {print $3}' "$(P /etc/passwd)")"
USER_GID="$(awk -F: -v u="$USER_NAME" '$1 == u {print $3}' "$(P /etc/group)")"

# What to install, and the release it becomes.
PROJECT="$(cd "$SCRIPT_DIR/.." && pwd)"
if [ "$SRC_KIND" = project ]; then
  [ -f "$PROJECT/pyproject.toml" ] || die "no --wheel/--package given and $PROJECT is not the project; give --wheel FILE"
  SRC="$PROJECT"
fi
if [ "$SRC_KIND" = file ]; then
  [ -f "$SRC" ] || die "--wheel/--sdist: $SRC does not exist; build it with: python3 -m pip wheel --no-deps ."
  SRC="$(cd "$(dirname "$SRC")" && pwd)/$(basename "$SRC")"
fi
if [ -z "$RELEASE" ]; then
  case "$SRC_KIND" in
    file) RELEASE="$(basename "$SRC" | sed -E 's/^[A-Za-z0-9_.]+-([0-9][^-]*)(-.*\.whl|\.tar\.gz|\.zip)$/\1/')" ;;
    project) RELEASE="$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$PROJECT/pyproject.toml")" ;;
    spec) case "$SRC" in *==*) RELEASE="${SRC##*==}" ;; *) die "--package $SRC: pin a version (name==X.Y.Z) or give --release" ;; esac ;;
  esac
fi
case "$RELEASE" in ""|*/*|.*) die "release name '$RELEASE' is not usable as a directory name; give --release NAME" ;; esac

# ---- signed releases ---------------------------------------------------------------------------------------------
# With release keys (--trusted-key, or kept in $ETC/release-keys/ by an earlier install), only a release folder
# whose signed manifest verifies is installed: the folder is copied into a private staging folder first (so
# nothing can change it after the check), its SHA256SUMS.sig is checked with this system's own openssl (nothing of
# the release runs before that: the verifier cannot come from the release it verifies), then the folder must hold
# exactly the wheels listed, each with its sha256; pip then installs from that copy only (--no-index).
RELEASE_KEYS="$ETC/release-keys"
STAGED=""
cleanup_staged() { if [ -n "$STAGED" ]; then rm -rf "$STAGED"; fi; }
trap cleanup_staged EXIT

check_key() {
  local key="$1"
  [ -f "$key" ] || die "--trusted-key $key: no such file"
  [ "$(stat -c %s "$key")" -le 4096 ] || die "--trusted-key $key: over 4096 bytes, not a public key"
  ! grep -q "PRIVATE KEY" "$key" || die "--trusted-key $key: is a private key; give the public key (.pub)"
  openssl pkey -pubin -in "$key" -noout -text 2>/dev/null | head -n 1 | grep -q "ED25519 Public-Key" \
    || die "--trusted-key $key: not an Ed25519 public key in PEM (make one with edge-deploy keygen)"
}

verify_release() {
  local dir="$1" key signer="" listed present line sum name
  [ -f "$dir/SHA256SUMS" ] && [ -f "$dir/SHA256SUMS.sig" ] \
    || die "$SRC_DIR: no signed manifest (SHA256SUMS + SHA256SUMS.sig) and release keys are set; sign the folder with edge-deploy sign --key KEY $SRC_DIR; nothing was installed"
  [ "$(stat -c %s "$dir/SHA256SUMS")" -le 1048576 ] || die "$SRC_DIR/SHA256SUMS: over 1 MB, not a release manifest"
  [ "$(stat -c %s "$dir/SHA256SUMS.sig")" = 64 ] || die "$SRC_DIR/SHA256SUMS.sig: not an Ed25519 signature (64 bytes)"
  for key in "${KEYS[@]}"; do
    if openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$dir/SHA256SUMS" -sigfile "$dir/SHA256SUMS.sig" >/dev/null 2>&1; then
      signer="$key"; break
    fi
  done
  [ -n "$signer" ] || die "$SRC_DIR/SHA256SUMS: the signature does not verify with any trusted release key (${KEYS[*]}): signed by another key, or the manifest was changed; nothing was installed"
  [ "$(head -n 1 "$dir/SHA256SUMS")" = "# edge-release-manifest-v1" ] || die "$SRC_DIR/SHA256SUMS: not a release manifest"
  while IFS= read -r line; do
    case "$line" in "#"*) continue ;; esac
    [[ "$line" =~ ^[0-9a-f]{64}\ \ [A-Za-z0-9][A-Za-z0-9._+-]*\.whl$ ]] || die "$SRC_DIR/SHA256SUMS: a line is not '<sha256>  <wheel>': ${line:0:80}"
  done < "$dir/SHA256SUMS"
  listed="$(grep -v '^#' "$dir/SHA256SUMS" | cut -c 67- | LC_ALL=C sort)"
  present="$(cd "$dir" && ls -A | grep -vxF -e SHA256SUMS -e SHA256SUMS.sig | LC_ALL=C sort || true)"
  name="$(LC_ALL=C comm -13 <(echo "$listed") <(echo "$present") | head -n 1)"
  [ -z "$name" ] || die "$SRC_DIR: $name is not in the signed manifest; nothing was installed"
  name="$(LC_ALL=C comm -23 <(echo "$listed") <(echo "$present") | head -n 1)"
  [ -z "$name" ] || die "$SRC_DIR: $name is listed in the signed manifest but missing; nothing was installed"
  while read -r sum name; do
    case "$sum" in "#"*) continue ;; esac
    [ "$(sha256sum < "$dir/$name" | cut -d ' ' -f 1)" = "$sum" ] \
      || die "$SRC_DIR/$name: its sha256 is not the one in the signed manifest: the wheel was changed; nothing was installed"
  done < "$dir/SHA256SUMS"
  say "release folder verified: $(grep -vc '^#' "$dir/SHA256SUMS") wheel(s) signed by $(basename "$signer")"
}

if [ "${#TRUSTED_KEYS[@]}" -gt 0 ]; then
  command -v openssl >/dev/null || die "openssl not found; it verifies signed releases: apt-get install openssl"
fi
for key in "${TRUSTED_KEYS[@]}"; do check_key "$key"; done
KEYS=("${TRUSTED_KEYS[@]}")
if [ -d "$RELEASE_KEYS" ]; then
  for key in "$RELEASE_KEYS"/*.pub; do if [ -f "$key" ]; then KEYS+=("$key"); fi; done
fi
if [ "${#KEYS[@]}" -gt 0 ]; then
  command -v openssl >/dev/null || die "openssl not found; it verifies signed releases: apt-get install openssl"
  [ "$SRC_KIND" = file ] || die "release keys are set ($RELEASE_KEYS or --trusted-key): give a signed release folder's wheel with --wheel; nothing was installed"
  SRC_DIR="$(dirname "$SRC")"
  if [ -n "$FIND_LINKS" ] && [ "$(cd "$FIND_LINKS" 2>/dev/null && pwd)" != "$SRC_DIR" ]; then
    die "--find-links $FIND_LINKS: with release keys the wheels come from the signed folder of --wheel ($SRC_DIR) only"
  fi
  mkdir -p "$OPT"
  STAGED="$(mktemp -d "$OPT/.verify.XXXXXX")"
  for f in "$SRC_DIR"/* "$SRC_DIR"/.[!.]*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    { [ -f "$f" ] && [ ! -L "$f" ]; } || die "$SRC_DIR: $(basename "$f") is not a regular file; a release folder holds only wheels"
    cp -- "$f" "$STAGED/"
  done
  verify_release "$STAGED"
  SRC="$STAGED/$(basename "$SRC")" FIND_LINKS="$STAGED" OFFLINE=1
fi

DIR="$OPT/releases/$RELEASE"
if [ -f "$DIR/.complete" ] && [ "$REINSTALL" = 0 ]; then
  say "release $RELEASE already installed in $DIR"
else
  say "installing release $RELEASE into $DIR"
  mkdir -p "$OPT/releases"
  rm -rf "$DIR"
  trap 'rm -rf "$DIR"; echo "install.sh: error: installing release $RELEASE failed; nothing was switched" >&2' ERR
  VENV_ARGS=(); [ "$SYSTEM_SITE" = 0 ] || VENV_ARGS=(--system-site-packages)
  # Debian's python3-venv brings pip as a wheel (python3-pip-whl); pip runs from it unpacked or not.
  PIP_WHEEL="$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | sort -V | tail -n 1 || true)"
  if "$PYTHON" -m pip --python "$(command -v "$PYTHON")" --version >/dev/null 2>&1; then
    # pip >= 22.3 beside the interpreter can install into a venv made without its own pip (seconds, not minutes)
    "$PYTHON" -m venv --without-pip "${VENV_ARGS[@]}" "$DIR"
    PIP=("$PYTHON" -m pip --python "$DIR/bin/python" install -q --disable-pip-version-check)
  elif [ -n "$PIP_WHEEL" ] && "$PYTHON" "$PIP_WHEEL/pip" --python "$(command -v "$PYTHON")" --version >/dev/null 2>&1; then
    # The same from the pip wheel that `venv` would otherwise unpack into every release (a minute on a Pi 3)
    "$PYTHON" -m venv --without-pip "${VENV_ARGS[@]}" "$DIR"
    PIP=("$PYTHON" "$PIP_WHEEL/pip" --python "$DIR/bin/python" install -q --disable-pip-version-check)
  else
    "$PYTHON" -m venv "${VENV_ARGS[@]}" "$DIR"
    PIP=("$DIR/bin/python" -m pip install -q --disable-pip-version-check)
  fi
  [ -z "$FIND_LINKS" ] || PIP+=(--find-links "$FIND_LINKS")
  [ "$OFFLINE" = 0 ] || PIP+=(--no-index)
  if [ "$SYSTEM_SITE" = 0 ]; then
    "${PIP[@]}" "$SRC"
  else
    # The system's packages provide the dependencies; pip could also count an edge-daemon installed there as
    # "satisfied", so the release gets its own copy without touching dependencies.
    "${PIP[@]}" --no-deps --force-reinstall "$SRC"
  fi
  # The daemon's imports (NumPy, OpenCV, paho, LiteRT) must load in this venv before it can become current.
  "$DIR/bin/python" -c 'import edge.service.daemon, edge.mqtt.publisher, edge.inference.backends'
  "$DIR/bin/edge-daemon" --version >/dev/null
  durable  # every file of the release is on the disk before the marker says it is complete
  echo "$RELEASE" > "$DIR/.complete"
  durable
  trap - ERR
fi

# The release keys given are kept: later installs on this device must be signed by one of them.
for key in "${TRUSTED_KEYS[@]}"; do
  install -d -m 755 "$RELEASE_KEYS"
  dest="$RELEASE_KEYS/$(basename "$key" .pub).pub"
  cmp -s "$key" "$dest" || { put_copy "$key" "$dest" 644; say "trusting release key $dest"; }
done

# Units and udev rules (from the project's systemd/ directory next to this script).
UNIT_SRC=""
for d in "$SCRIPT_DIR/../systemd" "$SCRIPT_DIR/systemd"; do [ -f "$d/edge-daemon.service" ] && UNIT_SRC="$d" && break; done
[ -n "$UNIT_SRC" ] || die "edge-daemon.service not found in $SCRIPT_DIR/../systemd; copy the project's systemd/ directory"
[ -f "$UNIT_SRC/edge-daemon@.service" ] || die "edge-daemon@.service not found in $UNIT_SRC; copy the project's systemd/ directory"
mkdir -p "$(dirname "$UNIT")" "$(dirname "$UDEV")" "$(dirname "$MODULES_LOAD")"
UNIT_CHANGED=0
FIRST_INSTALL=0; [ -f "$UNIT" ] || FIRST_INSTALL=1
# Written only when different (so a repeated run touches nothing), to a temporary file renamed over.
put_file() {
  local dest="$1" text="$2"
  if [ ! -f "$dest" ] || [ "$(cat "$dest")" != "$text" ]; then
    printf '%s\n' "$text" > "$dest.new" && chmod 644 "$dest.new" && sync "$dest.new" && mv -T "$dest.new" "$dest"
    return 0
  fi
  return 1
}
for name in edge-daemon.service edge-daemon@.service; do
  text="$(sed -e "s#/opt/edge-daemon/#$ROOT/opt/edge-daemon/#g" \
    -e "s#/etc/edge-daemon/config#$ROOT/etc/edge-daemon/config#g" -e "s#/etc/edge-daemon/%i#$ROOT/etc/edge-daemon/%i#g" \
    -e "s#^WorkingDirectory=/#WorkingDirectory=$ROOT/#" "$UNIT_SRC/$name")"
  if put_file "$(dirname "$UNIT")/$name" "$text"; then UNIT_CHANGED=1; fi
done
put_file "$UDEV" "$(cat "$UNIT_SRC/60-edge-daemon-coral.rules")" || true
# DeviceAllow=char-video4linux is resolved when the service starts, from the drivers loaded then: a camera
# plugged in later (a USB webcam's uvcvideo loads videodev only then) would get EPERM until a restart. Loading
# the V4L2 core at boot, before any service starts, keeps the "video4linux" device group known from the start.
put_file "$MODULES_LOAD" "# edge-daemon (deploy/install.sh): V4L2 core at boot, so DeviceAllow=char-video4linux covers cameras
# plugged in after the service started.
videodev" || true

# Models and config: created once, never overwritten (upgrades keep the user's settings).
install -d -m 750 -o "$USER_UID" -g "$USER_GID" "$STATE" "$STATE/models"
install -d -m 700 "$CREDSTORE"
if [ -n "$MODEL" ]; then
  [ -f "$MODEL" ] || die "--model: $MODEL does not exist"
  cmp -s "$MODEL" "$STATE/models/$(basename "$MODEL")" \
    || put_copy "$MODEL" "$STATE/models/$(basename "$MODEL")" 640 "$USER_UID" "$USER_GID"
else
  MODEL="$("$DIR/bin/python" -c 'import edge, pathlib; p = pathlib.Path(edge.__file__).parent / "assets" / "demo_model.tflite"; print(p if p.is_file() else "")')"
  if [ -n "$MODEL" ] && [ -z "$(ls -A "$STATE/models")" ]; then
    put_copy "$MODEL" "$STATE/models/$(basename "$MODEL")" 640 "$USER_UID" "$USER_GID"
  fi
fi
install -d -m 750 -g "$USER_GID" "$ETC"
if [ ! -e "$ETC/config.toml" ]; then
  if [ -n "$CONFIG" ]; then
    put_copy "$CONFIG" "$ETC/config.toml" 640 "" "$USER_GID"
  else
    first_model="$(ls "$STATE/models" | head -n 1)"
    cat > "$ETC/.config.toml.new" <<EOF
# edge-daemon configuration written by install.sh; every key and its default: edge-daemon check-config --defaults
# and docs/configuration.md. Secrets: put the MQTT password in $ROOT/etc/credstore/edge-daemon.mqtt-password and set
# password_file = "edge-daemon.mqtt-password" below.
[camera]
source = "0"

[model]
path = "$STATE/models/${first_model:-model.tflite}"

[mqtt]
host = "$MQTT_HOST"
EOF
    sync "$ETC/.config.toml.new"
    mv -T "$ETC/.config.toml.new" "$ETC/config.toml"
  fi
  say "wrote $ETC/config.toml"
fi
# The service reads its config as group edge-daemon (cloud-init or a user may have written it as root:root).
chgrp "$USER_GID" "$ETC/config.toml"; chmod 640 "$ETC/config.toml"
durable  # models, config, units and rules are on the disk before the service (re)starts with them

CHANGED=0
if [ "$SWITCH" = 1 ] && switch_to "$RELEASE"; then CHANGED=1; fi

if [ "$SYSTEMD" = 1 ]; then
  udevadm control --reload 2>/dev/null && udevadm trigger --subsystem-match=usb --subsystem-match=apex 2>/dev/null || true
  modprobe -q videodev 2>/dev/null || true  # what modules-load.d does at the next boot
  if [ "$UNIT_CHANGED" = 1 ]; then systemctl daemon-reload; fi
  # Enabled on the first install only: a device that moved to per-camera instances (edge-daemon@NAME) and
  # disabled the single-camera service keeps it disabled through upgrades.
  if [ "$FIRST_INSTALL" = 1 ]; then systemctl enable --quiet edge-daemon; fi
  if [ "$START" = 1 ]; then
    if systemctl is-enabled --quiet edge-daemon; then
      if [ "$CHANGED" = 1 ] || [ "$UNIT_CHANGED" = 1 ]; then systemctl restart edge-daemon; else systemctl start edge-daemon; fi
      say "edge-daemon is $(systemctl is-active edge-daemon || true)"
    fi
    if [ "$CHANGED" = 1 ] || [ "$UNIT_CHANGED" = 1 ]; then
      for unit in $(instances); do systemctl restart "$unit"; say "restarted $unit"; done
    fi
  fi
else
  say "service manager step skipped (--no-systemd): start $OPT/current/bin/edge-daemon run --config $ETC/config.toml yourself"
fi
say "done: release $(current_release), config $ETC/config.toml, models in $STATE/models"
