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


def log_mean_exp(log_w: np.ndarray) -> tuple[float, float]:
    """``(ln mean(w), std(w) / (sqrt(n) mean(w)))`` of weights given by their logs ``log_w`` (1-d).

    The log of an importance-sampling mean and its delta-method relative error (the standard error
    of the log). All weights zero: ``(-inf, inf)``; a single weight has no error (``inf``).
    """
    top = float(log_w.max())
    if not np.isfinite(top):
        return float("-inf"), float("inf")
    w = np.exp(log_w - top)
    mean = float(w.mean())
    rel = float(w.std(ddof=1) / (np.sqrt(w.size) * mean)) if w.size > 1 else float("inf")
    return top + float(np.log(mean)), rel


def sigmoid(h: np.ndarray) -> np.ndarray:
    """The logistic function in its tanh form: no overflow for any ``h``."""
    return 0.5 * (1.0 + np.tanh(0.5 * h))
