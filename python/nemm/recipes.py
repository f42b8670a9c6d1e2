"""Training recipes: the settings the ``"auto"`` recipe picks, and the EM initialization it uses.

Pure functions of the problem size and the data; nothing here trains a machine. The measurements
behind every choice are in ``docs/training-at-scale.md`` and ``bench/scale_experiments.py``.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_binary_matrix
from .baselines import BernoulliMixture

__all__ = ["auto_recipe", "em_initial_params", "posterior_backward_params"]


def posterior_backward_params(w: np.ndarray, log_weights: np.ndarray,
                              xbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        raise ValueError(f"need w (D, L), log_weights (L,), xbar (D,); got {w.shape}, "
                         f"{log_weights.shape}, {xbar.shape}")
    wbar = w.T.copy()
    # An empty component keeps a finite field far below the others: it is never chosen.
    log_pi = np.maximum(log_weights, -700.0)
    abar = log_pi - np.logaddexp(0.0, w).sum(axis=0) + wbar @ xbar
    return wbar, abar


def em_initial_params(X: object, n_hidden: int, seed: int | None = 0, *, n_iter: int = 100,
                      n_init: int = 1, backward: str = "prior") -> dict[str, np.ndarray]:
    """Initial one-hot machine parameters from an EM Bernoulli mixture (data-dependent init).

    Fits :class:`nemm.baselines.BernoulliMixture` (k-means++ seeding, at most ``n_iter`` EM
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
        raise ValueError(f"n_hidden must be a positive integer, got {n_hidden!r}")
    mix = BernoulliMixture(n_components=int(n_hidden), n_init=n_init, max_iter=n_iter,
                           random_state=seed).fit(Xb)
    params = mix.as_machine_params()
    xbar = Xb.mean(axis=0)
    if backward == "posterior":
        wbar, abar = posterior_backward_params(params["w"], params["log_weights"], xbar)
    else:
        wbar = np.zeros_like(params["w"].T)
        abar = np.maximum(params["log_weights"], -700.0)  # an empty component is never drawn
    return {"w": params["w"], "a": params["a"], "wbar": wbar, "abar": abar, "xbar": xbar,
            "em_loglik": float(mix.log_likelihood_)}


#: Recorded hidden states per gradient step per hidden unit: C x T >= 20 L kept all 20 states of
#: the ten-digit L = 20 machine alive (C = 8, T = 48: 19 L); C = 1 (2.4 L) lost half of them.
_RECORDED_PER_STATE = 20
#: Chains: at least 8 (the measured fix), at most 64 (C = 64 at L = 64 gained nothing over 27).
_MIN_CHAINS, _MAX_CHAINS = 8, 64
#: The paper's T, steps per epoch and minibatch ramp: kept (T = 96 gained nothing at C = 8).
_CHAIN_STEPS, _STEPS_PER_EPOCH, _BATCH_SIZE = 48, 30, (16, 160)
#: Training from the paper's start (binary layers): RMSprop rate 0.02 beat 0.1, 0.01 and every
#: decay tried; at least the paper's 120 epochs and 32 passes over the data.
_LEARNING_RATE, _MIN_PASSES, _PAPER_EPOCHS = 0.02, 32, 120
#: Training on from the EM start (one-hot layers): 0.01 -> 0.001 in 4 geometric pieces over 40
#: epochs, the setting measured on the demo and the ten-digit split.
_FINETUNE_RATES, _FINETUNE_PIECES, _FINETUNE_EPOCHS = (0.01, 0.001), 4, 40
#: EM effort: up to 200 iterations and 5 starts while N x L <= 1e6 (demo, ten digits); 50
#: iterations and 1 start above (60,000 digits x 64 states: 50 iterations reach the EM-64 test
#: ln p within 0.05 nats).
_EM_SMALL = 1_000_000


def auto_recipe(n_hidden: int, n_samples: int, n_features: int, hidden: str) -> dict:
    """The training settings of the ``"auto"`` recipe for a problem of the given size.

    Chosen from the measurements in ``docs/training-at-scale.md`` (threshold-binarized MNIST,
    one-hot L = 6, 20 and 64, binary L = 6). The paper protocol falls behind the EM ceiling
    because hidden states die in the first epoch: the gradient's weights are normalized over the
    C x T states the chains recorded in the step, a state missing from that window gets only a
    one-signed push down, and RMSprop turns it into a step of about the learning rate. More
    chains and a smaller rate keep the states alive, but from the paper's start nemm training
    still ends about 2 nats (L = 20) to 8 nats (L = 64) below EM. Started from the EM mixture
    itself, it stays within 0.05-1.6 nats of the ceiling and grows cycles; so one-hot machines
    start there.

    Parameters
    ----------
    n_hidden : int
        L: one-hot states or binary hidden bits.
    n_samples : int
        N, training rows.
    n_features : int
        D, visible bits (checked; no setting depends on it in the measured range, D = 784).
    hidden : {"onehot", "binary"}
        The hidden layer.

    Returns
    -------
    dict
        ``init`` : ``"em"`` (one-hot) or ``"paper"`` (binary)
            ``"em"``: :func:`em_initial_params` with ``em_iter`` iterations and ``em_init``
            starts, ``backward="prior"`` (``wbar = 0``, ``abar = log pi``): the machine starts
            *as* the mixture, at the ceiling (demo: 36 of 36 seeds within 0.5 nat after training
            on, against 28 of 36 from the paper's start with the settings below and 11 of 36 for
            the paper protocol; 60,000 digits, L = 64: test ln p -136.88 at the start and -138.2
            to -138.4 after training on, against EM-64's -136.83, where 21 passes from the
            paper's start reach -144.9). A binary layer's 2^L states
            are no mixture EM fits, so binary machines keep appendix A1.
        ``em_iter``, ``em_init`` : int
            200 iterations and 5 starts while N x L <= 1e6, else 50 and 1 (0 and 0 for binary).
        ``n_chains`` : int
            ``C = clip(ceil(20 L / T), 8, 64)``: at least about 20 recorded states per hidden unit
            per gradient step (from the paper's start ``C = 8`` took the ten-digit L = 20 median
            from -15.6 to -3.3 nats below EM, with 19-20 of 20 states alive instead of 9-10), at
            most 64 chains (cost grows with C; 64 gave no gain over 27 at L = 64).
        ``chain_steps`` : int
            T = 48, the paper's (T = 96 gained nothing).
        ``learning_rate``, ``learning_rate_final``, ``lr_pieces`` : float, float or None, int
            RMSprop rate, geometric from ``learning_rate`` to ``learning_rate_final`` over
            ``lr_pieces`` equal, piecewise-constant pieces of the epochs (None: constant). From
            the EM start 0.01 -> 0.001 in 4 pieces: nemm updates are noisy and move the machine
            off the mixture by an amount that follows the rate (seed 0, L = 20: -0.04 nats at
            0.001, -0.45 at 0.01 -> 0.001 with 8 or 64 chains alike, -8 at 0.1). From the
            paper's start a constant 0.02 (0.1 kills states; decays were worse; 0.01 no better).
        ``steps_per_epoch``, ``batch_size`` : int, (int, int)
            The paper's 30 steps and 16 -> 160 ramp.
        ``n_epochs`` : int
            From the EM start 40 (the measured fine-tune). From the paper's start at least 120
            and at least 32 passes (what 120 epochs give on 10,000 rows, where four times more
            gained 0.02 nats).
        ``passes`` : float
            The passes over the data those epochs amount to.

    Raises
    ------
    ValueError
        If a size is not a positive integer or ``hidden`` is unknown.

    Notes
    -----
    The machine lacks two things this recipe uses: an EM start (``init="em"``: call
    :func:`em_initial_params` and load its arrays as ``from_params`` does) and a learning-rate
    schedule (the geometric pieces above). Binary hidden layers were measured at L = 6 only
    (C 8, lr 0.02 took the median from -140.0 to -134.4 nats); the chain rule is untested at
    larger binary L.
    """
    for name, value in (("n_hidden", n_hidden), ("n_samples", n_samples), ("n_features", n_features)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if hidden not in ("onehot", "binary"):
        raise ValueError(f"hidden must be 'onehot' or 'binary', got {hidden!r}")
    L, N = int(n_hidden), int(n_samples)
    n_chains = min(_MAX_CHAINS, max(_MIN_CHAINS, -(-_RECORDED_PER_STATE * L // _CHAIN_STEPS)))
    rows_per_epoch = _STEPS_PER_EPOCH * (_BATCH_SIZE[0] + _BATCH_SIZE[1]) / 2
    recipe: dict = {"n_chains": int(n_chains), "chain_steps": _CHAIN_STEPS,
                    "steps_per_epoch": _STEPS_PER_EPOCH, "batch_size": _BATCH_SIZE}
    if hidden == "onehot":
        small = N * L <= _EM_SMALL
        recipe.update(init="em", em_iter=200 if small else 50, em_init=5 if small else 1,
                      learning_rate=_FINETUNE_RATES[0], learning_rate_final=_FINETUNE_RATES[1],
                      lr_pieces=_FINETUNE_PIECES, n_epochs=_FINETUNE_EPOCHS)
    else:
        n_epochs = max(_PAPER_EPOCHS, int(np.ceil(_MIN_PASSES * N / rows_per_epoch)))
        recipe.update(init="paper", em_iter=0, em_init=0, learning_rate=_LEARNING_RATE,
                      learning_rate_final=None, lr_pieces=1, n_epochs=int(n_epochs))
    recipe["passes"] = recipe["n_epochs"] * rows_per_epoch / N
    return recipe
