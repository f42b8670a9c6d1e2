"""The class mixing of a model's own sampling chain (spec "Mixing at equal likelihood").

Model level: runs a fitted model (a Machine's nonequilibrium chain, an RBM's
Gibbs chain, or a Bernoulli mixture's i.i.d. draws), labels the samples with a
classifier (:mod:`nemm.classifier`) and measures the labels with the pure
functions of :mod:`nemm.mixing`.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np

from nemm._settings import MIXING_STEPS  # the default length of the mixing chain (samples per chain)
from nemm.baselines import BernoulliMixture
from nemm.classifier import BernoulliNaiveBayes
from nemm.mixing import Classifier, MixingMeasures, exact_tau_int_class, mixing_measures

__all__ = ["MIXING_STEPS", "class_kernel_of", "exact_tau_int_class_of", "mixing_of"]

#: Up to this many visible units the class kernel is summed over every image exactly.
EXACT_VISIBLE_LIMIT = 12


def mixing_of(
    model: Any,
    X: object,
    y: object,
    *,
    n_steps: int = MIXING_STEPS,
    seed: int | None = 0,
    n_chains: int = 1,
    burn_in: int = 1000,
    classifier: Classifier | None = None,
    window: Literal["tapered", "abs", "sokal"] = "tapered",
    sampler: str | None = None,
) -> MixingMeasures:
    """Mixing of a model's own sampling chain, measured on the classes of its samples.

    The one path for every kind of model (spec, "Mixing at equal likelihood"):

    * a :class:`~nemm.Machine` (the nonequilibrium chain, tied or not) or an
      :class:`~nemm.RBM` (its Gibbs chain): ``n_chains`` fresh chains of
      ``n_steps`` consecutive visible states each (``thin=1``, after
      ``burn_in`` double steps);
    * a fitted :class:`~nemm.baselines.BernoulliMixture`: ``n_chains * n_steps``
      i.i.d. ancestral draws (the ideal: ``tau_int_class`` about 1).

    Parameters
    ----------
    model : Machine, RBM or BernoulliMixture
        Fitted.
    X : array_like of 0/1, (N, D)
        Labeled data for the classifier.
    y : array_like, (N,)
        Labels of ``X`` (also ``P_data`` of the sample class KL).
    n_steps : int
        Samples per chain.
    seed : int, optional
        Seed of the chains or draws.
    n_chains : int
        Independent chains (each ``n_steps`` long; their labels are pooled as
        :func:`class_autocorrelation` describes).
    burn_in : int
        Unrecorded double steps at the start of every chain (chains only).
    classifier : fitted classifier, optional
        Default: :class:`BernoulliNaiveBayes` fitted on ``(X, y)``; pass one to
        reuse it across models.
    window : {"tapered", "abs", "sokal"}, default "tapered"
        Window of ``tau_int_class``; the envelope and literal Sokal values are reported beside it.
    sampler : {"gibbs", "pt", "exact"}, optional
        An RBM's sampler for this measure (default its ``sampler`` setting): with ``"pt"`` the
        chains are the beta = 1 rungs of parallel tempering (its swap rates are left in the
        RBM's ``pt_swap_rates_``), with ``"exact"`` the ``n_chains * n_steps`` samples are i.i.d.
        Only an RBM takes it.

    Returns
    -------
    MixingMeasures
    """
    T = int(n_steps)
    C = int(n_chains)
    if T < 2 or C < 1:
        raise ValueError(
            f"need n_steps >= 2 and n_chains >= 1, got n_steps={n_steps!r}, n_chains={n_chains!r}"
        )
    if sampler is not None and not hasattr(model, "pt_temperatures"):
        raise TypeError(f"sampler={sampler!r} applies to an RBM only, got a {type(model).__name__}")
    extra = {} if sampler is None else {"sampler": sampler}
    clf = classifier if classifier is not None else BernoulliNaiveBayes().fit(X, y)
    if isinstance(model, BernoulliMixture):
        draws, _ = model.sample(C * T, random_state=seed)
        samples = np.asarray(draws).reshape(C, T, -1)
    elif hasattr(model, "hidden_trajectory") and hasattr(model, "sample"):
        # Machine.sample with several chains returns them one after another (chain-major rows).
        draws = model.sample(C * T, n_chains=C, thin=1, burn_in=int(burn_in), seed=seed, **extra)
        samples = np.asarray(draws).reshape(C, T, -1)
    else:
        raise TypeError(
            f"mixing_of needs a Machine, an RBM or a BernoulliMixture, got {type(model).__name__}"
        )
    return mixing_measures(samples, clf, y, window=window)


def class_kernel_of(
    model: Any, classifier: Classifier, *, n_draws: int = 2000, seed: int | None = 0
) -> np.ndarray:
    """The class kernel of a model's sampling chain, for :func:`nemm.mixing.exact_class_autocorrelation`.

    ``K[c, z, z'] = sum_{x: classifier(x) = c} A(z, x) Abar(x, z')``: the chain
    in state ``z`` draws an image ``x ~ A(z, .)`` (the generated sample, whose
    class is ``c``) and moves to ``z' ~ Abar(x, .)``. Summed over every image
    exactly for at most 12 visible units; otherwise a Rao-Blackwell estimate
    (as :func:`nemm.diagnostics.rao_blackwell_M`): ``n_draws`` images per
    state, each contributing its exact ``Abar(x, .)`` to its class.

    Parameters
    ----------
    model : Machine or RBM
        Fitted; an RBM is taken as its Gibbs chain (``x ~ p(x|h)``, ``h ~ p(h|x)``).
        The hidden layer must be enumerable (one-hot, or binary with ``L <= 12``).
    classifier : fitted classifier with ``classes_`` and ``predict``
    n_draws : int
        Images per hidden state for the Rao-Blackwell estimate (``D > 12``).
    seed : int, optional
        Seed of the draws.

    Returns
    -------
    numpy.ndarray, shape (n_classes, S, S)
        Classes in the order of ``classifier.classes_``.
    """
    from nemm.exact import Hidden, Normalization, backward_kernel, hidden_states, log_A, visible_states
    from nemm.mixing import _class_indices
    from nemm.rbm import RBM

    machine = model._gibbs() if isinstance(model, RBM) else model
    if not hasattr(machine, "mean_images"):
        raise TypeError(f"class_kernel_of needs a Machine or an RBM, got {type(model).__name__}")
    if machine.hidden == "binary" and machine.n_hidden > 12:
        raise ValueError("class_kernel_of enumerates the hidden states: binary hidden layers need L <= 12")
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws!r}")
    classes = np.asarray(classifier.classes_)
    hidden = cast(Hidden, machine.hidden)
    Z = hidden_states(int(machine.n_hidden), hidden)
    mu = machine.mean_images(np.arange(Z.shape[0]) if hidden == "onehot" else Z)
    S, D = mu.shape

    def abar(x: np.ndarray) -> np.ndarray:
        return backward_kernel(
            machine.wbar_,
            machine.abar_,
            machine.xbar_,
            x,
            hidden,
            cast(Normalization, machine.normalization),
            bool(machine.centered),
        )

    K = np.zeros((classes.size, S, S))
    if D <= EXACT_VISIBLE_LIMIT:
        X = visible_states(D)
        cls = _class_indices(np.asarray(classifier.predict(X)), classes, "predicted labels")
        A = np.exp(log_A(machine.w_, machine.a_, Z, X)).T  # (S, 2^D)
        Ab = abar(X)
        for c in range(classes.size):
            K[c] = A[:, cls == c] @ Ab[cls == c]
        return K
    rng = np.random.default_rng(seed)
    for z in range(S):
        x = (rng.random((int(n_draws), D)) < mu[z]).astype(np.uint8)
        cls = _class_indices(np.asarray(classifier.predict(x)), classes, "predicted labels")
        np.add.at(K[:, z, :], cls, abar(x))
        K[:, z, :] /= int(n_draws)
    return K / K.sum(axis=(0, 2))[None, :, None]  # rows of M stochastic to rounding


def exact_tau_int_class_of(
    model: Any,
    X: object,
    y: object,
    *,
    n_draws: int = 2000,
    seed: int | None = 0,
    classifier: Classifier | None = None,
) -> float:
    """The exact ``tau_int_class`` of a model's sampling chain (the oracle of the estimator of :func:`mixing_of`).

    :func:`nemm.mixing.exact_tau_int_class` of :func:`class_kernel_of`: exact
    for at most 12 visible units, otherwise up to the Monte Carlo error of the
    Rao-Blackwell kernel (``n_draws`` images per state), with no chain and so
    no window.

    Parameters
    ----------
    model : Machine or RBM
    X, y : array_like
        Labeled data for the default classifier (:class:`BernoulliNaiveBayes`).
    n_draws, seed
        Passed to :func:`class_kernel_of`.
    classifier : fitted classifier, optional
        The one :func:`mixing_of` used, to compare the two.

    Returns
    -------
    float
    """
    clf = classifier if classifier is not None else BernoulliNaiveBayes().fit(X, y)
    return exact_tau_int_class(class_kernel_of(model, clf, n_draws=n_draws, seed=seed))
