#!/usr/bin/env bash
# Build a Python 3.13 venv with Home Assistant 2026.2.3 for the optional HA tests (tests/edge/mqtt/test_home_assistant.py,
# tests/edge/test_contract.py::test_discovery_passes_home_assistants_own_schema), then run them with
#   EDGE_HA_PYTHON=<venv>/bin/python python3 -m pytest tests/edge
# Usage: tests/support/homeassistant/install_ha.sh [VENV] (default /tmp/ha-venv). The Python 3.13: PY313, else pyenv's
# (PYENV_ROOT, `pyenv root`, ~/.pyenv), else python3.13 on PATH. tests/run.sh runs this into a cache and logs it.
# HA 2026.3+ needs Python >= 3.14.2. Installing HA with its full dependency set makes pip backtrack through
# sdists for a long time, so: HA itself without deps, its pinned core requirements as wheels, then the pinned
# bluetooth stack its http/auth modules import. About 4 minutes and 600 MB.
set -euo pipefail
VENV="${1:-/tmp/ha-venv}"
die() { echo "install_ha.sh: error: $*" >&2; exit 2; }
is313() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; }

# The interpreter: PY313, else pyenv's 3.13.x ($PYENV_ROOT, `pyenv root`, ~/.pyenv), else python3.13 on PATH.
PY313="${PY313:-}"
if [ -n "$PY313" ]; then
  is313 "$PY313" || die "PY313=$PY313 is not a working Python 3.13"
else
  roots=()
  [ -z "${PYENV_ROOT:-}" ] || roots+=("$PYENV_ROOT")
  if command -v pyenv >/dev/null; then roots+=("$(pyenv root)"); fi
  roots+=("$HOME/.pyenv")
  for c in $(for r in "${roots[@]}"; do ls -d "$r"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV; done) python3.13; do
    if is313 "$c"; then PY313="$c"; break; fi
  done
  [ -n "$PY313" ] || die "no Python 3.13 found in ${roots[*]/%//versions} or on PATH: install one (pyenv install 3.13)" \
    "or set PY313=/path/to/python3.13 (or PYENV_ROOT to pyenv's root)"
fi
echo "install_ha.sh: Python 3.13: $PY313"
HA="homeassistant==2026.2.3"
"$PY313" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check --ignore-requires-python)
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --ignore-requires-python "$HA" -d "$tmp"
wheel="$(ls "$tmp"/homeassistant-*.whl)"
unzip -p "$wheel" '*.dist-info/METADATA' | sed -n 's/^Requires-Dist: //p' \
  | grep -v -e '^home-assistant-bluetooth' -e '^uv==' | sed 's/^lru-dict==.*/lru-dict/' > "$tmp/reqs.txt"
"${PIP[@]}" --no-deps "$wheel"
"${PIP[@]}" --only-binary :all: -r "$tmp/reqs.txt" paho-mqtt==2.1.0
"${PIP[@]}" --prefer-binary habluetooth==5.8.0 home-assistant-bluetooth==1.13.1 bleak==2.1.1 \
  bluetooth-adapters==2.1.0 bluetooth-data-tools==1.28.4 bleak-retry-connector==4.4.3 bluetooth-auto-recovery==1.5.3
"$VENV/bin/python" -c "import homeassistant.components.mqtt.sensor" && echo "EDGE_HA_PYTHON=$VENV/bin/python"
