"""``python -m bench.prepare``."""

import sys

from bench.prepare.cli import main

sys.exit(main())
