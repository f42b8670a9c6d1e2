"""Markov-chain math of the hidden-state chain (spec "Diagnostics"): counts, M, pbar, sigma, tau, Tr(M)/L.

Every function here is a pure array function: it takes transition counts,
transition matrices, trajectories or log-likelihood tables, never a model, so
that it can be checked against exact answers and reused on the output of any
sampler. The model-level wrappers that run a machine's chain live in
:mod:`nemm.diagnostics`. Equation numbers (eq. N) are those of Baiesi & Rosso,
arXiv:2512.11415.

Conventions
-----------
* ``counts[z', z]`` is the number of observed transitions ``z' -> z`` (row =
  current hidden state, column = next), and ``M[z', z]`` the probability that
  ``z'`` is followed by ``z`` (eq. 3), so rows of ``M`` sum to one.
* ``pbar`` is the left eigenvector of ``M`` with eigenvalue 1 (``pbar M = pbar``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import _core

__all__ = [
    "DENSE_EIG_LIMIT",
    "DENSE_STATE_LIMIT",
    "CountSummary",
    "EntropyProduction",
    "count_summary_sparse",
    "decorrelation_time",
    "entropy_production",
    "entropy_production_from_counts",
    "known_rows",
    "mean_self_transition",
    "occupancy",
    "occupancy_from_trajectory",
    "rao_blackwell_transition_matrix",
    "segment_error",
    "stationary_distribution",
    "summarize_counts",
    "summarize_trajectory",
    "transition_counts",
    "transition_counts_sparse",
    "transition_matrix",
]

#: Largest number of hidden states for which counts are kept as a dense (S, S) matrix.
DENSE_STATE_LIMIT = 4096
#: Above this many (visited) states, dense eigen-decompositions are avoided (they cost O(S^3)).
DENSE_EIG_LIMIT = 512

# Tolerance on the row sums of a matrix presented as stochastic.
_ROW_SUM_ATOL = 1e-8
# |lambda_2| at or above 1 - this is a deterministic cycle (or a reducible chain): tau = inf.
_UNIT_MODULUS_TOL = 1e-12
# |lambda_2| at or below this is treated as an exact zero: tau = 0 (a rank-one M mixes in one step).
_ZERO_MODULUS_TOL = 1e-12


# --------------------------------------------------------------------------- validation


def _as_square(M: object, name: str) -> np.ndarray:
    arr = np.asarray(M, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_counts(counts: object) -> np.ndarray:
    arr = _as_square(counts, "counts")
    if (arr < 0).any():
        raise ValueError("counts must be non-negative")
    return arr


def _as_stochastic(M: object, name: str = "M") -> np.ndarray:
    arr = _as_square(M, name)
    if (arr < 0).any():
        raise ValueError(f"{name} must have non-negative entries")
    rows = arr.sum(axis=1)
    if not np.allclose(rows, 1.0, rtol=0.0, atol=_ROW_SUM_ATOL):
        worst = int(np.argmax(np.abs(rows - 1.0)))
        raise ValueError(f"{name} must be row-stochastic; row {worst} sums to {rows[worst]!r}")
    return arr


def _as_distribution(p: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return arr


def _check_pseudocount(pseudocount: float) -> float:
    pc = float(pseudocount)
    if not np.isfinite(pc) or pc < 0:
        raise ValueError(f"pseudocount must be finite and >= 0, got {pseudocount!r}")
    return pc


# --------------------------------------------------------------------------- counting


def transition_counts(traj: object, n_states: int) -> np.ndarray:
    """Count the transitions ``z(t) -> z(t+1)`` along hidden trajectories (C++ core).

    Parameters
    ----------
    traj : array_like of int, shape (T,) or (n_chains, T)
        State codes ``0 .. n_states - 1`` in time order; rows are independent
        chains (no transition is counted across rows).
    n_states : int
        Number of hidden states ``S`` (at most 4096; beyond, see
        :func:`transition_counts_sparse`).

    Returns
    -------
    numpy.ndarray of float64, shape (S, S)
        ``counts[z', z]``: number of times ``z'`` is followed by ``z``
        (the raw material of the empirical M of the spec's "Diagnostics").
    """
    t = _as_trajectory(traj, n_states)
    if n_states > DENSE_STATE_LIMIT:
        raise ValueError(
            f"dense counts are limited to {DENSE_STATE_LIMIT} states; use transition_counts_sparse"
        )
    return np.asarray(_core.count_transitions(t.astype(np.uint64), int(n_states)), dtype=np.float64)


def transition_counts_sparse(traj: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transition counts of a large state space (binary hidden states, L > 12), as triplets.

    Parameters
    ----------
    traj : array_like of int, shape (T,) or (n_chains, T)
        Non-negative state codes in time order; rows are independent chains.

    Returns
    -------
    from_state, to_state : ndarray of uint64
    count : ndarray of int64
        One entry per observed transition, sorted by ``(from_state, to_state)``.
    """
    t = np.asarray(traj)
    if t.ndim not in (1, 2) or (t.size and not np.issubdtype(t.dtype, np.integer)):
        raise ValueError(f"traj must be a 1-d or 2-d integer array of state codes, got {t.dtype} {t.shape}")
    if t.size and t.min() < 0:
        raise ValueError("traj contains negative state codes")
    t = np.ascontiguousarray(np.atleast_2d(t), dtype=np.uint64)
    frm, to, cnt = _core.count_transitions_sparse(t)
    return np.asarray(frm, dtype=np.uint64), np.asarray(to, dtype=np.uint64), np.asarray(cnt, dtype=np.int64)


def _as_trajectory(traj: object, n_states: int) -> np.ndarray:
    if int(n_states) != n_states or n_states <= 0:
        raise ValueError(f"n_states must be a positive integer, got {n_states!r}")
    t = np.asarray(traj)
    if t.ndim not in (1, 2):
        raise ValueError(f"traj must be one- or two-dimensional (n_chains, T), got shape {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        if not np.array_equal(t, np.round(t)):
            raise ValueError("traj must contain integer state codes")
    t = np.atleast_2d(t.astype(np.int64))
    if t.size and (t.min() < 0 or t.max() >= n_states):
        raise ValueError(f"traj contains state codes outside 0..{n_states - 1}")
    return np.ascontiguousarray(t)


def occupancy(counts: object) -> np.ndarray:
    """Empirical occupancy ``pbar_e(z)`` from transition counts.

    The occupancy of ``z'`` is the fraction of transitions that start in
    ``z'`` (row sums of ``counts`` over their total). It equals
    :func:`occupancy_from_trajectory` on the trajectory without its last state.

    Parameters
    ----------
    counts : array_like, shape (S, S)
        Transition counts ``counts[z', z]``.

    Returns
    -------
    numpy.ndarray, shape (S,)
        Occupancy, summing to one.

    Raises
    ------
    ValueError
        If there are no counts at all.
    """
    c = _as_counts(counts)
    total = c.sum()
    if total <= 0:
        raise ValueError("counts are all zero: no occupancy can be estimated")
    return c.sum(axis=1) / total


def occupancy_from_trajectory(traj: object, n_states: int) -> np.ndarray:
    """Empirical occupancy ``pbar_e(z)``: the fraction of time steps spent in each state.

    Parameters
    ----------
    traj : array_like of int, shape (T,) or (n_chains, T)
        State codes ``0 .. n_states - 1``; must not be empty.
    n_states : int
        Number of hidden states ``S``.

    Returns
    -------
    numpy.ndarray, shape (S,)
    """
    t = _as_trajectory(traj, n_states).ravel()
    if t.size == 0:
        raise ValueError("traj is empty")
    return np.bincount(t, minlength=n_states) / t.size


def transition_matrix(counts: object, *, pseudocount: float = 0.0) -> np.ndarray:
    """Empirical transition matrix: ``counts`` (plus a pseudo-count) normalized per row.

    Parameters
    ----------
    counts : array_like, shape (S, S)
        Transition counts ``counts[z', z]`` (row = current state).
    pseudocount : float, default 0
        Added to every entry before normalizing (then no row is empty).

    Returns
    -------
    numpy.ndarray, shape (S, S)
        Row-stochastic where the row was measured. A row with no counts at all
        (a state never left: never visited, or visited only as the last state of
        a trajectory) is **unknown** and filled with NaN, never with a made-up
        distribution: :func:`known_rows` gives the mask, and
        :func:`decorrelation_time`, :func:`mean_self_transition` and
        :func:`stationary_distribution` use the measured rows only.
    """
    c = _as_counts(counts) + _check_pseudocount(pseudocount)
    rows = c.sum(axis=1)
    empty = rows <= 0
    M = np.divide(c, rows[:, None], out=np.full_like(c, np.nan), where=~empty[:, None])
    M[empty] = np.nan
    return M


def known_rows(M: object) -> np.ndarray:
    """Mask of the measured rows of a (counted) transition matrix: rows without NaN.

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix whose unknown rows (states never left) are NaN,
        as :func:`transition_matrix` returns it.

    Returns
    -------
    numpy.ndarray of bool, shape (S,)
    """
    arr = np.asarray(M, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"M must be a non-empty square matrix, got shape {arr.shape}")
    return np.asarray(~np.isnan(arr).any(axis=1), dtype=bool)


def _as_partial_stochastic(M: object) -> tuple[np.ndarray, np.ndarray]:
    """``(M, known)``: ``M`` validated as row-stochastic on its measured (non-NaN) rows."""
    arr = np.asarray(M, dtype=np.float64)
    known = known_rows(arr)
    # Unknown rows become self-loops for the check only: the measured rows must be stochastic.
    padded = arr.copy()
    idx = np.flatnonzero(~known)
    padded[idx] = 0.0
    padded[idx, idx] = 1.0
    _as_stochastic(padded)
    return arr, known


def _measured_block(M: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(states, P)``: the chain restricted to states whose rows are measured, renormalized.

    Mass leaving for a state whose row is unknown (a state seen only last) is
    dropped and the row renormalized; a row that leads only to unknown rows is
    dropped in turn, until the block is closed. ``states`` may be empty.
    """
    keep = known.copy()
    while True:
        idx = np.flatnonzero(keep)
        sub = M[np.ix_(idx, idx)]
        r = sub.sum(axis=1)
        dead = r <= 0
        if not dead.any():
            return idx, sub / r[:, None] if idx.size else sub
        keep[idx[dead]] = False


def rao_blackwell_transition_matrix(abar_probs_per_state: Sequence[object] | np.ndarray) -> np.ndarray:
    """Rao-Blackwell estimate of ``M`` (spec, end of "Exact answers for tests").

    ``M(z', z) = E_{x ~ A(z', .)}[Abar(x, z)]`` (eq. 3) is estimated by the mean
    of the exact probabilities ``Abar(x_k, .)`` over draws ``x_k ~ A(z', .)``,
    which removes the noise of sampling ``z``.

    Parameters
    ----------
    abar_probs_per_state : sequence of S arrays, each (n_draws, S), or array (S, n_draws, S)
        Entry ``z'`` holds ``Abar(x_k, .)`` for the draws ``x_k ~ A(z', .)``;
        each row must be a probability vector. The number of draws may differ
        between states but must be at least one.

    Returns
    -------
    numpy.ndarray, shape (S, S)
        Row-stochastic estimate of ``M``.
    """
    blocks = list(abar_probs_per_state)
    S = len(blocks)
    if S == 0:
        raise ValueError("abar_probs_per_state is empty")
    M = np.empty((S, S))
    for zp, block in enumerate(blocks):
        b = np.asarray(block, dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != S or b.shape[0] == 0:
            raise ValueError(f"abar_probs_per_state[{zp}] must have shape (n_draws >= 1, {S}), got {b.shape}")
        if not np.isfinite(b).all() or (b < 0).any():
            raise ValueError(f"abar_probs_per_state[{zp}] must be finite and non-negative")
        if not np.allclose(b.sum(axis=1), 1.0, rtol=0.0, atol=_ROW_SUM_ATOL):
            raise ValueError(f"rows of abar_probs_per_state[{zp}] must sum to one")
        M[zp] = b.mean(axis=0)
    # Renormalize away the rounding of the mean so that M is stochastic to machine precision.
    return M / M.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- spectra


def stationary_distribution(M: object) -> np.ndarray:
    """Stationary distribution ``pbar`` of a row-stochastic ``M`` (``pbar M = pbar``).

    Computed as the left eigenvector of ``M`` (eigenvector of ``M.T``) whose
    eigenvalue is closest to 1, made real, non-negative and normalized, then
    refined by one multiplication by ``M`` (which keeps it a distribution and
    removes residual eigen-solver noise). For a reducible chain the stationary
    distribution is not unique and one of them is returned.

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix; unknown rows (NaN, states never left, see
        :func:`transition_matrix`) are allowed: ``pbar`` is then that of the
        chain restricted to the measured states (mass sent to a state whose row
        is unknown is dropped and the row renormalized), and 0 on the others.

    Returns
    -------
    numpy.ndarray, shape (S,)
        Non-negative, summing to one; all NaN when no measured row stays among
        measured states (nothing is known).
    """
    P, known = _as_partial_stochastic(M)
    if known.all():
        return _perron_vector(P)
    idx, block = _measured_block(P, known)
    if idx.size == 0:
        return np.full(P.shape[0], np.nan)  # no measured row stays among measured states: unknown
    out = np.zeros(P.shape[0])
    out[idx] = _perron_vector(block)
    return out


def _perron_vector(P: np.ndarray) -> np.ndarray:
    """Left eigenvector of eigenvalue 1 of a row-stochastic ``P``, as a distribution."""
    vals, vecs = np.linalg.eig(P.T)
    k = int(np.argmin(np.abs(vals - 1.0)))
    v = np.real(vecs[:, k])
    # The Perron vector has one sign; choose it by the total so that the bulk is positive.
    if v.sum() < 0:
        v = -v
    v = np.clip(v, 0.0, None)
    total = v.sum()
    if not total > 0:  # pragma: no cover - eig always returns a vector with a positive part
        raise np.linalg.LinAlgError("could not extract a stationary distribution")
    v = (v / total) @ P
    return v / v.sum()


def decorrelation_time(M: object) -> float:
    """Decorrelation time ``tau = -1 / ln|lambda_2|`` (eq. 23).

    ``lambda_2`` is the eigenvalue of ``M`` second largest in modulus (the
    largest is 1 for a stochastic matrix).

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix. Unknown rows (NaN, states never left, see
        :func:`transition_matrix`) are allowed: ``tau`` is then that of the
        chain restricted to the measured states (mass sent to a state whose row
        is unknown is dropped and the row renormalized).

    Returns
    -------
    float
        ``inf`` when ``|lambda_2| >= 1 - 1e-12`` (a deterministic cycle or a
        reducible chain never decorrelates; never a negative number), and when
        ``M`` has unknown rows and no measured state is ever left (a stuck
        chain); ``0.0`` when ``|lambda_2| <= 1e-12`` (a rank-one ``M`` forgets
        its state in one step) or when there is a single state; NaN when fewer
        than two measured states remain (nothing to measure).
    """
    P, known = _as_partial_stochastic(M)
    if known.all():
        return _tau_of_spectrum(P)
    if not known.any():
        return float("nan")
    if (np.diag(P)[known] >= 1.0 - _UNIT_MODULUS_TOL).all():
        return float("inf")  # every measured state only ever followed itself
    idx, block = _measured_block(P, known)
    return _tau_of_spectrum(block) if idx.size >= 2 else float("nan")


def _tau_of_spectrum(P: np.ndarray) -> float:
    """Eq. 23 on a fully known row-stochastic ``P``."""
    if P.shape[0] == 1:
        return 0.0
    mods = np.sort(np.abs(np.linalg.eigvals(P)))[::-1]
    lam2 = float(mods[1])
    if lam2 >= 1.0 - _UNIT_MODULUS_TOL:
        return float("inf")
    if lam2 <= _ZERO_MODULUS_TOL:
        return 0.0
    return -1.0 / float(np.log(lam2))


def mean_self_transition(M: object) -> float:
    """Mean self-transition probability ``Tr(M) / S`` (eq. 24).

    Compare with ``1/S``, the value for hidden states drawn at random. ``S``
    is the number of hidden states (``L`` for one-hot states).

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix. Unknown rows (NaN, states never left, see
        :func:`transition_matrix`) are left out: the mean is over the measured
        rows (``1`` for a chain that never leaves its state).

    Returns
    -------
    float
        NaN when no row is measured.
    """
    P, known = _as_partial_stochastic(M)
    if not known.any():
        return float("nan")
    return float(np.mean(np.diag(P)[known]))


# --------------------------------------------------------------------------- entropy production


@dataclass(frozen=True)
class EntropyProduction:
    """Plug-in entropy production rate with its bookkeeping (eq. 21).

    Attributes
    ----------
    sigma : float
        Entropy production rate per step (nats); ``inf`` when a one-way pair
        is present and ``pseudocount == 0``.
    n_one_way : int
        Pairs ``z' < z`` observed in exactly one direction.
    n_pairs_observed : int
        Pairs ``z' < z`` observed in at least one direction.
    pseudocount : float
        Pseudo-count added to both directions of every one-way pair.
    sigma_two_way : float
        The same sum restricted to the pairs observed in both directions, without
        pseudo-counts: a lower figure that ignores the one-way pairs entirely, for
        comparison with estimators that drop them.
    """

    sigma: float
    n_one_way: int
    n_pairs_observed: int
    pseudocount: float
    sigma_two_way: float = float("nan")


def _sigma_from_fluxes(J: np.ndarray, *, one_way_pairs: Literal["inf", "skip"] = "inf") -> float:
    """``sum_{i<j} (J_ij - J_ji) ln(J_ij / J_ji)`` with the zero rules of eq. 21.

    A pair with flux in one direction only makes sigma infinite (``"inf"``), or
    is left out of the sum (``"skip"``: sigma over the two-way pairs only).
    """
    iu = np.triu_indices(J.shape[0], k=1)
    f, b = J[iu], J.T[iu]
    if one_way_pairs == "inf" and ((f > 0) != (b > 0)).any():
        return float("inf")
    both = (f > 0) & (b > 0)
    f, b = f[both], b[both]
    # Each term is >= 0 mathematically; sum them as computed (rounding can only make tiny ones +-1e-30).
    return float(np.sum((f - b) * (np.log(f) - np.log(b))))


def entropy_production(M: object, pbar: object) -> float:
    """Exact entropy production rate of a stationary chain (eq. 21).

    ``sigma = sum_{z' < z} [J(z', z) - J(z, z')] ln(J(z', z) / J(z, z'))`` with
    the probability flux ``J(z', z) = pbar(z') M(z', z)``.

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix.
    pbar : array_like, shape (S,)
        Its stationary distribution (not checked to be stationary).

    Returns
    -------
    float
        ``sigma >= 0``; ``0`` exactly under detailed balance up to rounding.
        A pair with flux in one direction only makes it ``inf``; a pair with
        flux in neither direction contributes nothing, and self-transitions
        never contribute.
    """
    P = _as_stochastic(M)
    p = _as_distribution(pbar, P.shape[0], "pbar")
    return _sigma_from_fluxes(p[:, None] * P)


def entropy_production_from_counts(counts: object, *, pseudocount: float = 0.5) -> EntropyProduction:
    """Plug-in estimate of the entropy production rate (eq. 21) from transition counts.

    The flux ``pbar(z') M(z', z)`` is estimated by the joint frequency
    ``n(z' -> z) / n_total`` (the product of the empirical occupancy and the
    empirical ``M``). Treatment of unbalanced pairs, stated exactly:

    * a pair ``z' < z`` seen in exactly one direction (a *one-way* pair) has
      ``pseudocount`` added to **both** of its directions, ``n(z'->z)`` and
      ``n(z->z')``; no other count is changed;
    * ``n_total`` is the total of all counts after that addition (including
      self-transitions, which never contribute to sigma);
    * a pair seen in neither direction contributes nothing;
    * with ``pseudocount = 0`` any one-way pair gives ``sigma = inf``.

    The number of one-way pairs is returned beside sigma so that the reader
    can judge how much of it rests on the pseudo-count.

    Parameters
    ----------
    counts : array_like, shape (S, S)
        Transition counts ``counts[z', z]``.
    pseudocount : float, default 0.5
        Non-negative pseudo-count for one-way pairs (0.5 is the Jeffreys/KT choice).

    Returns
    -------
    EntropyProduction
    """
    c = _as_counts(counts).copy()
    pc = _check_pseudocount(pseudocount)
    sigma_two_way = _sigma_two_way(c)
    iu = np.triu_indices(c.shape[0], k=1)
    f, b = c[iu], c.T[iu]
    one_way = (f > 0) != (b > 0)
    observed = (f > 0) | (b > 0)
    n_one_way = int(one_way.sum())
    rows, cols = iu[0][one_way], iu[1][one_way]
    c[rows, cols] += pc
    c[cols, rows] += pc
    total = c.sum()
    if total <= 0:
        raise ValueError("counts are all zero: no entropy production can be estimated")
    return EntropyProduction(
        sigma=_sigma_from_fluxes(c / total),
        n_one_way=n_one_way,
        n_pairs_observed=int(observed.sum()),
        pseudocount=pc,
        sigma_two_way=sigma_two_way,
    )


def _sigma_two_way(counts: np.ndarray) -> float:
    """Eq. 21 over the pairs seen in both directions only (fluxes from the raw counts)."""
    total = counts.sum()
    if total <= 0:
        return float("nan")
    return _sigma_from_fluxes(counts / total, one_way_pairs="skip")


# --------------------------------------------------------------------------- error bars


def segment_error(values: object) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Mean and standard error from independent segment estimates.

    Split a long run into ``n`` segments long compared with the decorrelation
    time, estimate the quantity on each, and pass the ``n`` estimates here:
    the error bar is ``std(ddof=1) / sqrt(n)``.

    Parameters
    ----------
    values : array_like, shape (n, ...)
        One estimate per segment along axis 0 (scalars or arrays).

    Returns
    -------
    mean, stderr : float or numpy.ndarray
        Floats for one-dimensional input. ``stderr`` is NaN where it is
        undefined: a single segment, or non-finite segment values.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or v.shape[0] == 0:
        raise ValueError("values must have at least one segment along axis 0")
    n = v.shape[0]
    finite = np.isfinite(v).all(axis=0)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = v.mean(axis=0)
        if n > 1:
            centered = np.where(finite, v - np.where(finite, mean, 0.0), 0.0)
            stderr = np.sqrt((centered**2).sum(axis=0) / (n - 1) / n)
            stderr = np.where(finite, stderr, np.nan)
        else:
            stderr = np.full(np.shape(mean), np.nan)
    if v.ndim == 1:
        return float(mean), float(stderr)
    return mean, stderr


# --------------------------------------------------------------------------- one block of counts


@dataclass(frozen=True)
class CountSummary:
    """What the counts of one stretch of chain say (eqs. 21, 23, 24); see :func:`summarize_counts`.

    Attributes
    ----------
    M : numpy.ndarray, shape (S, S)
        Row-normalized counts (no pseudo-count); the row of a state never left
        (never visited, or seen only last) is unknown: NaN.
    entropy : EntropyProduction
        sigma from the counts with the pseudo-count on one-way pairs (eq. 21).
    tau : float
        Decorrelation time (eq. 23) of the measured rows; ``inf`` when no state
        is ever left; NaN above :data:`DENSE_EIG_LIMIT` states.
    self_transition : float
        ``Tr(M) / S`` (eq. 24) over the measured rows (``rows_known``): 1 for a
        chain that never leaves its state.
    pbar : numpy.ndarray or None
        Left eigenvector of ``M`` (only with ``stationary=True`` and at most
        :data:`DENSE_EIG_LIMIT` states).
    """

    M: np.ndarray
    entropy: EntropyProduction
    tau: float
    self_transition: float
    pbar: np.ndarray | None = None
    rows_known: np.ndarray | None = None


def summarize_counts(
    counts: object, *, pseudocount: float = 0.5, stationary: bool = False, n_states: int | None = None
) -> CountSummary:
    """M, sigma, tau and Tr(M)/S of one block of transition counts.

    The whole chain and each time window of the error bars go through this one
    function. Above :data:`DENSE_EIG_LIMIT` states no O(S^3) eigen-decomposition
    is made: ``tau`` is NaN and ``pbar`` None.

    Parameters
    ----------
    counts : array_like, shape (S, S)
        Transition counts ``counts[z', z]``.
    pseudocount : float
        For the one-way pairs of :func:`entropy_production_from_counts`.
    stationary : bool
        Also compute ``pbar`` (:func:`stationary_distribution` of ``M``).
    n_states : int, optional
        Number of states of the chain when ``counts`` cover only its visited
        states (relabelled): a chain that was never seen to leave its state has
        ``tau = inf`` even when a single state was visited (default: ``S``).

    Returns
    -------
    CountSummary
        ``rows_known`` marks the states with at least one outgoing count.
    """
    M = transition_matrix(counts)
    ep = entropy_production_from_counts(counts, pseudocount=pseudocount)
    dense = M.shape[0] <= DENSE_EIG_LIMIT
    pbar = stationary_distribution(M) if (stationary and dense) else None
    c = np.asarray(counts, dtype=np.float64)
    never_left = c.sum() > 0 and not (c - np.diag(np.diag(c))).any()
    if never_left and (M.shape[0] if n_states is None else int(n_states)) > 1:
        tau = float("inf")  # eq. 23 of the stuck chain, whatever its unvisited rows would be
    else:
        tau = decorrelation_time(M) if dense else float("nan")
    return CountSummary(
        M=M,
        entropy=ep,
        tau=float(tau),
        self_transition=mean_self_transition(M),
        pbar=pbar,
        rows_known=known_rows(M),
    )


# ------------------------------------------------------------ large state spaces (sparse counts)


def count_summary_sparse(
    frm: np.ndarray, to: np.ndarray, cnt: np.ndarray, n_states: int, pseudocount: float = 0.5
) -> tuple[float, int, float]:
    """(sigma, n_one_way, Tr(M)/S) of sparse transition counts over ``n_states`` = S states.

    The numbers of :func:`summarize_counts` on the dense (S, S) counts with
    O(transitions) memory (the triples of :func:`transition_counts_sparse`): eq. 21
    with ``pseudocount`` added to both directions of each one-way pair (the total
    includes self-transitions and the pseudo-counts), pairs in the dense order
    (row-major over z' < z); Tr(M)/S (eq. 24) as :func:`mean_self_transition`
    gives it: the mean over the states with outgoing counts (a state never left
    has an unknown row and is left out; NaN when there are no counts).
    """
    S, pc = int(n_states), float(pseudocount)
    c = cnt.astype(np.float64)
    frm, to = frm.astype(np.int64), to.astype(np.int64)
    off = frm != to
    lo, hi = np.minimum(frm[off], to[off]), np.maximum(frm[off], to[off])
    up = frm[off] < to[off]  # z' < z: the "forward" entry J[z', z] of the pair
    pairs, inv = np.unique(lo * S + hi, return_inverse=True)  # sorted = the dense triu order
    nf, nb = np.zeros(pairs.size), np.zeros(pairs.size)
    np.add.at(nf, inv[up], c[off][up])
    np.add.at(nb, inv[~up], c[off][~up])
    one_way = (nf > 0) != (nb > 0)
    n_one_way = int(one_way.sum())
    nf[one_way] += pc
    nb[one_way] += pc
    total = c.sum() + 2.0 * pc * n_one_way
    if total <= 0:
        raise ValueError("counts are all zero: no entropy production can be estimated")
    f, b = nf / total, nb / total
    if n_one_way and pc == 0:
        sigma = math.inf
    else:
        both = (f > 0) & (b > 0)
        sigma = float(np.sum((f[both] - b[both]) * (np.log(f[both]) - np.log(b[both]))))
    rows = np.bincount(frm, weights=c, minlength=S)
    diag = np.bincount(frm[~off], weights=c[~off], minlength=S)
    measured = rows > 0
    trace = float(np.mean(diag[measured] / rows[measured])) if measured.any() else math.nan
    return sigma, n_one_way, trace


def summarize_trajectory(
    local: np.ndarray, n_states: int, pseudocount: float = 0.5, n_states_full: int | None = None
) -> tuple[float, int, float, float]:
    """(sigma, n_one_way, tau, Tr(M)/S) of chains (rows) of state labels 0..S-1.

    Up to :data:`DENSE_EIG_LIMIT` states: dense counts and :func:`summarize_counts`
    (tau from the spectrum; ``n_states_full`` is its ``n_states``, the size of the
    chain's space when the labels number its visited states only). Above:
    :func:`count_summary_sparse`, and tau is NaN, as in :func:`summarize_counts`
    (the second eigenvalue of a large M is not computed).
    """
    S = int(n_states)
    if S <= DENSE_EIG_LIMIT:
        part = summarize_counts(transition_counts(local, S), pseudocount=pseudocount, n_states=n_states_full)
        return part.entropy.sigma, part.entropy.n_one_way, part.tau, part.self_transition
    sigma, n_one_way, trace = count_summary_sparse(*transition_counts_sparse(local), S, pseudocount)
    return sigma, n_one_way, math.nan, trace
