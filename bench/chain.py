#!/usr/bin/env python
"""Chain benchmark: the same as ``nemm bench`` (see ``python bench/chain.py --help``).

    python bench/chain.py --quick            # a few seconds
    python bench/chain.py --json out.json    # full run, about a minute
"""

from __future__ import annotations

import sys

from nemm import _bench

if __name__ == "__main__":
    sys.exit(_bench.main(sys.argv[1:]))
