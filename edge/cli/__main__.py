"""`python -m edge.cli`: `edge-daemon` with this interpreter."""

import sys

from edge.cli.main import main

sys.exit(main())
