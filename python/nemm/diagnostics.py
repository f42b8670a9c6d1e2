"""Nonequilibrium diagnostics of the hidden-state chain (spec "Diagnostics").

The functions in the first part of this module are pure array functions: they
take transition counts, transition matrices, trajectories or log-likelihood
tables, never a model, so that they can be checked against exact answers and
reused on the output of any sampler. Equation numbers (eq. N) are those of
Baiesi & Rosso, arXiv:2512.11415.

Conventions
-----------
* ``counts[z', z]`` is the number of observed transitions ``z' -> z`` (row =
  current hidden state, column = next), and ``M[z', z]`` the probability that
  ``z'`` is followed by ``z`` (eq. 3), so rows of ``M`` sum to one.
* ``pbar`` is the left eigenvector of ``M`` with eigenvalue 1 (``pbar M = pbar``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import numpy as np

from ._logdomain import logsumexp

__all__ = [
    "ClassKL",
    "EntropyProduction",
    "class_kl",
    "decorrelation_time",
    "entropy_production",
    "entropy_production_from_counts",
    "mean_self_transition",
    "occupancy",
    "occupancy_from_trajectory",
    "rao_blackwell_transition_matrix",
    "segment_error",
    "stationary_distribution",
    "transition_counts",
    "transition_matrix",
]

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
    from nemm import _core

    t = _as_trajectory(traj, n_states)
    if n_states > DENSE_STATE_LIMIT:
        raise ValueError(f"dense counts are limited to {DENSE_STATE_LIMIT} states; use transition_counts_sparse")
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
    from nemm import _core

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


def transition_matrix(
    counts: object,
    *,
    pseudocount: float = 0.0,
    empty_row: Literal["occupancy", "uniform", "self"] = "occupancy",
) -> np.ndarray:
    """Empirical transition matrix: ``counts`` (plus a pseudo-count) normalized per row.

    Parameters
    ----------
    counts : array_like, shape (S, S)
        Transition counts ``counts[z', z]`` (row = current state).
    pseudocount : float, default 0
        Added to every entry before normalizing (then no row is empty).
    empty_row : {"occupancy", "uniform", "self"}, default "occupancy"
        What to put in a row with no counts at all (a state never left: never
        visited, or visited only as the last state of the trajectory), so that
        ``M`` stays row-stochastic:

        * ``"occupancy"`` (default): the empirical visit frequencies
          ``q(z) propto sum_z' counts[z', z] + sum_z'' counts[z, z'']``
          (uniform if there are no counts). The chain restarts from where it
          was seen to be: a never-visited state stays unreachable (zero
          stationary mass, eigenvalue 0 only, so :func:`decorrelation_time` and
          :func:`stationary_distribution` of the visited states are unchanged),
          and a state seen only at the end leads back into the chain.
        * ``"uniform"``: ``1/S`` everywhere. Simple, but a state seen only at
          the end then leaks mass into never-visited states.
        * ``"self"``: a self-loop, ``M[z, z] = 1``. This makes the state
          absorbing: a never-visited state becomes a second closed class (a
          second eigenvalue 1, so :func:`decorrelation_time` returns inf), and a
          state seen only last captures all the stationary mass. Use it only
          when that is wanted.

    Returns
    -------
    numpy.ndarray, shape (S, S)
        Row-stochastic matrix.
    """
    raw = _as_counts(counts)
    c = raw + _check_pseudocount(pseudocount)
    if empty_row not in ("occupancy", "uniform", "self"):
        raise ValueError(f"empty_row must be 'occupancy', 'uniform' or 'self', got {empty_row!r}")
    rows = c.sum(axis=1)
    empty = rows <= 0
    M = np.divide(c, rows[:, None], out=np.zeros_like(c), where=~empty[:, None])
    n = c.shape[0]
    if empty.any():
        visits = raw.sum(axis=0) + raw.sum(axis=1)
        if empty_row == "self":
            idx = np.flatnonzero(empty)
            M[idx, idx] = 1.0
        elif empty_row == "occupancy" and visits.sum() > 0:
            M[empty] = visits / visits.sum()
        else:
            M[empty] = 1.0 / n
    return M


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
        Row-stochastic matrix.

    Returns
    -------
    numpy.ndarray, shape (S,)
        Non-negative, summing to one.
    """
    P = _as_stochastic(M)
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
        Row-stochastic matrix.

    Returns
    -------
    float
        ``inf`` when ``|lambda_2| >= 1 - 1e-12`` (a deterministic cycle or a
        reducible chain never decorrelates; never a negative number);
        ``0.0`` when ``|lambda_2| <= 1e-12`` (a rank-one ``M`` forgets its
        state in one step) or when there is a single state.
    """
    P = _as_stochastic(M)
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
        Row-stochastic matrix.

    Returns
    -------
    float
    """
    P = _as_stochastic(M)
    return float(np.trace(P) / P.shape[0])


