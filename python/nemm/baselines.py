"""Quality baselines for the one-hot machine: the EM Bernoulli mixture (its likelihood ceiling,
:mod:`nemm.mixture`) and the equilibrium RBM trained by its own rule (:mod:`nemm.rbm`).

With one-hot hidden states the machine's stationary marginal is a mixture of L product-Bernoulli
distributions, so the maximum-likelihood mixture of the same L bounds its log-likelihood on the
same data (the "A fact worth knowing" section of ``docs/model.md``).
"""

from __future__ import annotations

from .mixture import BernoulliMixture, fit_em_ceiling
from .rbm import RBM

__all__ = ["BernoulliMixture", "RBM", "fit_em_ceiling"]
