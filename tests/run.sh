#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm / Raspberry Pi OS machine, as a new user runs it: it installs
# what it needs (apt packages; the project with every extra into ./.venv, built from the system's Python; Home
# Assistant's venv into a cache under $HOME), puts .venv/bin first on PATH and runs ruff and pytest. Arguments go
# to pytest. Nothing outside .venv, the caches below and the apt packages is used.
#
# Environment: PYTHON   interpreter for .venv (default /usr/bin/python3: Debian's 3.11, the Pi's own)
#              EDGE_VENV the venv (default .venv)
#              PY313 / PYENV_ROOT   where the Python 3.13 for Home Assistant is (default: pyenv's 3.13.x)
#              EDGE_HA_PYTHON       an existing Python with homeassistant (skips building the HA venv)
# Caches (rebuilt when missing): $HOME/.cache/pip, $HOME/.cache/edge-daemon/ (HA venv and its build log).
set -euo pipefail
cd "$(dirname "$0")/.."

# apt packages the tests use, one list (add yours here): Debian's venv module and unzip for the venvs; a real
# broker and client; offline datasets; ARM emulation; sshd and ssh for the fleet tests; iproute2; systemd for
# systemd-analyze; ffmpeg for test clips; cloud-init's schema check; strace; GStreamer's RTSP server (a real
# RTSP camera on loopback, run with the system python3); a browser, Prometheus and OCR for the live page (issue 15);
# chromium's WebDriver for the review page (selenium drives it); the device lab's nspawn, image builder and VM
# (issue 12); the arm64 Raspberry Pi image and its QEMU boot (issue 23). Only missing ones are installed.
APT_PACKAGES="python3-venv unzip mosquitto mosquitto-clients dataset-fashion-mnist qemu-user-static openssh-server openssh-client iproute2 systemd ffmpeg cloud-init strace python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad chromium chromium-driver prometheus tesseract-ocr systemd-container mmdebstrap qemu-system-x86 genisoimage netcat-openbsd dosfstools mtools qemu-system-arm arch-test fdisk xz-utils"

say() { echo "tests/run.sh: $*"; }
die() { echo "tests/run.sh: error: $*" >&2; exit 1; }

# shellcheck source=tests/support/apt.sh
. tests/support/apt.sh
# shellcheck disable=SC2086 # one word per package
apt_install_missing $APT_PACKAGES

# .venv from the system interpreter unless PYTHON says otherwise; rebuilt when it was made from another one.
PY="${PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY="$(command -v "$PY")" || die "PYTHON=$PY: no such interpreter"
VENV="${EDGE_VENV:-.venv}"
VENV="$(mkdir -p "$(dirname "$VENV")" && cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")"
base() { "$1" -c 'import sys; print(sys.base_prefix, sys.version)' 2>/dev/null; }
if [ -x "$VENV/bin/python" ] && [ "$(base "$VENV/bin/python")" != "$(base "$PY")" ]; then
  say "$VENV was built from another Python; rebuilding it from $PY"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "building $VENV from $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[trainer,deploy,dev]'
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"  # the tests call edge-daemon, edge-train, ansible-* by name

# Home Assistant's own code validates our MQTT discovery payloads and creates the sensors (tests/edge). HA
# needs Python 3.13 (none on bookworm: pyenv's, or PY313); built once into a cache (about 4 minutes).
if [ -z "${EDGE_HA_PYTHON:-}" ]; then
  HA_VENV="${EDGE_HA_VENV:-$HOME/.cache/edge-daemon/ha-venv}"
  HA_LOG="$HA_VENV.log"
  ha_ok() { "$HA_VENV/bin/python" -c "import homeassistant.components.mqtt.sensor" >/dev/null 2>&1; }
  if ! ha_ok; then
    rm -rf "$HA_VENV"; mkdir -p "$(dirname "$HA_VENV")"
    say "building Home Assistant's venv in $HA_VENV (log: $HA_LOG)"
    if ! bash tests/support/homeassistant/install_ha.sh "$HA_VENV" >"$HA_LOG" 2>&1; then
      echo "---- last lines of $HA_LOG" >&2; tail -n 30 "$HA_LOG" >&2; echo "----" >&2
      rm -rf "$HA_VENV"
    fi
  fi
  if ha_ok; then
    export EDGE_HA_PYTHON="$HA_VENV/bin/python"
  else
    why="$(grep -m1 '^install_ha.sh: error: ' "$HA_LOG" 2>/dev/null | sed 's/^install_ha.sh: error: //')"
    export EDGE_HA_UNAVAILABLE="no Home Assistant venv (${why:-its build failed: see $HA_LOG}); rerun tests/run.sh"
    say "$EDGE_HA_UNAVAILABLE: its checks will skip"
  fi
fi

# Both run, so one report shows every problem; the exit status is non-zero when either failed.
lint=0; "$VENV/bin/ruff" check . || lint=$?
tests=0; "$VENV/bin/python" -m pytest "$@" || tests=$?
[ "$lint" = 0 ] || say "ruff check . failed (see above)"
[ "$tests" != 0 ] || exit "$lint"
exit "$tests"