# --------------------------------------------------------------------------- entropy production


class EntropyProduction(NamedTuple):
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


def _sigma_from_fluxes(J: np.ndarray) -> float:
    """``sum_{i<j} (J_ij - J_ji) ln(J_ij / J_ji)`` with the zero rules of eq. 21."""
    iu = np.triu_indices(J.shape[0], k=1)
    f, b = J[iu], J.T[iu]
    if ((f > 0) != (b > 0)).any():
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
    J = counts / total
    iu = np.triu_indices(J.shape[0], k=1)
    f, b = J[iu], J.T[iu]
    both = (f > 0) & (b > 0)
    return float(np.sum((f[both] - b[both]) * (np.log(f[both]) - np.log(b[both]))))


# --------------------------------------------------------------------------- class KL


class ClassKL(NamedTuple):
    """Class-distribution KL divergence and the assignment behind it (eq. 22).

    Attributes
    ----------
    kl : float
        ``KL(P_data || P_model)`` in nats; ``inf`` if a class present in the
        data has zero model mass.
    state_class : numpy.ndarray of int, shape (S,)
        Class label of each hidden state, ``-1`` for a state given no point.
    p_model : numpy.ndarray, shape (K,)
        ``P_model(k)``: total ``pbar`` of the states of class ``classes[k]``
        (sums to ``1 - lost_mass``).
    p_data : numpy.ndarray, shape (K,)
        Label frequencies of the data.
    lost_mass : float
        Total ``pbar`` of the states that have no class.
    classes : numpy.ndarray of int, shape (K,)
        The class labels, ascending; indexes ``p_model`` and ``p_data``.
    assignment : numpy.ndarray of int, shape (N,)
        The hidden state each data point was given.
    """

    kl: float
    state_class: np.ndarray
    p_model: np.ndarray
    p_data: np.ndarray
    lost_mass: float
    classes: np.ndarray
    assignment: np.ndarray


