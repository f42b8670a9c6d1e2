"""Model-level diagnostics: run a machine's hidden chain and apply the Markov-chain math (spec "Diagnostics").

:mod:`nemm.markov` holds the pure array functions (counts, M, pbar, sigma,
tau, Tr(M)/L, error bars) and :mod:`nemm.class_distribution` the class KL of
eq. 22; this module runs fresh chains of a :class:`~nemm.Machine`, feeds them
to those functions and returns dataclasses
(:class:`TransitionStatistics`, :class:`Diagnosis`) that :mod:`nemm.results`
writes as JSON or CSV. Equation numbers are those of Baiesi & Rosso,
arXiv:2512.11415.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from tqdm.auto import tqdm

from nemm import _core
from nemm._checks import shown
from nemm._logdomain import sigmoid
from nemm._seeds import derive_seed
from nemm._states import MAX_CODE_BITS, bits_to_codes, codes_to_bits, state_labels
from nemm.class_distribution import ClassKL, class_kl
from nemm.entropy_production import EntropyProductionRate, _Kernels, entropy_production_rate
from nemm.exact import Hidden, hidden_states
from nemm.markov import (
    DENSE_STATE_LIMIT,
    _check_pseudocount,
    decorrelation_time,
    entropy_production,
    occupancy_from_trajectory,
    rao_blackwell_transition_matrix,
    segment_error,
    stationary_distribution,
    summarize_counts,
    transition_counts,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.machine import Machine

__all__ = [
    "Diagnosis",
    "EntropyProductionRate",
    "RaoBlackwellSigma",
    "TransitionStatistics",
    "class_kl_of",
    "diagnose",
    "entropy_production_rate",
    "epoch_tracker",
    "log_likelihood_estimates",
    "mean_log_likelihood",
    "rao_blackwell_M",
    "rao_blackwell_sigma",
    "rbm_hidden_distribution",
    "track_epoch",
    "transition_statistics",
]

#: diagnose() reports M, counts and the Rao-Blackwell M only up to this many hidden states.
_DIAGNOSE_MATRIX_LIMIT = 256


@dataclass
class TransitionStatistics:
    """Transition statistics of a machine's hidden chain (spec "Diagnostics", eqs. 21, 23, 24).

    Attributes
    ----------
    states : numpy.ndarray of int, shape (S,)
        Hidden-state codes the rows and columns refer to: all states
        ``0 .. n_states - 1`` when ``n_states <= 4096``, otherwise the visited codes; binary
        layers of more than 63 units have no codes, and their visited states are labelled
        ``0 .. S - 1`` instead (:func:`nemm._states.state_labels`, exact: no hashing).
    n_states : int
        Number of hidden states of the machine (``L`` one-hot, ``2**L`` binary).
    counts : numpy.ndarray, shape (S, S)
        ``counts[z', z]``: observed transitions ``z' -> z``, pooled over chains
        (transitions are never counted across chain boundaries).
    M : numpy.ndarray, shape (S, S)
        Empirical transition matrix: rows of ``counts`` normalized, no pseudo-count;
        the row of a state never left (never visited, or seen only last) is
        unknown: NaN (see ``rows_known``), never a made-up distribution.
    pbar_e : numpy.ndarray, shape (S,)
        Empirical occupancy: fraction of the recorded time steps spent in each state.
    pbar : numpy.ndarray, shape (S,)
        Left eigenvector of ``M`` with eigenvalue 1 (``pbar M = pbar``) over the
        measured rows (0 on states whose row is unknown).
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
        Decorrelation time ``-1 / ln|lambda_2|`` (eq. 23) of the measured rows
        and its error bar (``inf`` for a deterministic cycle and for a chain that
        never leaves its state; NaN error when a segment gave ``inf``).
    self_transition, self_transition_err : float
        ``Tr(M) / S`` (eq. 24) over the measured rows (``rows_known``; 1 for a
        chain that never leaves its state) and its error bar.
    rows_known : numpy.ndarray of bool, shape (S,)
        The states whose row of ``M`` was measured (at least one transition out).
    random_self_transition : float
        ``1 / S``, the value for hidden states drawn at random.
    n_steps, n_chains, burn_in, n_segments : int
        Sampling settings: ``n_chains`` trajectories of ``n_steps`` recorded states
        after ``burn_in`` unrecorded double steps; the error bars are the standard
        errors of the per-segment estimates over ``n_segments`` consecutive time
        windows (each pooling all chains), see :func:`segment_error`.
    segments : dict
        The per-segment values of ``sigma``, ``tau`` and ``self_transition``.
    sigma_curve : dict
        The counting estimator against the chain length (:func:`nemm.cycles.sigma_against_length`):
        ``{"n": steps per chain, "sigma": [...], "n_one_way": [...]}``.
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
    segments: dict = field(default_factory=dict)
    sigma_curve: dict = field(default_factory=dict)
    #: Occupancy of each chain alone, (n_chains, S): the chain noise of what is computed from ``pbar_e``.
    pbar_e_chains: np.ndarray | None = None
    rows_known: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _chain_codes(machine: Machine, n_steps: int, n_chains: int, seed: int | None, burn_in: int) -> np.ndarray:
    """(C, T) uint64 hidden-state codes of fresh chains of the machine (labels past 63 units)."""
    if machine.hidden == "binary" and machine.n_hidden > MAX_CODE_BITS:
        bits = machine.hidden_trajectory(
            int(n_steps), seed=seed, n_chains=int(n_chains), burn_in=int(burn_in)
        )
        _, labels = state_labels(np.asarray(bits).reshape(int(n_chains), int(n_steps), machine.n_hidden))
        return np.ascontiguousarray(labels.astype(np.uint64))
    traj = machine.hidden_trajectory(
        int(n_steps), seed=seed, n_chains=int(n_chains), burn_in=int(burn_in), codes=True
    )
    return np.ascontiguousarray(np.asarray(traj).reshape(int(n_chains), int(n_steps)).astype(np.uint64))


def transition_statistics(
    machine: Machine,
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
    ``M`` (row-normalized counts; rows of states never left are unknown, NaN),
    the occupancy ``pbar_e``, ``pbar`` as the left
    eigenvector of ``M``, ``sigma`` (eq. 21; one-way pairs get ``pseudocount`` in
    both directions and are counted in ``n_one_way``), ``tau`` (eq. 23) and
    ``Tr(M)/S`` (eq. 24), both over the measured rows: a chain that never
    leaves its state has ``tau = inf`` and ``Tr(M)/S = 1``. Above 512 (visited) states no dense eigen-decomposition
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
    return _transition_statistics(
        machine,
        n_steps,
        n_chains=n_chains,
        seed=seed,
        burn_in=burn_in,
        n_segments=n_segments,
        pseudocount=pseudocount,
        sigma_curve=True,
    )


def _transition_statistics(
    machine: Machine,
    n_steps: int,
    *,
    n_chains: int,
    seed: int | None,
    burn_in: int,
    n_segments: int,
    pseudocount: float,
    sigma_curve: bool,
) -> TransitionStatistics:
    """:func:`transition_statistics`; ``sigma_curve=False`` skips the counting curve (left empty), which
    the per-epoch tracking does not keep (13 curves per machine in ``nemm reproduce``)."""
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
            raise ValueError(
                f"the chain visited {uniq.size} distinct hidden states; dense transition "
                f"statistics are limited to {DENSE_STATE_LIMIT}"
            )
        states = uniq.astype(np.int64)
        local = inv.reshape(codes.shape).astype(np.uint64)
    S = states.size
    counts = transition_counts(local, S)
    pbar_e = occupancy_from_trajectory(local.astype(np.int64), S)
    full = summarize_counts(counts, pseudocount=pc, stationary=True, n_states=S_full)
    # No O(S^3) eigen-decomposition above DENSE_EIG_LIMIT; such an M is mostly unvisited rows anyway.
    pbar = full.pbar if full.pbar is not None else pbar_e.copy()

    bounds = np.linspace(0, int(n_steps), n_segments + 1).astype(int)
    seg: dict[str, list[float]] = {"sigma": [], "tau": [], "self_transition": []}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = summarize_counts(transition_counts(local[:, lo:hi], S), pseudocount=pc, n_states=S_full)
        seg["sigma"].append(part.entropy.sigma)
        seg["tau"].append(part.tau)
        seg["self_transition"].append(part.self_transition)
    _, sigma_err = segment_error(seg["sigma"])
    _, tau_err = segment_error(seg["tau"])
    _, self_err = segment_error(seg["self_transition"])
    ep = full.entropy
    curve: dict = {}
    if sigma_curve:
        from nemm.cycles import sigma_against_length

        lengths = np.unique(np.round(np.geomspace(min(100, int(n_steps)), int(n_steps), 8)).astype(int))
        lc = sigma_against_length(local, S, np.maximum(lengths, 2), pseudocount=pc)
        curve = {
            "n": [int(k) for k in lc.n],
            "sigma": [float(v) for v in lc.sigma],
            "n_one_way": [int(k) for k in lc.n_one_way],
        }
    return TransitionStatistics(
        states=states,
        n_states=S_full,
        counts=counts,
        M=full.M,
        pbar_e=pbar_e,
        pbar=pbar,
        sigma=float(ep.sigma),
        sigma_err=float(sigma_err),
        n_one_way=ep.n_one_way,
        n_pairs_observed=ep.n_pairs_observed,
        pseudocount=pc,
        sigma_two_way=float(ep.sigma_two_way),
        tau=float(full.tau),
        tau_err=float(tau_err),
        self_transition=float(full.self_transition),
        self_transition_err=float(self_err),
        random_self_transition=1.0 / S_full,
        n_steps=int(n_steps),
        n_chains=int(n_chains),
        burn_in=int(burn_in),
        n_segments=n_segments,
        segments=seg,
        sigma_curve=curve,
        pbar_e_chains=np.stack([occupancy_from_trajectory(c.astype(np.int64), S) for c in local]),
        rows_known=np.asarray(full.rows_known, dtype=bool),
    )


def rao_blackwell_M(
    machine: Machine,
    n_draws: int = 2000,
    *,
    seed: int | None = None,
    return_stderr: bool = False,
    progress: bool = False,
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
    progress : bool
        Show a tqdm bar over the hidden states (worth it for binary layers, up to 4096 states).

    Returns
    -------
    M : numpy.ndarray, shape (S, S)
        Row-stochastic estimate.
    stderr : numpy.ndarray, shape (S, S)
        Only with ``return_stderr``.
    """
    blocks, errs = [], []
    for P in _abar_draws(machine, n_draws, seed, progress):
        n = P.shape[0]
        blocks.append(P.mean(axis=0, keepdims=True))  # the mean row: memory O(S^2), not O(S^2 n)
        errs.append(P.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(P.shape[1], np.nan))
    M = rao_blackwell_transition_matrix(blocks)
    return (M, np.array(errs)) if return_stderr else M


def _abar_draws(
    machine: Machine, n_draws: int, seed: int | None, progress: bool = False
) -> Iterator[np.ndarray]:
    """For every hidden state z' in turn: ``Abar(x_k, .)`` of ``n_draws`` draws ``x_k ~ A(z', .)``, (n, S)."""
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be at least 1, got {shown(n_draws)}")
    if machine.hidden == "binary" and machine.n_hidden > 12:
        raise ValueError("rao_blackwell_M enumerates the hidden states: binary hidden layers need L <= 12")
    n = int(n_draws)
    rng = np.random.default_rng(machine.random_state if seed is None else seed)
    hidden = cast(Hidden, machine.hidden)  # validated by the fitted machine
    Z = hidden_states(int(machine.n_hidden), hidden).astype(np.float64)
    # einsum, not BLAS matmuls: their reduction order may depend on the BLAS thread count.
    K = _Kernels.of(machine)
    mu = sigmoid(np.einsum("dl,sl->sd", K.w, Z) + K.a[None, :])
    for zp in tqdm(
        range(Z.shape[0]), desc="Rao-Blackwell M", unit="state", disable=not progress, leave=False
    ):
        x = (rng.random((n, mu.shape[1])) < mu[zp]).astype(np.float64)
        yield np.exp(K.log_abar_all(K.fields(x), Z))


@dataclass
class RaoBlackwellSigma:
    """The model's own entropy production: eq. 21 on the Rao-Blackwell M (spec, "which estimator").

    Attributes
    ----------
    sigma : float
        Eq. 21 on ``M`` (all ``n_draws`` draws per state) and its stationary ``pbar``.
    sigma_err : float
        Standard error: the spread of eq. 21 over ``n_batches`` disjoint batches of
        draws, divided by ``sqrt(n_batches)``.
    converged : bool
        ``|sigma(n/2) - sigma(n)| <= max(2 sigma_err, 0.05 |sigma|, 1e-3)``: the value no
        longer moves with the number of draws (the first half of the draws against all of
        them). For a nearly deterministic cycle the backward entries of M are tiny and their
        estimates need many draws: eq. 21 then keeps changing (on the digits, falling) as the
        draws grow, and ``converged`` is False: read ``sigma`` as the value at ``n_draws``.
    M : numpy.ndarray, shape (S, S)
    pbar : numpy.ndarray, shape (S,)
        Stationary distribution of ``M``.
    tau : float
        Eq. 23 on ``M``.
    n_draws, n_batches : int
    curve : dict
        ``{"n": [...], "sigma": [...]}``: eq. 21 on the first ``n`` draws per state
        (:func:`nemm.cycles.sigma_against_draws`).
    """

    sigma: float
    sigma_err: float
    converged: bool
    M: np.ndarray
    pbar: np.ndarray
    tau: float
    n_draws: int
    n_batches: int
    curve: dict


def rao_blackwell_sigma(
    machine: Machine, n_draws: int = 2000, *, n_batches: int = 10, seed: int | None = None
) -> RaoBlackwellSigma:
    """Eq. 21 on the Rao-Blackwell M, with an error bar from batches and its convergence curve.

    Uses the same draws as :func:`rao_blackwell_M` with the same ``seed`` (so
    ``M`` is identical). Memory ``O(S^2 n_draws)``.
    """
    nb = int(n_batches)
    if nb < 2 or nb > int(n_draws):
        raise ValueError(f"n_batches must be between 2 and n_draws, got {shown(n_batches)}")
    from nemm.cycles import sigma_against_draws

    B = np.stack(list(_abar_draws(machine, n_draws, seed)))  # (S, n, S)
    M = rao_blackwell_transition_matrix(B)
    pbar = stationary_distribution(M)
    sigma = float(entropy_production(M, pbar))
    edges = np.linspace(0, B.shape[1], nb + 1).astype(int)
    per = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        Mb = rao_blackwell_transition_matrix(B[:, lo:hi, :])
        per.append(entropy_production(Mb, stationary_distribution(Mb)))
    err = float(np.std(per, ddof=1) / np.sqrt(nb))
    n = B.shape[1]
    grid = np.unique(np.clip(np.round(np.geomspace(max(1, n // 64), n, 7)).astype(int), 1, n))
    grid = np.unique(np.append(grid, max(1, n // 2)))
    curve = sigma_against_draws(B, grid.tolist())
    half = float(curve.sigma[list(curve.n).index(max(1, n // 2))])
    return RaoBlackwellSigma(
        sigma=sigma,
        sigma_err=err,
        converged=bool(abs(half - sigma) <= max(2 * err, 0.05 * abs(sigma), 1e-3)),
        M=M,
        pbar=pbar,
        tau=float(decorrelation_time(M)),
        n_draws=n,
        n_batches=nb,
        curve={"n": [int(k) for k in curve.n], "sigma": [float(v) for v in curve.sigma]},
    )


def _full_pbar(machine: Machine, pbar: object | None, n_steps: int, seed: int | None) -> np.ndarray | None:
    """``pbar`` over all ``machine.n_states`` states: given, or the occupancy of one chain of ``n_steps``.

    None when there are too many hidden states for a full vector (binary, above
    :data:`~nemm.markov.DENSE_STATE_LIMIT`).
    """
    if pbar is not None:
        p = np.asarray(pbar, dtype=np.float64)
        if p.shape != (machine.n_states,):
            raise ValueError(f"pbar must have shape ({machine.n_states},), got {p.shape}")
        return p
    if machine.n_states > DENSE_STATE_LIMIT:
        return None
    states, occ = machine.occupancy(int(n_steps), seed=seed)
    if machine.hidden == "onehot":
        return np.asarray(occ, dtype=np.float64)
    full = np.zeros(machine.n_states)
    full[bits_to_codes(states)] = occ
    return full


def mean_log_likelihood(
    machine: Machine, X: object, pbar: object | None = None, *, n_steps: int = 100_000
) -> float:
    """Mean ``ln p(x) = logsumexp_z [ln pbar(z) + log A(z, x)]`` over the rows of ``X`` (appendix A3).

    The one ln p path of the diagnostics: everything goes through
    :meth:`Machine.score_samples` (the C++ likelihood). ``pbar`` over all states
    when given; otherwise the machine's cached occupancy of ``n_steps`` steps.
    """
    lp = (
        machine.score_samples(X, pbar=pbar)
        if pbar is not None
        else machine.score_samples(X, n_steps=int(n_steps))
    )
    return float(np.mean(lp))


def _log_pbar_and_states(
    machine: Machine, pbar: object | None, n_steps: int, seed: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(ln pbar over the states with mass, their states for log_A: None = all one-hot states)."""
    if pbar is None and machine.n_states > DENSE_STATE_LIMIT:
        states, p = machine.occupancy(int(n_steps), seed=seed)
        return np.log(np.asarray(p, dtype=np.float64)), np.asarray(states)
    p = _full_pbar(machine, pbar, n_steps, seed)
    assert p is not None
    if machine.hidden == "onehot":
        with np.errstate(divide="ignore"):
            return np.log(p), None
    keep = np.flatnonzero(p > 0)
    return np.log(p[keep]), codes_to_bits(keep, machine.n_hidden)


def class_kl_of(
    machine: Machine,
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
    machine: Machine,
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
    p = _full_pbar(machine, pbar, n_steps, seed)
    exact = mean_log_likelihood(machine, X, p, n_steps=int(n_steps))
    hist = machine.history_.get("loglik", []) if isinstance(machine.history_, dict) else []
    return {
        "exact": exact,
        "on_the_fly": float(hist[-1]) if len(hist) else float("nan"),
        "n_steps": int(n_steps) if pbar is None else 0,
    }


# ---------------------------------------------------------------- all together


@dataclass
class Diagnosis:
    """All diagnostics of section IV.B for one machine (:func:`diagnose`).

    The fields shared with :class:`TransitionStatistics` carry the same
    meaning; ``occupancy`` is its ``pbar_e`` and ``pbar_eigen`` its ``pbar``.

    Three estimators of the entropy production (spec, "Entropy production: which
    estimator"), each under its own name:

    - ``sigma``, ``sigma_err``, ``sigma_converged``, ``sigma_method`` (and
      ``sigma_effort``, ``sigma_effort_needed``, ``log_M``, ``log_M_err``): the
      headline, :func:`nemm.entropy_production.entropy_production_rate`, eq. 21
      with the tiny entries of M estimated by importance sampling (NaN when
      ``diagnose`` was told ``sigma_effort=0``);
    - ``sigma_counting``, ``sigma_counting_err`` (with ``n_one_way``,
      ``pseudocount`` and ``sigma_counting_curve``): the paper's counting estimator
      at the stated chain length (:class:`TransitionStatistics` ``sigma``);
    - ``sigma_rao_blackwell`` (with ``sigma_rao_blackwell_err``,
      ``sigma_rao_blackwell_converged`` and ``sigma_rao_blackwell_curve``): eq. 21 on
      the plain Rao-Blackwell M, biased high on trained machines.

    The probability currents ``J(z', z) = pbar(z') M(z', z) - pbar(z) M(z, z')``,
    the dominant cycle (:func:`nemm.cycles.dominant_cycle`), its affinity
    ``ln prod M(fwd) / M(bwd)`` and its bottleneck current are those of the
    Rao-Blackwell M and its stationary ``pbar_rao_blackwell``. ``kind`` is
    ``"machine"`` or ``"rbm"`` (an :class:`~nemm.RBM`, diagnosed on its Gibbs
    chain, with its exact ln p and exact hidden distribution).
    ``M``, ``counts`` and the Rao-Blackwell results are None above 256 hidden
    states; the log-likelihoods and ``class_kl`` are None without data (labels).
    :func:`nemm.results.to_jsonable` turns it into JSON-ready types.
    """

    machine: dict
    n_visible: int
    n_states: int
    L: int
    states: np.ndarray
    sigma: float
    sigma_err: float
    sigma_converged: bool | None
    sigma_method: str
    sigma_counting: float
    sigma_counting_err: float
    n_one_way: int
    n_pairs_observed: int
    pseudocount: float
    sigma_two_way: float
    tau: float
    tau_err: float
    self_transition: float
    self_transition_err: float
    random_self_transition: float
    occupancy: np.ndarray
    pbar_eigen: np.ndarray
    M: np.ndarray | None
    counts: np.ndarray | None
    sampling: dict
    M_rao_blackwell: np.ndarray | None = None
    sigma_rao_blackwell: float | None = None
    tau_rao_blackwell: float | None = None
    loglik_exact: float | None = None
    loglik_on_the_fly: float | None = None
    class_kl: ClassKL | None = None
    sigma_rao_blackwell_err: float | None = None
    sigma_rao_blackwell_converged: bool | None = None
    rao_blackwell_draws: int = 0
    sigma_rao_blackwell_curve: dict | None = None
    sigma_counting_curve: dict | None = None
    pbar_rao_blackwell: np.ndarray | None = None
    currents: np.ndarray | None = None
    dominant_cycle: list | None = None
    cycle_affinity: float | None = None
    cycle_current: float | None = None
    kind: str = "machine"
    self_transition_rao_blackwell: float | None = None
    loglik_err: float | None = None
    sigma_effort: float = 0.0
    sigma_effort_needed: float | None = None
    log_M: np.ndarray | None = None
    log_M_err: np.ndarray | None = None


#: Fields a Diagnosis copies from TransitionStatistics under the same name.
_SHARED_FIELDS = tuple(
    f.name
    for f in fields(Diagnosis)
    if f.name in {g.name for g in fields(TransitionStatistics)}
    and f.name not in ("M", "counts", "sigma", "sigma_err")  # sigma there is the counting estimator
)


def _add_rao_blackwell(d: Diagnosis, machine: Machine, draws: int, seed: int | None) -> None:
    """The Rao-Blackwell M of ``machine`` and what follows from it, into ``d``."""
    rb = rao_blackwell_sigma(machine, draws, seed=derive_seed(seed, 1), n_batches=min(10, draws))
    d.M_rao_blackwell = rb.M
    d.sigma_rao_blackwell = rb.sigma
    d.tau_rao_blackwell = rb.tau
    d.sigma_rao_blackwell_err = rb.sigma_err
    d.sigma_rao_blackwell_converged = rb.converged
    d.sigma_rao_blackwell_curve = rb.curve
    d.rao_blackwell_draws = rb.n_draws
    d.pbar_rao_blackwell = rb.pbar
    # Eq. 24 on the Rao-Blackwell M: a chain that never leaves its start has Tr(M)/L = 1 here, while
    # the counted M only sees the states its chains started in.
    d.self_transition_rao_blackwell = float(np.trace(rb.M) / rb.M.shape[0])
    _add_cycles(d, rb.M, rb.pbar)


def _add_entropy_production(d: Diagnosis, machine: Machine, effort: float, seed: int | None) -> None:
    """The headline sigma (:func:`entropy_production_rate`) into ``d``."""
    ep = entropy_production_rate(machine, effort=effort, seed=derive_seed(0 if seed is None else seed, 2))
    d.sigma, d.sigma_err, d.sigma_converged, d.sigma_method = ep.sigma, ep.sigma_err, ep.converged, ep.method
    d.sigma_effort, d.sigma_effort_needed = ep.effort, ep.effort_needed
    d.log_M, d.log_M_err = ep.log_M, ep.log_M_err


def diagnose(
    machine: Machine,
    X: object = None,
    y: object = None,
    *,
    n_steps: int = 100_000,
    seed: int | None = 0,
    n_chains: int = 4,
    n_segments: int = 10,
    pseudocount: float = 0.5,
    rao_blackwell_draws: int = 2000,
    sigma_effort: float = 1.0,
) -> Diagnosis:
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
    sigma_effort : float
        ``effort`` of the headline :func:`entropy_production_rate` (0 skips it: ``sigma`` is NaN).

    Returns
    -------
    Diagnosis
        Floats may be ``inf`` (e.g. ``tau`` of a deterministic cycle);
        :func:`nemm.results.to_json` writes them as ``"inf"``.
    """
    from nemm.rbm import RBM

    rbm: RBM | None = None
    if isinstance(machine, RBM):
        rbm, machine = machine, machine._gibbs()
    ts = transition_statistics(
        machine, n_steps, n_chains=n_chains, seed=seed, n_segments=n_segments, pseudocount=pseudocount
    )
    small = ts.n_states <= _DIAGNOSE_MATRIX_LIMIT
    owner: Any = rbm if rbm is not None else machine
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in owner.get_params().items()}
    hist = owner.history_.get("loglik", []) if isinstance(owner.history_, dict) else []
    d = Diagnosis(
        machine=settings,
        n_visible=int(machine.n_visible_),
        L=int(machine.n_hidden),
        occupancy=ts.pbar_e,
        pbar_eigen=ts.pbar,
        M=ts.M if small else None,
        counts=ts.counts.astype(np.int64) if small else None,
        sampling={
            "n_steps": ts.n_steps,
            "n_chains": ts.n_chains,
            "burn_in": ts.burn_in,
            "n_segments": ts.n_segments,
            "seed": seed,
        },
        loglik_on_the_fly=float(hist[-1]) if len(hist) else None,
        sigma_counting_curve=ts.sigma_curve,
        kind="rbm" if rbm is not None else "machine",
        sigma=float("nan"),
        sigma_err=float("nan"),
        sigma_converged=None,
        sigma_method="",
        sigma_counting=ts.sigma,
        sigma_counting_err=ts.sigma_err,
        **{name: getattr(ts, name) for name in _SHARED_FIELDS},
    )
    if sigma_effort:
        _add_entropy_production(d, machine, float(sigma_effort), seed)
    if rao_blackwell_draws and small:
        _add_rao_blackwell(d, machine, int(rao_blackwell_draws), seed)
    if X is not None:
        pfull = ts.pbar_e if ts.n_states == ts.states.size else None
        if rbm is not None:
            # The Gibbs chain of an RBM may never leave its start: use the exact p(x) and p(h).
            d.loglik_exact = float(np.mean(rbm.score_samples(X)))
            pfull = rbm_hidden_distribution(rbm) if rbm.hidden == "onehot" or rbm.n_hidden <= 12 else None
        else:
            shared = _shared_log_A(machine, X, pfull) if y is not None else None
            if shared is not None:  # one log A table for ln p and the class KL (the same bits)
                LA, log_p = shared
                d.loglik_exact = float(np.mean(_core.log_mixture_rows(LA, log_p)))
                d.class_kl = class_kl(log_p, LA, y)
                return d
            d.loglik_exact = mean_log_likelihood(machine, X, pfull, n_steps=int(n_steps))
            chains = ts.pbar_e_chains
            if machine.hidden == "binary" and chains is not None and pfull is not None and ts.n_chains > 1:
                # Chain noise of ln p (many rarely visited states): the standard error of ln p given each
                # chain's own occupancy.
                per_chain = [mean_log_likelihood(machine, X, pc) for pc in chains]
                d.loglik_err = float(np.std(per_chain, ddof=1) / np.sqrt(len(per_chain)))
        if y is not None:
            d.class_kl = class_kl_of(machine, X, y, pbar=pfull, n_steps=int(n_steps), seed=seed)
    return d


def _shared_log_A(
    machine: Machine, X: object, pbar: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(log A over all states, ln pbar)`` when one table serves both ln p and the class KL, else None.

    That is a one-hot machine whose ``pbar`` gives every state some mass: then
    :meth:`Machine.score_samples` evaluates log A on exactly these states (it drops only
    states without mass), so ``_core.log_mixture_rows`` on this table, which repeats the
    engine's mixture arithmetic, gives the bits of :func:`mean_log_likelihood`, and
    :func:`class_kl_of` would compute the same table again.
    """
    if pbar is None or machine.hidden != "onehot":
        return None
    p = np.asarray(pbar, dtype=np.float64)
    if p.shape != (machine.n_states,) or not (p > 0).all() or not np.isclose(p.sum(), 1.0, atol=1e-8):
        return None
    return np.ascontiguousarray(machine.log_A(X), dtype=np.float64), np.log(p)


def _add_cycles(d: Diagnosis, M: np.ndarray, pbar: np.ndarray) -> None:
    """Currents, dominant cycle, its affinity and current (nemm.cycles) of ``M`` into ``d``."""
    from nemm.cycles import cycle_affinity, cycle_current, dominant_cycle, probability_currents

    d.currents = probability_currents(M, pbar)
    # Cycles of at most 12 states: enough for the one-hot layers studied here, and bounded in cost.
    cyc = (
        dominant_cycle(M, pbar, max_length=min(M.shape[0], 12) if M.shape[0] >= 3 else None)
        if M.shape[0] >= 3
        else []
    )
    d.dominant_cycle = [int(z) for z in cyc]
    if cyc:
        try:
            d.cycle_affinity = cycle_affinity(M, cyc)
        except ValueError:  # a step of probability 0 both ways: undefined
            d.cycle_affinity = float("nan")
        d.cycle_current = cycle_current(M, pbar, cyc)
    else:
        d.cycle_affinity, d.cycle_current = 0.0, 0.0


def rbm_hidden_distribution(rbm: Any) -> np.ndarray:
    """Exact ``p(h)`` of an RBM over all hidden states (state-code order), in the log domain.

    ``ln p(h) = abar.h + sum_i softplus(a_i + (w h)_i) - ln Z`` (spec, "The equilibrium baseline").
    """
    Z = hidden_states(int(rbm.n_hidden), rbm.hidden)
    field_ = Z @ np.asarray(rbm.w_).T + np.asarray(rbm.a_)  # (S, D)
    logw = Z @ np.asarray(rbm.abar_) + np.sum(np.logaddexp(0.0, field_), axis=1)
    logw -= logw.max()
    p = np.exp(logw)
    return p / p.sum()


def track_epoch(
    machine: Machine,
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
    if not (epoch == 0 or (epoch + 1) % every == 0 or epoch == machine.training_settings_["n_epochs"] - 1):
        return
    base = machine.random_state if seed is None else seed
    ts = _transition_statistics(
        machine,
        int(n_steps),
        n_chains=int(n_chains),
        seed=derive_seed(0 if base is None else base, 7919, epoch),
        burn_in=200,
        n_segments=min(5, int(n_steps) // 2),
        pseudocount=0.5,
        sigma_curve=False,
    )
    h = machine.history_
    for key, val in (
        ("diag_epoch", float(epoch)),
        # The counting estimator, named as in every table (the headline sigma is too costly per epoch).
        ("sigma_counting", ts.sigma),
        ("sigma_counting_err", ts.sigma_err),
        ("n_one_way", float(ts.n_one_way)),
        ("tau", ts.tau),
        ("self_transition", ts.self_transition),
    ):
        h.setdefault(key, []).append(float(val))
    if ts.n_states <= 64:
        h.setdefault("occupancy", []).append(ts.pbar_e.tolist())
    if X is not None:
        pfull = ts.pbar_e if ts.n_states == ts.states.size else None
        shared = _shared_log_A(machine, X, pfull) if y is not None else None
        if shared is not None:  # one log A table for both (the same bits as the two calls below)
            LA, log_p = shared
            h.setdefault("loglik_exact", []).append(float(np.mean(_core.log_mixture_rows(LA, log_p))))
            h.setdefault("class_kl", []).append(float(class_kl(log_p, LA, y).kl))
            return
        h.setdefault("loglik_exact", []).append(mean_log_likelihood(machine, X, pfull))
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
) -> Callable[[Machine, int], None]:
    """A ``callback(machine, epoch)`` for ``Machine.fit`` that calls :func:`track_epoch`."""

    def callback(machine: Machine, epoch: int) -> None:
        track_epoch(machine, epoch, X, y, every=every, n_steps=n_steps, n_chains=n_chains, seed=seed)

    return callback
