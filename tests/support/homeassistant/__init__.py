"""Home Assistant's own code as a test peer: a venv builder and two scripts run under its Python 3.13.

`HA_PYTHON` is that venv's interpreter (EDGE_HA_PYTHON, which tests/run.sh sets after building the venv);
`HA_MISSING` the reason its tests skip without one (tests/run.sh says why it could not build it).
"""

import os
from pathlib import Path

HA_TOOLS = Path(__file__).resolve().parent
HA_PYTHON = os.environ.get("EDGE_HA_PYTHON") or None
HA_MISSING = os.environ.get("EDGE_HA_UNAVAILABLE") or (
    "EDGE_HA_PYTHON unset: run tests/run.sh (it builds Home Assistant's venv with a Python 3.13: pyenv's or "
    "PY313), or build one with tests/support/homeassistant/install_ha.sh VENV and set EDGE_HA_PYTHON=VENV/bin/python"
)