def class_kl(
    log_pbar: object,
    log_A: object,
    labels: object,
    *,
    classes: Sequence[int] | np.ndarray | None = None,
) -> ClassKL:
    """Class-distribution KL divergence ``KL(P_data || P_model)`` (eq. 22).

    The spec's default rule: every data point ``n`` is given its most
    probable hidden state ``argmax_alpha [ln pbar(alpha) + log A(alpha, x_n)]``;
    a state's class is the majority label of the points given to it (ties go
    to the smallest label); a state given no point has no class and its mass
    counts as lost (``P_model`` is then not renormalized, so lost mass raises
    the KL). The rule "class with the highest mean log A" is deliberately not
    used: sparse digits (the 1s) have the highest likelihood under almost any
    state and would win every state.

    Parameters
    ----------
    log_pbar : array_like, shape (S,)
        Log stationary probabilities (``-inf`` allowed); normalized here.
    log_A : array_like, shape (N, S)
        ``log A(alpha, x_n)`` for every data point and hidden state.
    labels : array_like of int, shape (N,)
        Non-negative integer class label of each data point.
    classes : sequence of int, optional
        All class labels to report (default: the labels present). Must
        contain every label; classes absent from the data have
        ``P_data = 0`` and do not contribute.

    Returns
    -------
    ClassKL
    """
    lp = np.asarray(log_pbar, dtype=np.float64)
    LA = np.asarray(log_A, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ValueError(f"log_pbar must be a non-empty vector, got shape {lp.shape}")
    S = lp.size
    if LA.ndim != 2 or LA.shape[1] != S or LA.shape[0] == 0:
        raise ValueError(f"log_A must have shape (N >= 1, {S}), got {LA.shape}")
    if np.isnan(lp).any() or np.isnan(LA).any() or (lp == np.inf).any() or (LA == np.inf).any():
        raise ValueError("log_pbar and log_A must not contain NaN or +inf")
    if not np.isfinite(lp).any():
        raise ValueError("log_pbar gives zero mass to every state")
    lab = np.asarray(labels)
    if lab.shape != (LA.shape[0],):
        raise ValueError(f"labels must have shape ({LA.shape[0]},), got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        if lab.dtype == np.bool_ or not np.array_equal(lab, np.round(lab)):
            raise ValueError("labels must be integers")
    lab = lab.astype(np.int64)
    if (lab < 0).any():
        raise ValueError("labels must be non-negative (-1 marks a state with no class)")
    cls = np.unique(lab) if classes is None else np.unique(np.asarray(classes, dtype=np.int64))
    if (cls < 0).any():
        raise ValueError("classes must be non-negative")
    missing = np.setdiff1d(lab, cls)
    if missing.size:
        raise ValueError(f"labels {missing.tolist()} are not in classes")
    k_of = np.searchsorted(cls, lab)  # class index of each point
    K = cls.size

    pbar = np.exp(lp - np.max(lp))
    pbar /= pbar.sum()

    assignment = np.argmax(lp[None, :] + LA, axis=1)
    # tally[s, k]: points of class k given to state s.
    tally = np.zeros((S, K), dtype=np.int64)
    np.add.at(tally, (assignment, k_of), 1)
    has_points = tally.sum(axis=1) > 0
    # argmax returns the first maximum, i.e. the smallest label on ties (cls is ascending).
    state_k = np.where(has_points, np.argmax(tally, axis=1), -1)
    state_class = np.where(has_points, cls[np.clip(state_k, 0, None)], -1)

    p_model = np.zeros(K)
    np.add.at(p_model, state_k[has_points], pbar[has_points])
    lost = float(pbar[~has_points].sum())
    p_data = np.bincount(k_of, minlength=K) / lab.size

    present = p_data > 0
    if (p_model[present] <= 0).any():
        kl = float("inf")
    else:
        kl = float(np.sum(p_data[present] * (np.log(p_data[present]) - np.log(p_model[present]))))
    return ClassKL(
        kl=kl,
        state_class=state_class.astype(np.int64),
        p_model=p_model,
        p_data=p_data,
        lost_mass=lost,
        classes=cls,
        assignment=assignment.astype(np.int64),
    )


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


# --- model-level diagnostics (engine) ---
# Wrappers that run a trained machine's chain and call the array functions above
# are added below by the engine's authors.

import json as _json
import math as _math
from dataclasses import dataclass as _dataclass
from dataclasses import field as _field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.machine import Machine

__all__ += [
    "TransitionStatistics",
    "class_kl_of",
    "diagnose",
    "epoch_tracker",
    "log_likelihood_estimates",
    "rao_blackwell_M",
    "to_json",
    "to_jsonable",
    "track_epoch",
    "transition_statistics",
]

#: Largest number of hidden states for which counts are kept as a dense (S, S) matrix.
DENSE_STATE_LIMIT = 4096


def _seed_int(*parts: int | None) -> int | None:
    """A reproducible 63-bit seed hashed from integers (``None`` if the first part is ``None``)."""
    if not parts or parts[0] is None:
        return None
    words = [int(p) for p in parts if p is not None]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@_dataclass
class TransitionStatistics:
    """Transition statistics of a machine's hidden chain (spec "Diagnostics", eqs. 21, 23, 24).

    Attributes
    ----------
    states : numpy.ndarray of int, shape (S,)
        Hidden-state codes the rows and columns refer to: all states
        ``0 .. n_states - 1`` when ``n_states <= 4096``, otherwise the visited codes.
    n_states : int
        Number of hidden states of the machine (``L`` one-hot, ``2**L`` binary).
    counts : numpy.ndarray, shape (S, S)
        ``counts[z', z]``: observed transitions ``z' -> z``, pooled over chains
        (transitions are never counted across chain boundaries).
    M : numpy.ndarray, shape (S, S)
        Empirical transition matrix: rows of ``counts`` normalized, no pseudo-count;
        a state never left gets the ``"occupancy"`` row of :func:`transition_matrix`.
    pbar_e : numpy.ndarray, shape (S,)
        Empirical occupancy: fraction of the recorded time steps spent in each state.
    pbar : numpy.ndarray, shape (S,)
        Left eigenvector of ``M`` with eigenvalue 1 (``pbar M = pbar``).
    sigma, sigma_err : float
        Entropy production rate per step (eq. 21, nats) from the counts with
        ``pseudocount`` added to both directions of every one-way pair (see
        :func:`entropy_production_from_counts`), and its Monte Carlo error bar.
    n_one_way : int
        Pairs ``z' < z`` seen in one direction only (each got the pseudo-count).
    n_pairs_observed : int
        Pairs seen in at least one direction.
    pseudocount : float
    tau, tau_err : float
        Decorrelation time ``-1 / ln|lambda_2|`` (eq. 23) and its error bar
        (``inf`` for a deterministic cycle; NaN error when a segment gave ``inf``).
    self_transition, self_transition_err : float
        ``Tr(M) / S`` (eq. 24) and its error bar.
    random_self_transition : float
        ``1 / S``, the value for hidden states drawn at random.
    n_steps, n_chains, burn_in, n_segments : int
        Sampling settings: ``n_chains`` trajectories of ``n_steps`` recorded states
        after ``burn_in`` unrecorded double steps; the error bars are the standard
        errors of the per-segment estimates over ``n_segments`` consecutive time
        windows (each pooling all chains), see :func:`segment_error`.
    segments : dict
        The per-segment values of ``sigma``, ``tau`` and ``self_transition``.
    """

    states: np.ndarray
    n_states: int
    counts: np.ndarray
    M: np.ndarray
    pbar_e: np.ndarray
    pbar: np.ndarray
    sigma: float
    sigma_err: float
    n_one_way: int
    n_pairs_observed: int
    pseudocount: float
    sigma_two_way: float
    tau: float
    tau_err: float
    self_transition: float
    self_transition_err: float
    random_self_transition: float
    n_steps: int
    n_chains: int
    burn_in: int
    n_segments: int
    segments: dict = _field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain Python types (lists, floats, ints), ready for :func:`to_json`."""
        return {
            "n_states": int(self.n_states),
            "states": self.states.tolist(),
            "counts": self.counts.tolist(),
            "M": self.M.tolist(),
            "pbar_e": self.pbar_e.tolist(),
            "pbar": self.pbar.tolist(),
            "sigma": float(self.sigma),
            "sigma_err": float(self.sigma_err),
            "n_one_way": int(self.n_one_way),
            "n_pairs_observed": int(self.n_pairs_observed),
            "pseudocount": float(self.pseudocount),
            "sigma_two_way": float(self.sigma_two_way),
            "tau": float(self.tau),
            "tau_err": float(self.tau_err),
            "self_transition": float(self.self_transition),
            "self_transition_err": float(self.self_transition_err),
            "random_self_transition": float(self.random_self_transition),
            "n_steps": int(self.n_steps),
            "n_chains": int(self.n_chains),
            "burn_in": int(self.burn_in),
            "n_segments": int(self.n_segments),
            "segments": {k: [float(v) for v in vals] for k, vals in self.segments.items()},
        }


def _chain_codes(machine: "Machine", n_steps: int, n_chains: int, seed: int | None, burn_in: int) -> np.ndarray:
    """(C, T) uint64 hidden-state codes of fresh chains of the machine."""
    traj = machine.hidden_trajectory(int(n_steps), seed=seed, n_chains=int(n_chains), burn_in=int(burn_in),
                                     codes=True)
    return np.ascontiguousarray(np.asarray(traj).reshape(int(n_chains), int(n_steps)).astype(np.uint64))


def _count(codes: np.ndarray, n_states: int) -> np.ndarray:
    from nemm import _core

    return np.asarray(_core.count_transitions(np.ascontiguousarray(codes, dtype=np.uint64), int(n_states)),
                      dtype=np.float64)


#: Above this many (visited) states, dense eigen-decompositions are avoided (they cost O(S^3)).
DENSE_EIG_LIMIT = 512


def _stats_from_counts(counts: np.ndarray, pseudocount: float) -> tuple[float, float, float]:
    """(sigma, tau, Tr(M)/S) of one block of counts (tau NaN for very large blocks)."""
    M = transition_matrix(counts)
    tau = decorrelation_time(M) if M.shape[0] <= DENSE_EIG_LIMIT else float("nan")
    return (entropy_production_from_counts(counts, pseudocount=pseudocount).sigma, tau, mean_self_transition(M))


def transition_statistics(
    machine: "Machine",
    n_steps: int = 100_000,
    *,
    n_chains: int = 4,
    seed: int | None = None,
    burn_in: int = 1000,
    n_segments: int = 10,
    pseudocount: float = 0.5,
) -> TransitionStatistics:
    """Empirical M, occupancy, sigma, tau and Tr(M)/L of a machine's hidden chain, with error bars.

    Runs ``n_chains`` fresh chains of the machine for ``burn_in`` + ``n_steps``
    double steps (eq. 18), counts the hidden transitions ``z(t) -> z(t+1)`` with
    the C++ counter and applies the array functions of this module: the empirical
    ``M`` (row-normalized counts), the occupancy ``pbar_e``, ``pbar`` as the left
    eigenvector of ``M``, ``sigma`` (eq. 21; one-way pairs get ``pseudocount`` in
    both directions and are counted in ``n_one_way``), ``tau`` (eq. 23) and
    ``Tr(M)/S`` (eq. 24). Above 512 (visited) states no dense eigen-decomposition
    is made: ``pbar`` is then ``pbar_e`` and ``tau`` is NaN. Error bars: the time axis is cut into ``n_segments``
    consecutive windows (each pooling the chains), every statistic is estimated
    on every window, and the standard error of those estimates is reported
    (:func:`segment_error`); the windows must be long compared with ``tau``.
    The error bars describe the full-length estimate only approximately: the
    plug-in sigma of a short window is biased upward when rare transitions
    are missed, so small ``sigma`` values should be read together with
    ``n_one_way``.

    Parameters
    ----------
    machine : Machine
        A fitted machine (or one built by ``Machine.from_params``).
    n_steps : int
        Recorded steps per chain (the spec's long chain is 1e5).
    n_chains : int
        Independent chains, run in parallel by the engine.
    seed : int, optional
        Seed of the chains; defaults to the machine's ``random_state``.
    burn_in : int
        Unrecorded double steps at the start of every chain.
    n_segments : int
        Time windows for the error bars (at least 2).
    pseudocount : float
        Added to both directions of each one-way pair for sigma (0.5 by default).

    Returns
    -------
    TransitionStatistics
    """
    if int(n_steps) < 2 or int(n_chains) < 1 or int(burn_in) < 0:
        raise ValueError("need n_steps >= 2, n_chains >= 1 and burn_in >= 0")
    n_segments = int(n_segments)
    if n_segments < 2 or n_segments > int(n_steps) // 2:
        raise ValueError(f"n_segments must be between 2 and n_steps // 2, got {n_segments}")
    pc = _check_pseudocount(pseudocount)
    S_full = int(machine.n_states)
    codes = _chain_codes(machine, n_steps, n_chains, seed, burn_in)
    if S_full <= DENSE_STATE_LIMIT:
        states = np.arange(S_full, dtype=np.int64)
        local = codes
    else:
        # Relabel to the visited states so the matrices stay small.
        uniq, inv = np.unique(codes, return_inverse=True)
        if uniq.size > DENSE_STATE_LIMIT:
            raise ValueError(f"the chain visited {uniq.size} distinct hidden states; dense transition "
                             f"statistics are limited to {DENSE_STATE_LIMIT}")
        states = uniq.astype(np.int64)
        local = inv.reshape(codes.shape).astype(np.uint64)
    S = states.size
    counts = _count(local, S)
    M = transition_matrix(counts)
    pbar_e = occupancy_from_trajectory(local.astype(np.int64), S)
    ep = entropy_production_from_counts(counts, pseudocount=pc)
    if S <= DENSE_EIG_LIMIT:
        pbar = stationary_distribution(M)
        tau = decorrelation_time(M)
    else:  # no O(S^3) eigen-decomposition; such an M is mostly unvisited rows anyway
        pbar = pbar_e.copy()
        tau = float("nan")
    self_tr = mean_self_transition(M)

    bounds = np.linspace(0, int(n_steps), n_segments + 1).astype(int)
    seg = {"sigma": [], "tau": [], "self_transition": []}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s, t, r = _stats_from_counts(_count(local[:, lo:hi], S), pc)
        seg["sigma"].append(s)
        seg["tau"].append(t)
        seg["self_transition"].append(r)
    _, sigma_err = segment_error(seg["sigma"])
    _, tau_err = segment_error(seg["tau"])
    _, self_err = segment_error(seg["self_transition"])
    return TransitionStatistics(
        states=states, n_states=S_full, counts=counts, M=M, pbar_e=pbar_e, pbar=pbar,
        sigma=float(ep.sigma), sigma_err=float(sigma_err), n_one_way=ep.n_one_way,
        n_pairs_observed=ep.n_pairs_observed, pseudocount=pc, sigma_two_way=float(ep.sigma_two_way), tau=float(tau), tau_err=float(tau_err),
        self_transition=float(self_tr), self_transition_err=float(self_err),
        random_self_transition=1.0 / S_full, n_steps=int(n_steps), n_chains=int(n_chains),
        burn_in=int(burn_in), n_segments=n_segments, segments=seg,
    )


def _all_states(machine: "Machine") -> np.ndarray:
    """Every hidden state as rows (S, L): one-hot identity or all binary codes."""
    from nemm.exact import hidden_states

    return hidden_states(int(machine.n_hidden), machine.hidden)


def rao_blackwell_M(
    machine: "Machine",
    n_draws: int = 2000,
    *,
    seed: int | None = None,
    return_stderr: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Rao-Blackwell estimate of ``M(z', z) = E_{x ~ A(z', .)} Abar(x, z)`` (spec, "Exact answers").

    For every hidden state ``z'`` draws ``n_draws`` visible states
    ``x ~ A(z', .)`` (independent bits with means ``mu_{x|z'}``, eq. 14) and
    averages the exact probabilities ``Abar(x, .)``, which removes the noise of
    sampling ``z``. Works for any ``D``; the hidden layer must be enumerable
    (one-hot, or binary with ``L <= 12``).

    Parameters
    ----------
    machine : Machine
    n_draws : int
        Visible draws per hidden state.
    seed : int, optional
        Seed of the numpy generator (defaults to the machine's ``random_state``).
    return_stderr : bool
        Also return the standard error of every entry (``std / sqrt(n_draws)``).

    Returns
    -------
    M : numpy.ndarray, shape (S, S)
        Row-stochastic estimate.
    stderr : numpy.ndarray, shape (S, S)
        Only with ``return_stderr``.
    """
    from nemm.exact import backward_kernel

    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws!r}")
    if machine.hidden == "binary" and machine.n_hidden > 12:
        raise ValueError("rao_blackwell_M enumerates the hidden states: binary hidden layers need L <= 12")
    n = int(n_draws)
    rng = np.random.default_rng(machine.random_state if seed is None else seed)
    Z = _all_states(machine)
    mu = machine.mean_images(np.arange(Z.shape[0]) if machine.hidden == "onehot" else Z)
    wbar, abar, xbar = machine.wbar_, machine.abar_, machine.xbar_
    blocks, errs = [], []
    for zp in range(Z.shape[0]):
        x = (rng.random((n, mu.shape[1])) < mu[zp]).astype(np.uint8)
        P = backward_kernel(wbar, abar, xbar, x, machine.hidden, machine.normalization, bool(machine.centered))
        blocks.append(P.mean(axis=0, keepdims=True))  # the mean row: memory O(S^2), not O(S^2 n)
        errs.append(P.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(P.shape[1], np.nan))
    M = rao_blackwell_transition_matrix(blocks)
    return (M, np.array(errs)) if return_stderr else M


def _log_pbar_and_states(machine: "Machine", pbar: object | None, n_steps: int,
                         seed: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(ln pbar over the states with mass, their states for log_A: None = all one-hot states)."""
    if pbar is None:
        stats_states, p = machine.occupancy(int(n_steps), seed=seed)
        p = np.asarray(p, dtype=np.float64)
        if machine.hidden == "onehot":
            with np.errstate(divide="ignore"):
                return np.log(p), None
        return np.log(p), np.asarray(stats_states)
    p = np.asarray(pbar, dtype=np.float64)
    if p.shape != (machine.n_states,):
        raise ValueError(f"pbar must have shape ({machine.n_states},), got {p.shape}")
    if machine.hidden == "onehot":
        with np.errstate(divide="ignore"):
            return np.log(p), None
    keep = np.flatnonzero(p > 0)
    bits = ((keep[:, None] >> np.arange(machine.n_hidden)) & 1).astype(np.uint8)
    return np.log(p[keep]), bits


def class_kl_of(
    machine: "Machine",
    X: object,
    y: object,
    *,
    pbar: object | None = None,
    n_steps: int = 100_000,
    seed: int | None = None,
) -> ClassKL:
    """Class-distribution KL divergence of a machine on labelled data (eq. 22, the spec's rule).

    Every data point is given ``argmax_alpha [ln pbar(alpha) + log A(alpha, x)]``,
    a state's class is the majority label of its points, states given no point
    lose their mass (see :func:`class_kl`).

    Parameters
    ----------
    machine : Machine
    X : array_like, (N, D)
        Binary data.
    y : array_like of int, (N,)
        Class labels.
    pbar : array_like, optional
        Stationary hidden distribution over all ``machine.n_states`` states;
        by default the occupancy of a chain of ``n_steps`` steps.
    n_steps : int
    seed : int, optional
        Seed of that chain (default: the machine's ``random_state``).

    Returns
    -------
    ClassKL
        For binary hidden layers ``state_class`` refers to the states with
        non-zero ``pbar`` (in code order).
    """
    log_p, states = _log_pbar_and_states(machine, pbar, n_steps, seed)
    LA = machine.log_A(X, states)
    return class_kl(log_p, LA, y)


def log_likelihood_estimates(
    machine: "Machine",
    X: object,
    *,
    pbar: object | None = None,
    n_steps: int = 100_000,
    seed: int | None = None,
) -> dict[str, float]:
    """Mean log-likelihood of ``X``: exact given the long-chain occupancy, and the on-the-fly estimate.

    Returns
    -------
    dict
        ``exact``: mean of ``ln p(x) = logsumexp_z(ln pbar(z) + log A(z, x))``
        with ``pbar`` given or the occupancy of a chain of ``n_steps`` steps
        (appendix A3); ``on_the_fly``: the last epoch's minibatch estimate
        from training (``history_["loglik"][-1]``, NaN if the machine was not
        trained); ``n_steps``: the chain length behind ``exact`` (0 if
        ``pbar`` was given).
    """
    if pbar is None:
        if machine.hidden == "onehot":
            _, occ = machine.occupancy(int(n_steps), seed=seed)
            lp = machine.score_samples(X, pbar=np.asarray(occ, dtype=np.float64))
        elif machine.n_states <= DENSE_STATE_LIMIT:
            states, occ = machine.occupancy(int(n_steps), seed=seed)
            codes = (np.asarray(states, dtype=np.int64) << np.arange(machine.n_hidden)).sum(axis=1)
            pfull = np.zeros(machine.n_states)
            pfull[codes] = occ
            lp = machine.score_samples(X, pbar=pfull)
        else:  # too many states for a full pbar vector: the machine's own cached occupancy
            lp = machine.score_samples(X, n_steps=int(n_steps))
        used = int(n_steps)
    else:
        lp = machine.score_samples(X, pbar=pbar)
        used = 0
    hist = machine.history_.get("loglik", []) if isinstance(machine.history_, dict) else []
    return {"exact": float(np.mean(lp)), "on_the_fly": float(hist[-1]) if len(hist) else float("nan"),
            "n_steps": used}


# ---------------------------------------------------------------- JSON


def to_jsonable(obj: Any) -> Any:
    """Recursively convert to JSON-safe Python types.

    numpy scalars and arrays become floats, ints and lists; non-finite floats
    become the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (strict JSON has no
    infinities); NamedTuples and dataclasses become dicts.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "as_dict"):
        return to_jsonable(obj.as_dict())
    if hasattr(obj, "_asdict"):
        return to_jsonable(obj._asdict())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if _math.isnan(v):
            return "nan"
        if _math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def to_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`; infinities as ``"inf"``)."""
    return _json.dumps(to_jsonable(obj), allow_nan=False, **kwargs)


# ---------------------------------------------------------------- all together


#: diagnose() reports M, counts and the Rao-Blackwell M only up to this many hidden states.
_DIAGNOSE_MATRIX_LIMIT = 256


def diagnose(
    machine: "Machine",
    X: object = None,
    y: object = None,
    *,
    n_steps: int = 100_000,
    seed: int | None = 0,
    n_chains: int = 4,
    n_segments: int = 10,
    pseudocount: float = 0.5,
    rao_blackwell_draws: int = 2000,
) -> dict[str, Any]:
    """All diagnostics of section IV.B for one machine, as a JSON-serializable dict.

    Parameters
    ----------
    machine : Machine
    X : array_like, optional
        Data for the log-likelihoods (exact and on-the-fly) and, with ``y``, the class KL.
    y : array_like of int, optional
        Class labels of ``X``.
    n_steps, seed, n_chains, n_segments, pseudocount
        Passed to :func:`transition_statistics`. The log-likelihood and the
        class KL use its occupancy ``pbar_e`` (``n_chains * n_steps`` states).
    rao_blackwell_draws : int
        Draws per state for :func:`rao_blackwell_M` (0 to skip). ``M``,
        ``counts`` and the Rao-Blackwell results are reported (not None) only
        for at most 256 hidden states.

    Returns
    -------
    dict
        Keys ``machine`` (settings), ``n_states``, ``L``, ``sigma``, ``sigma_err``,
        ``n_one_way``, ``n_pairs_observed``, ``pseudocount``, ``tau``, ``tau_err``,
        ``self_transition``, ``self_transition_err``, ``random_self_transition``,
        ``occupancy`` (``pbar_e``), ``pbar_eigen``, ``M``, ``counts``,
        ``M_rao_blackwell`` (or None), ``sigma_rao_blackwell``, ``tau_rao_blackwell``,
        ``loglik_exact``, ``loglik_on_the_fly``, ``class_kl`` (with ``p_model``,
        ``p_data``, ``state_class``, ``lost_mass``) and ``sampling``. Floats may
        be ``inf`` (e.g. ``tau`` of a deterministic cycle); :func:`to_json`
        writes them as ``"inf"``. Everything else is lists, ints, floats, strings.
    """
    ts = transition_statistics(machine, n_steps, n_chains=n_chains, seed=seed, n_segments=n_segments,
                               pseudocount=pseudocount)
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in machine.get_params().items()}
    out: dict[str, Any] = {
        "machine": settings,
        "n_visible": int(machine.n_visible_),
        "n_states": int(ts.n_states),
        "L": int(machine.n_hidden),
        "states": ts.states.tolist(),
        "sigma": ts.sigma,
        "sigma_err": ts.sigma_err,
        "n_one_way": ts.n_one_way,
        "n_pairs_observed": ts.n_pairs_observed,
        "pseudocount": ts.pseudocount,
        "sigma_two_way": ts.sigma_two_way,
        "tau": ts.tau,
        "tau_err": ts.tau_err,
        "self_transition": ts.self_transition,
        "self_transition_err": ts.self_transition_err,
        "random_self_transition": ts.random_self_transition,
        "occupancy": ts.pbar_e.tolist(),
        "pbar_eigen": ts.pbar.tolist(),
        "M": ts.M.tolist() if ts.n_states <= _DIAGNOSE_MATRIX_LIMIT else None,
        "counts": ts.counts.astype(np.int64).tolist() if ts.n_states <= _DIAGNOSE_MATRIX_LIMIT else None,
        "sampling": {"n_steps": ts.n_steps, "n_chains": ts.n_chains, "burn_in": ts.burn_in,
                     "n_segments": ts.n_segments, "seed": seed},
        "M_rao_blackwell": None,
        "sigma_rao_blackwell": None,
        "tau_rao_blackwell": None,
        "loglik_exact": None,
        "loglik_on_the_fly": None,
        "class_kl": None,
    }
    if rao_blackwell_draws and ts.n_states <= _DIAGNOSE_MATRIX_LIMIT:
        Mrb = rao_blackwell_M(machine, int(rao_blackwell_draws), seed=_seed_int(seed, 1))
        prb = stationary_distribution(Mrb)
        out["M_rao_blackwell"] = Mrb.tolist()
        out["sigma_rao_blackwell"] = entropy_production(Mrb, prb)
        out["tau_rao_blackwell"] = decorrelation_time(Mrb)
    hist = machine.history_.get("loglik", []) if isinstance(machine.history_, dict) else []
    out["loglik_on_the_fly"] = float(hist[-1]) if len(hist) else None
    if X is not None:
        full = ts.n_states == ts.states.size
        pfull = ts.pbar_e if full else None
        if full:
            out["loglik_exact"] = float(np.mean(machine.score_samples(X, pbar=pfull)))
        else:
            out["loglik_exact"] = float(np.mean(machine.score_samples(X, n_steps=int(n_steps))))
        if y is not None:
            ck = class_kl_of(machine, X, y, pbar=pfull, n_steps=int(n_steps), seed=seed)
            out["class_kl"] = {
                "kl": ck.kl, "p_model": ck.p_model.tolist(), "p_data": ck.p_data.tolist(),
                "classes": ck.classes.tolist(), "state_class": ck.state_class.tolist(),
                "lost_mass": ck.lost_mass,
            }
    return out


def track_epoch(
    machine: "Machine",
    epoch: int,
    X: object = None,
    y: object = None,
    *,
    every: int = 1,
    n_steps: int = 20_000,
    n_chains: int = 2,
    seed: int | None = None,
) -> None:
    """Per-epoch diagnostics, for ``Machine.fit(callback=...)``; the cost is the user's choice.

    At epoch 0, after every ``every``-th epoch and at the last epoch appends to ``machine.history_``:
    ``diag_epoch``, ``sigma``, ``sigma_err``, ``n_one_way``, ``tau``,
    ``self_transition``, ``occupancy`` (one list of ``n_states`` values per
    entry, kept only while ``n_states <= 64``) and, when ``X`` is given,
    ``loglik_exact`` (exact ``ln p`` given the occupancy) and, with ``y`` too,
    ``class_kl`` (eq. 22). Each call runs
    ``n_chains`` fresh chains of ``n_steps`` steps; the training chains and
    random numbers are not touched, so tracking does not change training.

    Use it with ``functools.partial`` or :func:`epoch_tracker`::

        m.fit(X, callback=epoch_tracker(X, every=5, n_steps=5000))
    """
    every = max(1, int(every))
    if not (epoch == 0 or (epoch + 1) % every == 0 or epoch == machine.n_epochs - 1):
        return
    base = machine.random_state if seed is None else seed
    ts = transition_statistics(machine, int(n_steps), n_chains=int(n_chains),
                               seed=_seed_int(0 if base is None else base, 7919, epoch),
                               burn_in=200, n_segments=min(5, int(n_steps) // 2))
    h = machine.history_
    for key, val in (("diag_epoch", float(epoch)), ("sigma", ts.sigma), ("sigma_err", ts.sigma_err),
                     ("n_one_way", float(ts.n_one_way)), ("tau", ts.tau),
                     ("self_transition", ts.self_transition)):
        h.setdefault(key, []).append(float(val))
    if ts.n_states <= 64:
        h.setdefault("occupancy", []).append(ts.pbar_e.tolist())
    if X is not None:
        pfull = ts.pbar_e if ts.n_states == ts.states.size else None
        if pfull is not None and machine.hidden == "onehot":
            # One pass of log A over the data serves both ln p(x) and the class KL.
            logA = machine.log_A(X)
            with np.errstate(divide="ignore"):
                log_pbar = np.log(pfull)
            lp = logsumexp(logA + log_pbar[None, :], axis=1)
            h.setdefault("loglik_exact", []).append(float(np.mean(lp)))
            if y is not None:
                h.setdefault("class_kl", []).append(float(class_kl(log_pbar, logA, y).kl))
        else:
            lp = machine.score_samples(X, pbar=pfull) if pfull is not None else machine.score_samples(X)
            h.setdefault("loglik_exact", []).append(float(np.mean(lp)))
            if y is not None:
                ck = class_kl_of(machine, X, y, pbar=pfull, n_steps=int(n_steps))
                h.setdefault("class_kl", []).append(float(ck.kl))


def epoch_tracker(
    X: object = None,
    y: object = None,
    *,
    every: int = 1,
    n_steps: int = 20_000,
    n_chains: int = 2,
    seed: int | None = None,
) -> Callable[["Machine", int], None]:
    """A ``callback(machine, epoch)`` for ``Machine.fit`` that calls :func:`track_epoch`."""

    def callback(machine: "Machine", epoch: int) -> None:
        track_epoch(machine, epoch, X, y, every=every, n_steps=n_steps, n_chains=n_chains, seed=seed)

    return callback
