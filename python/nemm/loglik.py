"""ln p(x) with error bars for any model: exact where the model is enumerable, else an estimator.

``estimate_loglik(model, X)`` returns a :class:`LoglikEstimate`. ``method``:

``"auto"``
    Exact where the model can be enumerated (the model's own ``score_samples``), else the
    model's estimator.
``"exact"``
    The model's ``score_samples``: the EM mixture (always), the one-hot ``Machine`` and the binary
    ``Machine`` up to L = 16 (exact given the occupancy pbar of its chain, appendix A3), the RBM up
    to 2**24 hidden states.
``"estimate"``
    The model's estimator even where exact is possible: how the estimators are validated.
an estimator's name
    ``"ais"`` (RBM): annealed importance sampling, below.

AIS for the RBM (Salakhutdinov and Murray 2008, "On the quantitative analysis of deep belief
networks"). The hidden layer is summed analytically, so the runs move over x alone with the
unnormalized ln f_beta(x) = (1 - beta) b0.x + beta a.x + sum_j softplus(beta (abar_j + (x w)_j))
(binary hidden; one-hot: ln sum_alpha exp(beta (abar_alpha + (x w)_alpha))), from the base-rate
model at beta = 0 (independent visible units at the data marginals b0 = logit(xbar), hidden
uniform: its ln Z_0 is exact) to the RBM at beta = 1. Each temperature's transition is one Gibbs
sweep h | x, x | h of the joint at that beta, which leaves f_beta invariant. ln Z is the log of
the MEAN importance weight (log-sum-exp minus ln n_runs), with the delta-method error
std(w) / (sqrt(n_runs) mean(w)); never the mean of the log weights, which is biased low by the
variance of the log weights.

Bias. The mean weight is an unbiased estimate of Z / Z_0, so by Jensen's inequality the forward
ln Z estimate is biased LOW in expectation (E[ln Z_hat] <= ln Z) and is a stochastic lower bound:
the ln p(x) = ln f(x) - ln Z_hat it gives is biased HIGH (a stochastic upper bound on ln p; it
cannot be much above the truth with high probability: P(ln Z_hat > ln Z + t) <= exp(-t)).
Reverse AIS (``bidirectional=True``) runs the same schedule backwards from the model's own
samples (long independent Gibbs chains; exact samples cannot be had at scale), estimating Z_0 / Z;
its ln Z is biased HIGH and gives a stochastic LOWER bound on ln p, exactly so when its start
samples are exact and only approximately when the chains have not mixed. The two bracket ln p:
``lower`` <= ln p <= ``upper`` (in expectation); a wide bracket says the schedule is too short.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from nemm._checks import as_binary_matrix, as_int
from nemm._logdomain import log_mean_exp, logsumexp, sigmoid
from nemm._logdomain import softplus as _softplus
from nemm._settings import RBM_SCORE_MAX_STATES
from nemm.machine import ENUMERATION_LIMIT, Machine
from nemm.mixture import BernoulliMixture

__all__ = ["LoglikEstimate", "estimate_loglik", "AIS_TEMPERATURES", "AIS_RUNS"]

#: Default AIS temperatures and runs: Salakhutdinov and Murray's for RBM-500 on MNIST (14,500
#: temperatures, 100 runs), with which the forward and reverse estimates agreed within a fraction
#: of a nat there.
AIS_TEMPERATURES = 14_500
AIS_RUNS = 100
#: Independent Gibbs sweeps of each reverse-AIS start chain from the data mean.
AIS_REVERSE_BURN_IN = 1000
# Salakhutdinov and Murray's schedule: 500 temperatures on [0, 0.5], 4000 on [0.5, 0.9],
# 10000 on [0.9, 1]; scaled in proportion to n_temperatures.
_SCHEDULE_PIECES = ((0.5, 500), (0.9, 4000), (1.0, 10_000))
# Rows whose ln f(x) is computed at once (bounded memory: rows x hidden units).
_ROW_PIECE = 4096
# The base rate's marginals are kept off 0 and 1 (pixels never on in the data would give ln 0).
_BASE_CLIP = 1e-3
_METHODS = ("auto", "exact", "estimate", "ais")
_AIS_EFFORT = ("n_temperatures", "n_runs", "bidirectional", "burn_in")


@dataclass(frozen=True)
class LoglikEstimate:
    """ln p of the rows of X, per row and on average, with what it cost.

    Attributes
    ----------
    mean : float
        Mean ln p(x) over the rows (nats per row).
    stderr : float
        Monte Carlo standard error of ``mean`` (0 for an exact method). For AIS it is the
        delta-method error of ln Z, shared by every row; the spread of ln p over the rows is not in it.
    method : str
        The method used: ``"exact"`` or the estimator's name (``"ais"``).
    per_row : ndarray of float, (N,)
        ln p(x) of every row.
    cost : dict
        ``seconds`` (wall clock), ``gibbs_sweeps`` (h | x, x | h sweeps of one run, summed over
        runs) and ``evaluations`` (unnormalized-density or hidden-state terms evaluated).
    lower, upper : float or None
        Bounds on ``mean``: exact methods give ``mean`` for both; AIS gives its forward estimate as
        ``upper`` (a stochastic upper bound) and, with ``bidirectional``, the reverse estimate as
        ``lower``; None where there is no bound.
    details : dict
        Method-specific numbers (AIS: ``log_partition``, ``log_partition_stderr``,
        ``log_partition_reverse``, ``log_partition_reverse_stderr``, ``n_temperatures``, ``n_runs``).
    """

    mean: float
    stderr: float
    method: str
    per_row: np.ndarray
    cost: dict[str, float]
    lower: float | None = None
    upper: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def estimate_loglik(
    model: Any,
    X: Any,
    *,
    method: str = "auto",
    seed: int | None = None,
    progress: bool = False,
    **effort: Any,
) -> LoglikEstimate:
    """ln p(x) of every row of X, exact where possible, else estimated with an error bar.

    Parameters
    ----------
    model : RBM, Machine or BernoulliMixture
        A fitted model.
    X : array_like of 0/1, (N, D)
    method : {"auto", "exact", "estimate", "ais"}
        See the module docstring.
    seed : int, optional
        Seed of the estimator's random numbers (default 0: the same call gives the same numbers).
    progress : bool
        Show a progress bar over the AIS temperatures.
    **effort
        The estimator's effort settings. AIS: ``n_temperatures`` (default
        :data:`AIS_TEMPERATURES`), ``n_runs`` (default :data:`AIS_RUNS`), ``bidirectional``
        (default True: also reverse AIS, twice the cost, for the ``lower`` bound), ``burn_in``
        (Gibbs sweeps of the reverse runs' start chains, default :data:`AIS_REVERSE_BURN_IN`).

    Returns
    -------
    LoglikEstimate

    Raises
    ------
    ValueError
        An unknown ``method``, a method the model does not have, or an effort setting the method
        does not take (each named).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    seed = 0 if seed is None else as_int(seed, "seed", minimum=0)
    chosen = _resolve_method(model, method)
    start = time.perf_counter()
    if chosen == "exact":
        if effort:
            raise ValueError(f"the exact method takes no effort settings; got {', '.join(sorted(effort))}")
        per_row, evaluations = _exact(model, X)
        m = float(per_row.mean())
        cost = {"seconds": time.perf_counter() - start, "gibbs_sweeps": 0, "evaluations": evaluations}
        return LoglikEstimate(m, 0.0, "exact", per_row, cost, lower=m, upper=m)
    unknown = sorted(set(effort) - set(_AIS_EFFORT))
    if unknown:
        raise ValueError(
            f"unknown effort setting(s) for method 'ais': {', '.join(unknown)}; "
            f"it takes {', '.join(_AIS_EFFORT)}"
        )
    result = _ais(model, X, seed=seed, progress=progress, **effort)
    result.cost["seconds"] = time.perf_counter() - start
    return result


def _resolve_method(model: Any, method: str) -> str:
    """The method to run, "exact" or an estimator's name, checked against what the model has."""
    if isinstance(model, BernoulliMixture):
        estimators: tuple[str, ...] = ()
        exact = True
    elif hasattr(model, "log_partition"):  # the RBM (not imported: nemm.rbm's monitor imports this module)
        model._require_fitted()
        estimators = ("ais",)
        exact = model.n_states <= RBM_SCORE_MAX_STATES
    elif isinstance(model, Machine):
        model._require_fitted()
        estimators = ()
        exact = model.hidden == "onehot" or model.n_states <= ENUMERATION_LIMIT
    else:
        raise TypeError(f"model must be an RBM, Machine or BernoulliMixture, got {type(model).__name__}")
    name = type(model).__name__
    if method == "exact" or (method == "auto" and exact):
        if not exact:
            raise ValueError(f"method='exact': this {name} cannot be enumerated; use method='auto'")
        return "exact"
    if not estimators:
        why = "its ln p is exact" if exact else "no estimator exists for it yet"
        raise ValueError(f"method={method!r}: a {name} of this kind has no estimator ({why})")
    # Every model with an estimator has "ais" alone so far.
    return estimators[0]


def _exact(model: Any, X: Any) -> tuple[np.ndarray, int]:
    """The model's exact ``score_samples`` and the number of hidden-state terms it summed."""
    per_row = np.asarray(model.score_samples(X), dtype=float)
    if isinstance(model, BernoulliMixture):
        n_terms = model.means_.shape[0]
    else:
        n_terms = model.n_states
    return per_row, int(per_row.size * n_terms)


# ---------------------------------------------------------------------------------------- AIS
def ais_schedule(n_temperatures: int) -> np.ndarray:
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 (K = ``n_temperatures``).

    Salakhutdinov and Murray's piecewise-linear schedule, dense where the model sharpens: the
    fractions 500/14500 of the steps on [0, 0.5], 4000/14500 on [0.5, 0.9], 10000/14500 on [0.9, 1].
    """
    K = as_int(n_temperatures, "n_temperatures", minimum=3)
    total = sum(n for _, n in _SCHEDULE_PIECES)
    counts = [max(1, round(K * n / total)) for _, n in _SCHEDULE_PIECES]
    counts[-1] = K - sum(counts[:-1])
    betas, lo = [np.zeros(1)], 0.0
    for (hi, _), n in zip(_SCHEDULE_PIECES, counts):
        betas.append(np.linspace(lo, hi, n + 1)[1:])
        lo = hi
    return np.concatenate(betas)


class _AnnealedRBM:
    """The path from the base-rate model to the RBM, with the hidden layer summed out."""

    def __init__(self, model: Any) -> None:
        self.w = np.asarray(model.w_, dtype=float)
        self.w_t = np.ascontiguousarray(self.w.T)  # x | h multiplies by w^T: a contiguous copy is faster
        self.a = np.asarray(model.a_, dtype=float)
        self.abar = np.asarray(model.abar_, dtype=float)
        self.binary = model.hidden == "binary"
        xbar = np.clip(np.asarray(model.xbar_, dtype=float), _BASE_CLIP, 1 - _BASE_CLIP)
        self.b0 = np.log(xbar) - np.log1p(-xbar)
        H = self.w.shape[1]
        # Base rate: independent x at the marginals, hidden uniform (2**H or H states).
        self.log_z0 = float(np.logaddexp(0.0, self.b0).sum()) + (
            H * math.log(2) if self.binary else math.log(H)
        )

    def hidden_sum(self, field_: np.ndarray) -> np.ndarray:
        """ln sum_h exp(h . field) over the hidden states, per row."""
        if self.binary:
            return _softplus(field_).sum(axis=1)
        return logsumexp(field_, axis=1)

    def log_f(self, X: np.ndarray, beta: float, u: np.ndarray | None = None) -> np.ndarray:
        """ln f_beta(x) per row; ``u`` = abar + x w when already computed."""
        if u is None:
            u = X @ self.w + self.abar
        return X @ ((1 - beta) * self.b0 + beta * self.a) + self.hidden_sum(beta * u)

    def sweep(self, X: np.ndarray, u: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
        """One Gibbs sweep h | x, x | h of the joint at ``beta``: leaves f_beta invariant."""
        M, H = u.shape
        if self.binary:
            h = (rng.random((M, H)) < sigmoid(beta * u)).astype(float)
        else:
            g = beta * u
            p = np.exp(g - g.max(axis=1, keepdims=True)).cumsum(axis=1)
            k = (rng.random((M, 1)) * p[:, -1:] > p).sum(axis=1)
            h = np.zeros((M, H))
            h[np.arange(M), np.minimum(k, H - 1)] = 1.0
        field_ = (1 - beta) * self.b0 + beta * (h @ self.w_t + self.a)
        return (rng.random(X.shape) < sigmoid(field_)).astype(float)

    def run(self, X: np.ndarray, betas: np.ndarray, rng: np.random.Generator, progress: tqdm) -> np.ndarray:
        """ln w of every run along ``betas`` (start states X ~ f_{betas[0]}): sum_k ln f_k(x_k) - ln f_{k-1}(x_k)."""
        log_w = np.zeros(X.shape[0])
        for k in range(1, betas.size):
            u = X @ self.w + self.abar
            visible = X @ (self.a - self.b0)  # ln f_beta's visible term is beta times this plus x.b0
            log_w += (betas[k] - betas[k - 1]) * visible
            log_w += self.hidden_sum(betas[k] * u) - self.hidden_sum(betas[k - 1] * u)
            if k < betas.size - 1:
                X = self.sweep(X, u, betas[k], rng)
            progress.update()
        return log_w


def _ais(
    model: Any,
    X: Any,
    *,
    seed: int,
    progress: bool,
    n_temperatures: int = AIS_TEMPERATURES,
    n_runs: int = AIS_RUNS,
    bidirectional: bool = True,
    burn_in: int = AIS_REVERSE_BURN_IN,
) -> LoglikEstimate:
    """Forward (and reverse) AIS estimate of ln Z, then ln p(x) = ln f(x) - ln Z for every row."""
    path = _AnnealedRBM(model)
    X = as_binary_matrix(X, n_features=model.n_visible_, owner=type(model).__name__)
    M = as_int(n_runs, "n_runs", minimum=2)
    burn_in = as_int(burn_in, "burn_in", minimum=0)
    if not isinstance(bidirectional, (bool, np.bool_)):
        raise TypeError(f"bidirectional must be a bool, got {type(bidirectional).__name__}")
    betas = ais_schedule(n_temperatures)
    forward_rng, reverse_rng = (np.random.default_rng([seed, k]) for k in (0, 1))
    total = (betas.size - 1) * (2 if bidirectional else 1)
    # One BLAS thread: the sums inside the matrix products, hence the bits, never depend on threads.
    with threadpool_limits(limits=1), tqdm(total=total, desc="AIS", disable=not progress) as bar:
        start = (forward_rng.random((M, path.b0.size)) < sigmoid(path.b0)).astype(float)
        log_z, log_z_err = log_mean_exp(path.run(start, betas, forward_rng, bar))
        log_z += path.log_z0
        details: dict[str, Any] = {"log_partition": log_z, "log_partition_stderr": log_z_err}
        if bidirectional:
            samples = model.sample(M, n_chains=M, burn_in=burn_in, seed=int(reverse_rng.integers(2**31)))
            log_w = path.run(np.asarray(samples, dtype=float), betas[::-1], reverse_rng, bar)
            rev, rev_err = log_mean_exp(log_w)
            details.update(log_partition_reverse=path.log_z0 - rev, log_partition_reverse_stderr=rev_err)
        log_f = np.concatenate(
            [path.log_f(X[i : i + _ROW_PIECE].astype(float), 1.0) for i in range(0, X.shape[0], _ROW_PIECE)]
        )
    per_row = log_f - log_z
    mean = float(per_row.mean())
    lower = float((log_f - details["log_partition_reverse"]).mean()) if bidirectional else None
    if bidirectional:
        gap = log_z - details["log_partition_reverse"]
        # Forward ln Z is low in expectation, reverse high only if its starts were drawn from the model:
        # a reverse value clearly below the forward one means the Gibbs starts had not mixed.
        details["reverse_consistent"] = bool(
            gap <= 3.0 * math.hypot(log_z_err, details["log_partition_reverse_stderr"])
        )
        if not details["reverse_consistent"]:
            warnings.warn(
                f"reverse AIS gives ln Z {gap:.3g} nats below forward AIS: its start samples (Gibbs chains of "
                f"{burn_in} sweeps) did not reach the model's distribution, so there is no lower bound on ln p "
                "(lower=None); raise burn_in",
                RuntimeWarning,
                stacklevel=3,
            )
            lower = None
    details.update(n_temperatures=betas.size - 1, n_runs=M)
    sweeps = M * (betas.size - 2) * (2 if bidirectional else 1) + (M * burn_in if bidirectional else 0)
    cost = {"seconds": 0.0, "gibbs_sweeps": sweeps, "evaluations": 2 * (betas.size - 1) * M + X.shape[0]}
    return LoglikEstimate(mean, log_z_err, "ais", per_row, cost, lower=lower, upper=mean, details=details)
