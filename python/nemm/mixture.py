"""The Bernoulli mixture fitted by EM: the ceiling of the one-hot machine.

With one-hot hidden states the machine's stationary marginal is

    p(x) = sum_alpha pbar(alpha) prod_i Bernoulli(x_i; sigmoid(w[i, alpha] + a_i)),

a mixture of L product-Bernoulli distributions. The maximum-likelihood fit of
that family, found here by expectation-maximization (EM), is therefore the
ceiling of the one-hot model's log-likelihood on the same data (see the
"A fact worth knowing" section of ``docs/model.md``).

Numerical conventions
---------------------
* Everything is computed in the log domain: component log-likelihoods are
  ``x . log(p) + (1 - x) . log(1 - p)`` (a sum of logs, never a product of D
  probabilities) and responsibilities are normalized with a log-sum-exp.
* Bernoulli means are **clipped to [1e-6, 1 - 1e-6]** after each M-step.
  Because the expected complete-data log-likelihood is concave and separable
  in each mean, clipping the unconstrained maximizer is the exact maximizer on
  the clipped box, so every EM iteration is still a true EM step for the
  constrained model and the log-likelihood never decreases. (A Beta-prior
  pseudo-count would instead make the penalized objective, not the
  likelihood, monotone.)
* Mixture weights are the plain maximum-likelihood ``N_k / N``.

Initialization
--------------
``init="kmeans++"`` (default): k-means++ seeding on Hamming distance picks K
data points spread over the data; component k's means start at
``0.5 * x_seed_k + 0.5 * xbar`` (the data mean keeps every mean strictly
inside (0, 1)) with uniform weights, and EM begins with an E-step.
``init="subsets"``: the paper's appendix A1 recipe, each component's means are
the mean of a random 10 % subset of the data (clipped to [0.01, 0.99]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ._checks import as_binary_matrix
from ._logdomain import logsumexp

__all__ = ["BernoulliMixture", "fit_em_ceiling"]

#: Bernoulli means are kept in [_CLIP, 1 - _CLIP] so that log p and log(1-p) are finite.
_CLIP = 1e-6


def _safe_log(x: np.ndarray) -> np.ndarray:
    """``log`` that maps exact zeros to ``-inf`` without a warning (dead components)."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def _component_log_lik(X: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``(N, K)`` matrix of ``log prod_i Bernoulli(x_i; means[k, i])``.

    Written as ``X @ (log p - log(1-p)).T + sum log(1-p)``: one matrix product,
    exactly equal to the elementwise log-domain sum for 0/1 data.
    """
    logp = np.log(means)
    log1mp = np.log1p(-means)
    return X @ (logp - log1mp).T + log1mp.sum(axis=1)


def _random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Return a ``Generator`` from a seed, an existing generator or ``None``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


@dataclass
class _Run:
    """Result of one EM run from one initialization."""

    weights: np.ndarray
    means: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool
    trace: list[float]


class BernoulliMixture:
    """Mixture of K product-Bernoulli distributions fitted by EM.

    Parameters
    ----------
    n_components : int
        Number of mixture components K (the number of one-hot hidden states L).
    n_init : int
        Number of EM runs from independent initializations; the run with the
        highest final mean log-likelihood is kept.
    max_iter : int
        Maximum number of EM iterations per run.
    tol : float
        A run stops when one iteration raises the mean log-likelihood (nats per
        data point) by less than ``tol``.
    random_state : int, numpy.random.Generator or None
        Seed of the initializations.
    init : {"kmeans++", "subsets"}
        Initialization scheme (see the module docstring).
    verbose : bool
        Show a progress bar over the EM runs (on stderr), with the iteration and mean
        log-likelihood of the current run.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
        Mixture weights (the machine's pbar).
    means_ : ndarray of shape (K, D)
        Bernoulli means, in [1e-6, 1 - 1e-6].
    log_likelihood_ : float
        Mean log-likelihood (nats per data point) of the best run on the
        training data.
    n_iter_ : int
        Number of EM iterations of the best run.
    converged_ : bool
        Whether the best run met ``tol`` before ``max_iter``.
    ll_trace_ : list of float
        Mean log-likelihood after each E-step of the best run (non-decreasing).

    Examples
    --------
    >>> bm = BernoulliMixture(n_components=6, random_state=0).fit(X)  # doctest: +SKIP
    >>> bm.score(X)  # doctest: +SKIP
    """

    def __init__(
        self,
        n_components: int = 6,
        n_init: int = 5,
        max_iter: int = 500,
        tol: float = 1e-6,
        random_state: int | np.random.Generator | None = None,
        init: str = "kmeans++",
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.init = init
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def _validate_hyperparameters(self, n_samples: int) -> None:
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        if self.n_components > n_samples:
            raise ValueError(f"n_components={self.n_components} exceeds the number of samples {n_samples}")
        if not isinstance(self.n_init, (int, np.integer)) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, got {self.n_init!r}")
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not np.isfinite(self.tol) or self.tol < 0:
            raise ValueError(f"tol must be a non-negative finite number, got {self.tol!r}")
        if self.init not in ("kmeans++", "subsets"):
            raise ValueError(f"init must be 'kmeans++' or 'subsets', got {self.init!r}")

    def fit(self, X: object) -> BernoulliMixture:
        """Fit the mixture to binary data.

        Parameters
        ----------
        X : array_like of shape (N, D)
            Data of zeros and ones.

        Returns
        -------
        self
        """
        Xb = as_binary_matrix(X, "X")
        self._validate_hyperparameters(Xb.shape[0])
        Xf = Xb.astype(np.float64)
        rng = _random_state(self.random_state)
        best: _Run | None = None
        with tqdm(total=int(self.n_init), desc="EM mixture", unit="run", disable=not self.verbose) as bar:
            for _ in range(int(self.n_init)):
                means0 = self._initial_means(Xf, rng, Xb)
                run = self._em(Xf, means0, bar)
                if best is None or run.log_likelihood > best.log_likelihood:
                    best = run
                bar.update(1)
        assert best is not None
        self.weights_ = best.weights
        self.means_ = best.means
        self.log_likelihood_ = best.log_likelihood
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.ll_trace_ = best.trace
        self.n_features_in_ = Xb.shape[1]
        return self

    def _initial_means(
        self, X: np.ndarray, rng: np.random.Generator, Xb: np.ndarray | None = None
    ) -> np.ndarray:
        """Starting Bernoulli means ``(K, D)`` for one EM run (``Xb``: the same data as uint8, optional)."""
        K = int(self.n_components)
        n, _ = X.shape
        xbar = X.mean(axis=0)
        if self.init == "subsets":
            size = max(1, int(round(0.1 * n)))
            means = np.empty((K, X.shape[1]))
            for k in range(K):
                idx = rng.choice(n, size=size, replace=False)
                means[k] = X[idx].mean(axis=0)
            return np.clip(means, 0.01, 0.99)

        # k-means++ seeding with squared Hamming distance.
        def hamming2(i: int) -> np.ndarray:
            # Squared Hamming distances to row i, as floats. Counted on the 0/1 bytes when given:
            # the float sum of |x - x_i| is an integer below 2**53, so both are exact and equal.
            if Xb is None:
                return np.sum(np.abs(X - X[i]), axis=1) ** 2
            return np.count_nonzero(Xb != Xb[i], axis=1).astype(np.float64) ** 2

        seeds = [int(rng.integers(n))]
        d2 = hamming2(seeds[0])
        for _ in range(1, K):
            total = d2.sum()
            # All remaining points coincide with a seed: fall back to a uniform pick.
            nxt = int(rng.integers(n)) if total <= 0 else int(rng.choice(n, p=d2 / total))
            seeds.append(nxt)
            d2 = np.minimum(d2, hamming2(nxt))
        means = 0.5 * X[seeds] + 0.5 * xbar
        return np.clip(means, _CLIP, 1.0 - _CLIP)

    def _em(self, X: np.ndarray, means: np.ndarray, bar: tqdm) -> _Run:
        """One EM run from the given means and uniform weights (its progress shown on ``bar``)."""
        n = X.shape[0]
        K = means.shape[0]
        log_w = np.full(K, -np.log(K))
        trace: list[float] = []
        converged = False
        n_iter = 0
        for it in range(int(self.max_iter)):
            # E-step: log responsibilities and the log-likelihood of the current parameters.
            joint = _component_log_lik(X, means) + log_w
            log_px = logsumexp(joint, axis=1)
            ll = float(log_px.mean())
            trace.append(ll)
            bar.set_postfix_str(f"iteration {it}, ln p {ll:.2f}", refresh=False)
            bar.update(0)  # redraws at most every 0.1 s
            if it > 0 and ll - trace[-2] < self.tol:
                converged = True
                break
            resp = np.exp(joint - log_px[:, None])
            # M-step: exact maximizer of the expected complete-data LL on the clipped box.
            nk = resp.sum(axis=0)
            log_w = _safe_log(nk / n)
            # A component with no mass keeps its old means (they no longer matter: weight 0).
            safe_nk = np.where(nk > 0, nk, 1.0)
            new_means = (resp.T @ X) / safe_nk[:, None]
            means = np.where((nk > 0)[:, None], np.clip(new_means, _CLIP, 1.0 - _CLIP), means)
            n_iter = it + 1
        else:
            # max_iter M-steps done: evaluate the final parameters.
            joint = _component_log_lik(X, means) + log_w
            ll = float(logsumexp(joint, axis=1).mean())
            trace.append(ll)
        return _Run(np.exp(log_w), means, ll, n_iter, converged, trace)

    # -------------------------------------------------------------- evaluation
    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise RuntimeError("this BernoulliMixture is not fitted yet: call fit(X) first")

    def _joint(self, X: object) -> np.ndarray:
        """``(N, K)`` matrix of ``log w_k + log p(x | k)``."""
        self._check_fitted()
        Xb = as_binary_matrix(X, "X", n_features=self.means_.shape[1]).astype(np.float64)
        return _component_log_lik(Xb, self.means_) + _safe_log(self.weights_)

    def score_samples(self, X: object) -> np.ndarray:
        """Log-likelihood ``ln p(x)`` of each row of ``X`` (nats), shape ``(N,)``."""
        return logsumexp(self._joint(X), axis=1)

    def score(self, X: object) -> float:
        """Mean log-likelihood of the rows of ``X`` (nats per data point)."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: object) -> np.ndarray:
        """Posterior component probabilities ``(N, K)``."""
        joint = self._joint(X)
        return np.exp(joint - logsumexp(joint, axis=1)[:, None])

    def predict(self, X: object) -> np.ndarray:
        """Most probable component of each row of ``X``, shape ``(N,)``."""
        return np.argmax(self._joint(X), axis=1)

    def sample(
        self, n_samples: int = 1, random_state: int | np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, D), uint8
        labels : ndarray of shape (n_samples,)
            Component of each sample.
        """
        self._check_fitted()
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        rng = _random_state(random_state)
        labels = rng.choice(self.n_components, size=int(n_samples), p=self.weights_ / self.weights_.sum())
        X = (rng.random((int(n_samples), self.means_.shape[1])) < self.means_[labels]).astype(np.uint8)
        return X, labels

    # ------------------------------------------------------------ nemm terms
    def as_machine_params(self) -> dict[str, np.ndarray]:
        """The fit in the one-hot machine's parametrization.

        Returns
        -------
        dict
            ``w`` (D, K) = logit(means).T, ``a`` (D,) = 0, ``log_weights`` (K,)
            and ``weights`` (K,). The one-hot machine with these ``w``, ``a``
            and stationary distribution ``pbar = weights`` has
            ``ln p(x) = logsumexp_k(log_weights[k] + log A(k, x))``, equal to
            :meth:`score_samples`.
        """
        self._check_fitted()
        means = self.means_
        w = (np.log(means) - np.log1p(-means)).T.copy()
        return {
            "w": w,
            "a": np.zeros(means.shape[1]),
            "log_weights": _safe_log(self.weights_),
            "weights": self.weights_.copy(),
        }


def fit_em_ceiling(
    X: object,
    n_components: int,
    n_init: int = 5,
    random_state: int | np.random.Generator | None = 0,
    verbose: bool = False,
) -> float:
    """Mean log-likelihood (nats per data point) of the EM Bernoulli-mixture fit.

    This is the ceiling of a one-hot machine with ``n_components`` hidden states
    on the same data; ``verbose`` shows a progress bar over the EM runs.
    """
    return (
        BernoulliMixture(n_components=n_components, n_init=n_init, random_state=random_state, verbose=verbose)
        .fit(X)
        .log_likelihood_
    )
