"""``python -m nemm``: the command line."""

import sys

from nemm.cli import main

sys.exit(main())
