"""The EM start: a one-hot machine that is exactly a fitted Bernoulli mixture.

A data-dependent initialization measured for issue 18 (``docs/training-at-scale.md``): start a
one-hot machine from the EM mixture of the same L and train on with ``partial_fit``::

    p = em_initial_params(X, 20, seed=0)
    m = nemm.Machine.from_params(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], learning_rate=0.01)
    m.partial_fit(X, n_epochs=40)

The machine starts reversible (no entropy production); the default ``recipe="auto"`` trains from
the paper's start instead (:mod:`nemm.recipes`).
"""

from __future__ import annotations

import numpy as np

from ._checks import as_binary_matrix, shown
from .mixture import BernoulliMixture

__all__ = ["em_initial_params", "posterior_backward_params"]


def posterior_backward_params(
    w: np.ndarray, log_weights: np.ndarray, xbar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The one-hot x -> z kernel equal to a product-Bernoulli mixture's posterior.

    With ``a = 0`` the forward kernel is ``log A(alpha, x) = sum_i x_i w[i, alpha] -
    softplus(w[i, alpha])``, linear in x, so the posterior ``softmax_alpha(log pi_alpha +
    log A(alpha, x))`` is exactly a softmax of ``u = wbar (x - xbar) + abar`` with

        wbar[alpha, :] = w[:, alpha],
        abar[alpha]    = log pi_alpha - sum_i softplus(w[i, alpha]) + wbar[alpha, :] . xbar,

    the last term undoing the centering of eq. 17.

    Parameters
    ----------
    w : ndarray, (D, L)
        Logits of the components' Bernoulli means.
    log_weights : ndarray, (L,)
        Log mixture weights ``log pi`` (``-inf`` for an empty component).
    xbar : ndarray, (D,)
        The centering mean of the machine (the data mean).

    Returns
    -------
    wbar : ndarray, (L, D)
    abar : ndarray, (L,)

    Notes
    -----
    The machine with these kernels has ``pbar = pi`` as its stationary distribution, because
    ``sum_z' pi(z') M(z', z) = sum_x p(x) P(z | x) = pi(z)``, so its ``p(x)`` is the mixture itself.
    It is also reversible: ``pi(z') M(z', z) = sum_x pi(z') A(z', x) pi(z) A(z, x) / p(x)`` is
    symmetric, so such a machine produces no entropy (sigma = 0); cycles come only from training
    moving it away from the exact posterior.
    """
    w = np.asarray(w, dtype=float)
    log_weights = np.asarray(log_weights, dtype=float)
    xbar = np.asarray(xbar, dtype=float)
    if w.ndim != 2 or log_weights.shape != (w.shape[1],) or xbar.shape != (w.shape[0],):
        raise ValueError(
            f"need w (D, L), log_weights (L,), xbar (D,); got {w.shape}, {log_weights.shape}, {xbar.shape}"
        )
    wbar = w.T.copy()
    # An empty component keeps a finite field far below the others: it is never chosen.
    log_pi = np.maximum(log_weights, -700.0)
    abar = log_pi - np.logaddexp(0.0, w).sum(axis=0) + wbar @ xbar
    return wbar, abar


def em_initial_params(
    X: object,
    n_hidden: int,
    seed: int | None = 0,
    *,
    n_iter: int = 100,
    n_init: int = 1,
    backward: str = "prior",
) -> dict[str, np.ndarray]:
    """Initial one-hot machine parameters from an EM Bernoulli mixture (data-dependent init).

    Fits :class:`nemm.mixture.BernoulliMixture` (k-means++ seeding, at most ``n_iter`` EM
    iterations) and turns it into machine parameters: ``w = logit(means).T``, ``a = 0``, and an
    x -> z kernel whose stationary distribution is the mixture weights ``pi``, so that the machine
    starts with the mixture's likelihood instead of the appendix-A1 start:

    * ``backward="prior"`` (default): ``wbar = 0``, ``abar = log pi``: z is drawn from ``pi``
      whatever x, so ``M(z', z) = pi(z)`` and the chain mixes in one step. This is the paper's
      own start (``wbar = 0``, ``abar = 0``: uniform states) with the mixture's weights.
    * ``backward="posterior"``: the mixture's posterior (:func:`posterior_backward_params`). Same
      p(x), but on digits the posterior is nearly deterministic: on the ten-digit split each of
      4 chains stayed in one state for 1e5 steps, so neither pbar nor the gradient can be
      estimated from chains (see ``docs/training-at-scale.md``).

    Parameters
    ----------
    X : array_like, (N, D)
        Binary training data.
    n_hidden : int
        L, the number of one-hot hidden states (mixture components).
    seed : int or None
        Seed of the k-means++ seeding.
    n_iter : int
        Maximum EM iterations (the fit also stops when one iteration gains less than 1e-6 nats).
    n_init : int
        Independent EM runs; the best is kept.
    backward : {"prior", "posterior"}
        The starting x -> z kernel (see above).

    Returns
    -------
    dict
        ``w`` (D, L), ``a`` (D,), ``wbar`` (L, D), ``abar`` (L,), ``xbar`` (D,) and the mixture's
        own mean log-likelihood ``em_loglik`` (a float): the keywords of ``Machine.from_params``
        plus the EM score, e.g. ``Machine.from_params(**{k: v for k, v in p.items() if k !=
        "em_loglik"}, ...)``.
    """
    if backward not in ("prior", "posterior"):
        raise ValueError(f"backward must be 'prior' or 'posterior', got {backward!r}")
    Xb = as_binary_matrix(X, "X")
    if isinstance(n_hidden, bool) or not isinstance(n_hidden, (int, np.integer)) or n_hidden < 1:
        raise ValueError(f"n_hidden must be a positive integer, got {shown(n_hidden)}")
    mix = BernoulliMixture(n_components=int(n_hidden), n_init=n_init, max_iter=n_iter, random_state=seed).fit(
        Xb
    )
    params = mix.as_machine_params()
    xbar = Xb.mean(axis=0)
    if backward == "posterior":
        wbar, abar = posterior_backward_params(params["w"], params["log_weights"], xbar)
    else:
        wbar = np.zeros_like(params["w"].T)
        abar = np.maximum(params["log_weights"], -700.0)  # an empty component is never drawn
    return {
        "w": params["w"],
        "a": params["a"],
        "wbar": wbar,
        "abar": abar,
        "xbar": xbar,
        "em_loglik": float(mix.log_likelihood_),
    }
