"""Home Assistant's own code as a test peer: a venv builder and two scripts run under its Python 3.13."""

from pathlib import Path

HA_TOOLS = Path(__file__).resolve().parent
