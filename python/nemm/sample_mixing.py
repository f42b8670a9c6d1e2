"""The class mixing of a model's own sampling chain (spec "Mixing at equal likelihood").

Model level: runs a fitted model (a Machine's nonequilibrium chain, an RBM's
Gibbs chain, or a Bernoulli mixture's i.i.d. draws), labels the samples with a
classifier (:mod:`nemm.classifier`) and measures the labels with the pure
functions of :mod:`nemm.mixing`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from nemm._settings import MIXING_STEPS  # the default length of the mixing chain (samples per chain)
from nemm.baselines import BernoulliMixture
from nemm.classifier import BernoulliNaiveBayes
from nemm.mixing import Classifier, MixingMeasures, mixing_measures

__all__ = ["MIXING_STEPS", "mixing_of"]


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
    window: Literal["abs", "sokal"] = "sokal",
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
    window : {"abs", "sokal"}, default "sokal"
        Window of ``tau_int_class``; the envelope value is reported beside it.
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
