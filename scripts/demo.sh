#!/usr/bin/env bash
# The main job on a fresh Debian bookworm / Raspberry Pi OS machine, with no MQTT broker installed:
# installs the daemon (no TensorFlow) plus the embedded broker into ./.venv, then runs `edge-daemon demo`:
# an MQTT broker on loopback, the daemon on the bundled model and clip, and what a subscriber receives.
# Arguments go to `edge-daemon demo` (e.g. --seconds 30, --broker HOST:PORT, --model M --clip C).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
VENV="${EDGE_VENV:-.venv}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    echo "demo.sh: installing python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
  fi
fi
echo "demo.sh: installing edge-daemon with the demo broker into $VENV (first run takes a minute)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[demo]'
exec "$VENV/bin/edge-daemon" demo "$@"
