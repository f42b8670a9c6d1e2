"""Synthetic data drawn from a planted machine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nemm._checks import shown
from nemm._logdomain import sigmoid

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.machine import Machine

# --------------------------------------------------------------------------
# Synthetic data from a planted machine
# --------------------------------------------------------------------------


def planted_model(
    D: int,
    L: int,
    seed: int,
    *,
    hidden: str = "onehot",
    separation: float = 2.0,
    weights: Sequence[float] | None = None,
) -> tuple[Machine, np.ndarray]:
    """The planted machine behind :func:`planted` and its stationary hidden distribution.

    Every hidden unit gets a random prototype: a uniformly random sign pattern
    ``s in {-1, +1}^D``, and ``w[:, alpha] = separation * s``, so a one-hot state
    draws each pixel as 1 with probability ``sigmoid(+-separation)`` (0.88 or 0.12
    by default) and two prototypes differ in about D/2 pixels: the states are well
    separated for any D of a few dozen or more.

    * ``hidden="onehot"``: ``a = 0``, and the x -> z kernel is the exact posterior
      of the states, ``Abar(x, z) = pi(z) A(z, x) / sum_z' pi(z') A(z', x)``
      (``wbar = w.T``, ``abar(z) = ln pi(z) - sum_i ln(1 + exp(w_iz)) + wbar_z . xbar``,
      centered on ``xbar = 1/2``). Then ``pi(z) A(z, x) = p(x) Abar(x, z)`` holds
      exactly: the chain obeys detailed balance and its stationary hidden
      distribution is exactly ``pi`` (uniform unless ``weights`` is given), so
      ``ln p(x) = logsumexp_z [ln pi(z) + log A(z, x)]`` (appendix A3) is exact.
    * ``hidden="binary"``: L independent hidden bits, ``z`` uniform over the
      ``2**L`` states, field ``w z + a`` with ``a = -w.sum(axis=1) / 2`` (symmetric
      around zero). The returned machine's x -> z kernel is the factorized
      (mean-field) approximation ``wbar = w.T``; the data of :func:`planted` are
      drawn from the uniform prior, and ``pi`` is that uniform prior.

    Parameters
    ----------
    D : int
        Visible bits.
    L : int
        Hidden states (one-hot) or hidden bits (binary, at most 16 so that ``pi`` is a vector).
    seed : int
        Seed of the prototypes (the data of :func:`planted` use a derived stream).
    hidden : {"onehot", "binary"}
    separation : float
        Magnitude of the weights (positive).
    weights : sequence of float, optional
        One-hot only: ``pi``, the mixing weights of the states (positive; normalized here).

    Returns
    -------
    machine : Machine
        Ready to sample and score (``machine.score_samples(X, pbar=pi)`` is the exact ln p).
    pi : numpy.ndarray, shape (L,) or (2**L,)
        Its stationary hidden distribution (one-hot) or the prior of the data (binary).
    """
    from nemm._checks import as_float, as_int, as_seed
    from nemm.machine import Machine

    D = as_int(D, "D", minimum=1)
    L = as_int(L, "L", minimum=1)
    checked_seed = as_seed(seed, "seed")
    if checked_seed is None:
        raise TypeError("seed must be an integer: the planted machine is fixed by it")
    seed = checked_seed
    sep = as_float(separation, "separation", lower=0.0)
    if hidden not in ("onehot", "binary"):
        raise ValueError(f"hidden must be 'onehot' or 'binary', got {hidden!r}")
    if hidden == "onehot" and L < 2:
        raise ValueError("a one-hot planted machine needs L >= 2")
    if hidden == "binary" and L > 16:
        raise ValueError(f"a binary planted machine supports L <= 16 (2**L prior states), got {L}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504C414E]))  # "PLAN": the prototype stream
    w = sep * (2.0 * rng.integers(0, 2, size=(D, L)) - 1.0)
    xbar = np.full(D, 0.5)
    if hidden == "onehot":
        if weights is None:
            pi = np.full(L, 1.0 / L)
        else:
            pi = np.asarray(weights, dtype=np.float64)
            if pi.shape != (L,) or not np.isfinite(pi).all() or (pi <= 0).any():
                raise ValueError(f"weights must be {L} positive finite numbers, got {shown(weights)}")
            pi = pi / pi.sum()
        a = np.zeros(D)
        # ln(1 + e^w) in the log domain: logaddexp(0, w).
        abar = np.log(pi) - np.logaddexp(0.0, w).sum(axis=0) + w.T @ xbar
        m = Machine.from_params(
            w, a, w.T.copy(), abar, xbar, hidden="onehot", centered=True, random_state=seed
        )
        return m, pi
    if weights is not None:
        raise ValueError("weights apply to one-hot planted machines only")
    a = -0.5 * w.sum(axis=1)
    m = Machine.from_params(
        w, a, w.T.copy(), np.zeros(L), xbar, hidden="binary", centered=True, random_state=seed
    )
    return m, np.full(2**L, 2.0**-L)


def planted(
    D: int,
    L: int,
    n: int,
    seed: int,
    *,
    hidden: str = "onehot",
    separation: float = 2.0,
    weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary data drawn from a planted machine (:func:`planted_model`), for tests of scale and recovery.

    Each row is an independent draw of the planted model's stationary pair:
    ``z ~ pi``, then ``x ~ A(z, .)`` (independent pixels with means
    ``sigmoid(w z + a)``, eq. 14). For one-hot states this is exactly the
    machine's stationary visible distribution, whose ``ln p`` is
    ``planted_model(...)[0].score_samples(X, pbar=pi)``.

    Parameters
    ----------
    D, L, seed, hidden, separation, weights
        As in :func:`planted_model` (the same arguments give the same machine).
    n : int
        Number of rows.

    Returns
    -------
    X : numpy.ndarray of uint8, shape (n, D)
    z : numpy.ndarray of int64, shape (n,)
        The planted hidden state of every row: the index (one-hot) or the code
        ``sum_b z_b 2**b`` (binary).
    """
    from nemm._checks import as_int, check_memory

    n = as_int(n, "n", minimum=1)
    machine, pi = planted_model(D, L, seed, hidden=hidden, separation=separation, weights=weights)
    D = int(machine.n_visible_)
    check_memory(n * D * 2, f"{n} planted rows of {D} bits", "ask for fewer rows")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x44415441]))  # "DATA": the draws
    z = rng.choice(pi.size, size=n, p=pi).astype(np.int64)
    w, a = machine.w_, machine.a_
    X = np.empty((n, D), dtype=np.uint8)
    block = max(1, (1 << 20) // max(D, 1))  # rows per block: float temporaries of 8 MiB, whatever n
    for lo in range(0, n, block):
        zz = z[lo : lo + block]
        if hidden == "onehot":
            h = w[:, zz].T + a
        else:
            bits = ((zz[:, None] >> np.arange(L)) & 1).astype(np.float64)
            h = bits @ w.T + a
        mu = sigmoid(h)
        X[lo : lo + block] = rng.random(mu.shape) < mu
    return X, z
