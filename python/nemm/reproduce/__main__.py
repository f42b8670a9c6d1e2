"""``python -m nemm.reproduce [...]``: the same as ``nemm reproduce [...]``."""

import sys

from nemm.cli import main

sys.exit(main(["reproduce", *sys.argv[1:]]))
