"""A dependency-free progress bar on stderr (tqdm is used when installed)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Minimal progress bar: ``update(n, note)`` then ``close()``.

    Uses tqdm when it is importable; otherwise redraws one line on stderr at most
    ten times a second. Disabled bars cost nothing.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool = True) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.n = 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._bar = None
            else:
                self._bar = tqdm(total=total, desc=desc, leave=True, file=sys.stderr)

    def update(self, n: int = 1, note: str = "") -> None:
        if not self.enabled:
            return
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and self.n < self.total:
            return
        self._last = now
        frac = self.n / self.total if self.total else 1.0
        elapsed = now - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{self.desc}: [{bar:<30}] {self.n}/{self.total} {elapsed:5.1f}s eta {eta:5.1f}s {note}  ")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()
