"""What Machine and RBM share as estimators: one lock per instance, and the structural-setting check."""

from __future__ import annotations

import functools
from typing import Any, Callable


def locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` holding the instance's ``_lock``: one engine call at a time per model."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def same_setting(a: Any, b: Any) -> bool:
    """``a == b`` for settings, False where the comparison itself fails (an array against a number)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
