#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm / Raspberry Pi OS machine. It installs what it needs
# (apt packages, then the project with every extra into ./.venv) and runs pytest; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# apt packages the tests use: a real broker and client, offline datasets, ARM emulation, sshd for the
# fleet tests, systemd-analyze, ffmpeg for test clips, GStreamer's RTSP server (a real RTSP camera on loopback,
# run with the system python3). Only missing ones are installed.
APT_PACKAGES="mosquitto mosquitto-clients dataset-fashion-mnist qemu-user-static openssh-server openssh-client iproute2 systemd ffmpeg cloud-init strace python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "tests/run.sh: installing apt packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY="${PYTHON:-python3}"
VENV="${EDGE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" 2>/dev/null || { $SUDO apt-get install -y -qq python3-venv >/dev/null; "$PY" -m venv "$VENV"; }
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[trainer,deploy,dev]'

# Home Assistant's own code validates our MQTT discovery payloads and creates the sensors (tests/edge). HA
# needs Python 3.13 (pyenv's here); built once into a cache (about 4 minutes), skipped with a reason without one.
if [ -z "${EDGE_HA_PYTHON:-}" ]; then
  HA_VENV="${EDGE_HA_VENV:-$HOME/.cache/edge-daemon/ha-venv}"
  ha_ok() { "$HA_VENV/bin/python" -c "import homeassistant.components.mqtt.sensor" >/dev/null 2>&1; }
  if ! ha_ok; then
    rm -rf "$HA_VENV"; mkdir -p "$(dirname "$HA_VENV")"
    bash tests/support/homeassistant/install_ha.sh "$HA_VENV" >/dev/null 2>&1 || true
  fi
  if ha_ok; then export EDGE_HA_PYTHON="$HA_VENV/bin/python"
  else echo "tests/run.sh: no Home Assistant venv (needs a Python 3.13): its checks will skip"; fi
fi

"$VENV/bin/python" -m ruff check .
exec "$VENV/bin/python" -m pytest "$@"
