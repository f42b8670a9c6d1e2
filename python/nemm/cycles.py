"""Probability currents, cycles and their affinities in the hidden-state chain.

Pure functions of a row-stochastic ``M`` (``M[z', z]``: probability that
``z'`` is followed by ``z``, eq. 3) and its stationary ``pbar``, plus the
convergence curves of the entropy production rate (eq. 21) asked for by the
spec section "Entropy production: which estimator". Eq. 21 itself is computed
by :mod:`nemm.diagnostics`; this module only feeds it.

A stationary chain is in detailed balance iff every current vanishes, iff
every cycle affinity is zero (Kolmogorov's criterion); the entropy production
rate is ``sigma = sum_{z' < z} J(z', z) ln(pbar(z') M(z', z) / (pbar(z) M(z, z')))``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._checks import shown
from .markov import (
    _as_distribution,
    _as_stochastic,
    entropy_production,
    entropy_production_from_counts,
    rao_blackwell_transition_matrix,
    stationary_distribution,
    transition_counts,
)

__all__ = [
    "SigmaCurve",
    "cycle_affinity",
    "cycle_current",
    "dominant_cycle",
    "probability_currents",
    "sigma_against_draws",
    "sigma_against_length",
]


def _as_cycle(cycle: Sequence[int], n: int) -> list[int]:
    c = [int(z) for z in cycle]
    if any(z != zz for z, zz in zip(c, cycle)):
        raise ValueError("cycle must list integer states")
    if len(c) > 1 and c[0] == c[-1]:
        c = c[:-1]  # accept a closed notation z0, z1, ..., z0
    if len(c) < 2:
        raise ValueError(f"a cycle needs at least 2 distinct states, got {list(cycle)}")
    if len(set(c)) != len(c):
        raise ValueError(f"cycle must visit each state once, got {list(cycle)}")
    if min(c) < 0 or max(c) >= n:
        raise ValueError(f"cycle states must lie in 0..{n - 1}, got {list(cycle)}")
    return c


def probability_currents(M: object, pbar: object) -> np.ndarray:
    """Net probability currents ``J(z', z) = pbar(z') M(z', z) - pbar(z) M(z, z')``.

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix.
    pbar : array_like, shape (S,)
        Its stationary distribution (not checked to be stationary).

    Returns
    -------
    numpy.ndarray, shape (S, S)
        Antisymmetric (``J = -J.T`` exactly, zero diagonal); zero everywhere iff
        detailed balance holds. For a stationary ``pbar`` every row sums to zero
        (current is conserved at each state).
    """
    P = _as_stochastic(M)
    flux = _as_distribution(pbar, P.shape[0], "pbar")[:, None] * P
    return flux - flux.T


def _has_short_cycle(adj: np.ndarray, max_length: int) -> bool:
    """Whether the directed graph ``adj`` (bool, S x S) has a cycle of at most ``max_length`` edges."""
    reach = adj.astype(np.int64)
    step = reach.copy()
    for _ in range(max_length):
        if np.trace(reach) > 0:
            return True
        reach = np.minimum(reach @ step, 1)  # paths of exactly one more edge
    return False


def _shortest_path(adj: np.ndarray, src: int, dst: int, max_edges: int) -> list[int] | None:
    """Breadth-first path ``src -> ... -> dst`` with at most ``max_edges`` edges; neighbours in index order."""
    prev = {src: -1}
    depth = {src: 0}
    queue = deque([src])
    while queue:
        u = queue.popleft()
        if u == dst:
            path = [u]
            while prev[path[-1]] != -1:
                path.append(prev[path[-1]])
            return path[::-1]
        if depth[u] == max_edges:
            continue
        for v in (int(i) for i in np.flatnonzero(adj[u])):
            if v not in prev:
                prev[v] = u
                depth[v] = depth[u] + 1
                queue.append(v)
    return None


def dominant_cycle(
    M: object, pbar: object, max_length: int | None = None, *, atol: float = 1e-12
) -> list[int]:
    """The cycle carrying the largest current: maximal bottleneck current along it.

    Definition. Draw an edge ``z' -> z`` wherever the current
    ``J(z', z) > atol`` (:func:`probability_currents`); a cycle's current is the
    smallest ``J`` along its edges (its bottleneck: the current it can carry
    in a cycle decomposition of ``J``). The dominant cycle maximizes that
    bottleneck among the directed cycles of at most ``max_length`` states.
    It is found by adding edges in decreasing order of ``J`` (ties by
    ``(z', z)``, ascending) until the first cycle of admissible length closes:
    the cycle through the edge ``u -> v`` that closed it, completed by the
    breadth-first shortest path ``v -> u`` (neighbours in index order) among
    the earlier edges. Deterministic; ``O(max_length S^3 log S)``.

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix.
    pbar : array_like, shape (S,)
        Its stationary distribution.
    max_length : int, optional
        Longest admissible cycle (number of states, at least 3); default ``S``.
    atol : float
        Currents at or below this are treated as zero.

    Returns
    -------
    list of int
        States ``[z0, z1, ..., z_{n-1}]`` in the direction of the current
        (``z_{n-1} -> z0`` closes it), rotated to start at its smallest state.
        Empty when no cycle carries current above ``atol`` (detailed balance).
        Every cycle has at least 3 states (``J`` is antisymmetric).
    """
    J = probability_currents(M, pbar)
    S = J.shape[0]
    if max_length is None:
        Lmax = S
    else:
        if int(max_length) != max_length or max_length < 3:
            raise ValueError(f"max_length must be an integer >= 3, got {shown(max_length)}")
        Lmax = min(int(max_length), S)
    if not (math.isfinite(float(atol)) and atol >= 0):
        raise ValueError(f"atol must be finite and >= 0, got {shown(atol)}")
    src, dst = np.nonzero(J > atol)
    if src.size < 3:
        return []
    # Decreasing current, ties by (z', z): np.lexsort sorts by its last key first.
    order = np.lexsort((dst, src, -J[src, dst]))
    src, dst = src[order], dst[order]

    def graph(k: int) -> np.ndarray:
        adj = np.zeros((S, S), dtype=bool)
        adj[src[: k + 1], dst[: k + 1]] = True
        return adj

    if not _has_short_cycle(graph(src.size - 1), Lmax):
        return []
    lo, hi = 0, src.size - 1  # smallest k whose first k + 1 edges hold an admissible cycle
    while lo < hi:
        mid = (lo + hi) // 2
        if _has_short_cycle(graph(mid), Lmax):
            hi = mid
        else:
            lo = mid + 1
    u, v = int(src[lo]), int(dst[lo])
    path = _shortest_path(graph(lo - 1) if lo > 0 else np.zeros((S, S), dtype=bool), v, u, Lmax - 1)
    if path is None:  # pragma: no cover - the binary search guarantees a path
        raise RuntimeError("internal error: no path closes the dominant cycle")
    cycle = path  # v -> ... -> u, and u -> v closes it
    start = int(np.argmin(cycle))
    return cycle[start:] + cycle[:start]


def cycle_current(M: object, pbar: object, cycle: Sequence[int]) -> float:
    """Bottleneck current of a cycle: the smallest ``J(z_i, z_{i+1})`` along it (may be negative)."""
    J = probability_currents(M, pbar)
    c = _as_cycle(cycle, J.shape[0])
    nxt = c[1:] + c[:1]
    return float(np.min(J[c, nxt]))


def cycle_affinity(M: object, cycle: Sequence[int]) -> float:
    """Cycle affinity ``ln prod_i M(z_i, z_{i+1}) / M(z_{i+1}, z_i)``, closed by ``z_{n-1} -> z_0``.

    Summed as logarithms (never a product in linear space). Zero for every
    cycle iff ``M`` is reversible (Kolmogorov's criterion); ``pbar`` does not
    enter.

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic matrix.
    cycle : sequence of int
        Distinct states ``z0, ..., z_{n-1}`` (a repeated ``z0`` at the end is accepted).

    Returns
    -------
    float
        ``+inf`` when a backward probability is zero (and every forward one is
        positive), ``-inf`` in the mirror case.

    Raises
    ------
    ValueError
        When some step has zero probability in both directions, or zeros occur
        both forward and backward (the affinity is undefined).
    """
    P = _as_stochastic(M)
    c = _as_cycle(cycle, P.shape[0])
    nxt = c[1:] + c[:1]
    fwd, bwd = P[c, nxt], P[nxt, c]
    if ((fwd == 0) & (bwd == 0)).any():
        raise ValueError("the cycle uses a step with zero probability in both directions: affinity undefined")
    f0, b0 = bool((fwd == 0).any()), bool((bwd == 0).any())
    if f0 and b0:
        raise ValueError("the cycle has zero probabilities both forward and backward: affinity undefined")
    if b0:
        return math.inf
    if f0:
        return -math.inf
    return float(np.sum(np.log(fwd)) - np.sum(np.log(bwd)))


# --------------------------------------------------------------------------- convergence of sigma


class SigmaCurve(NamedTuple):
    """Entropy production rate (eq. 21) against the amount of sampling.

    Attributes
    ----------
    n : ndarray of int
        Chain length (steps per chain) or number of draws per state.
    sigma : ndarray of float
        Eq. 21 at each ``n`` (nats per step; may be ``inf``).
    n_one_way : ndarray of int
        Pairs ``z' < z`` with transitions in one direction only (before any pseudo-count).
    sigma_two_way : ndarray of float
        Eq. 21 over the pairs seen both ways only (``nan`` for the Rao-Blackwell curve).
    """

    n: np.ndarray
    sigma: np.ndarray
    n_one_way: np.ndarray
    sigma_two_way: np.ndarray


def _as_sizes(sizes: Sequence[int], upper: int, name: str) -> np.ndarray:
    s = np.asarray(sizes)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional sequence")
    if not np.issubdtype(s.dtype, np.integer) and not np.array_equal(s, np.round(s)):
        raise ValueError(f"{name} must hold integers")
    s = s.astype(np.int64)
    if s.min() < 1 or s.max() > upper:
        raise ValueError(f"{name} must lie in 1..{upper}, got {s.min()}..{s.max()}")
    return s


def sigma_against_length(
    trajectory: object, n_states: int, lengths: Sequence[int], *, pseudocount: float = 0.5
) -> SigmaCurve:
    """The counting estimator of sigma (the paper's) on growing prefixes of hidden trajectories.

    For each ``n`` in ``lengths`` the transitions of the first ``n`` states of
    every chain are counted (:func:`nemm.markov.transition_counts`) and
    fed to :func:`nemm.markov.entropy_production_from_counts` with the
    stated pseudo-count for one-way pairs. With one-way pairs present the
    estimate depends on ``n``; the curve shows whether it has settled.

    Parameters
    ----------
    trajectory : array_like of int, shape (T,) or (n_chains, T)
        Hidden state codes in time order.
    n_states : int
    lengths : sequence of int
        Prefix lengths in ``2 .. T`` (a prefix of ``n`` states has ``n - 1`` transitions).
    pseudocount : float, default 0.5

    Returns
    -------
    SigmaCurve
    """
    t = np.atleast_2d(np.asarray(trajectory))
    if t.ndim != 2:
        raise ValueError(
            f"trajectory must have shape (T,) or (n_chains, T), got {np.asarray(trajectory).shape}"
        )
    n = _as_sizes(lengths, t.shape[1], "lengths")
    if n.min() < 2:
        raise ValueError("lengths must be at least 2 (one transition)")
    out = [
        entropy_production_from_counts(transition_counts(t[:, :k], n_states), pseudocount=pseudocount)
        for k in n
    ]
    return SigmaCurve(
        n=n,
        sigma=np.array([e.sigma for e in out]),
        n_one_way=np.array([e.n_one_way for e in out], dtype=np.int64),
        sigma_two_way=np.array([e.sigma_two_way for e in out]),
    )


def sigma_against_draws(abar_probs: object, draws: Sequence[int]) -> SigmaCurve:
    """The model's own sigma: eq. 21 on the Rao-Blackwell ``M`` from the first ``n`` draws per state.

    Parameters
    ----------
    abar_probs : array_like, shape (S, n_draws, S)
        ``abar_probs[z', k]`` is ``Abar(x_k, .)`` for the ``k``-th draw
        ``x_k ~ A(z', .)`` (as for
        :func:`nemm.markov.rao_blackwell_transition_matrix`).
    draws : sequence of int
        Numbers of draws per state, in ``1 .. n_draws``.

    Returns
    -------
    SigmaCurve
        ``n_one_way`` counts pairs with an exactly zero ``M`` entry one way
        (possible only when ``Abar`` underflows); ``sigma_two_way`` is ``nan``.
    """
    B = np.asarray(abar_probs, dtype=np.float64)
    if B.ndim != 3 or B.shape[0] != B.shape[2] or B.shape[1] == 0:
        raise ValueError(f"abar_probs must have shape (S, n_draws, S), got {B.shape}")
    n = _as_sizes(draws, B.shape[1], "draws")
    sig, one_way = [], []
    iu = np.triu_indices(B.shape[0], k=1)
    for k in n:
        M = rao_blackwell_transition_matrix(B[:, :k, :])
        sig.append(entropy_production(M, stationary_distribution(M)))
        one_way.append(int(((M[iu] > 0) != (M.T[iu] > 0)).sum()))
    return SigmaCurve(
        n=n,
        sigma=np.array(sig),
        n_one_way=np.array(one_way, dtype=np.int64),
        sigma_two_way=np.full(n.size, np.nan),
    )
