"""Log-domain helpers shared by the numpy parts of nemm (exact enumeration, baselines, diagnostics)."""

from __future__ import annotations

import numpy as np


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """``ln sum exp(a)`` along ``axis``; ``-inf`` entries are allowed, even a whole row of them."""
    amax = np.max(a, axis=axis, keepdims=True)
    amax = np.where(np.isfinite(amax), amax, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - amax), axis=axis, keepdims=True)) + amax
    return np.squeeze(out, axis=axis)


def logit(p: np.ndarray) -> np.ndarray:
    """``ln(p / (1 - p))`` as a difference of logs."""
    return np.log(p) - np.log1p(-p)


def softplus(h: np.ndarray) -> np.ndarray:
    """ln(1 + e^h) without overflow, elementwise."""
    return np.maximum(h, 0.0) + np.log1p(np.exp(-np.abs(h)))
