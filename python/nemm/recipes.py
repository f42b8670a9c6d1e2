"""Training recipes: the settings a :class:`nemm.Machine` trains with when the user leaves them out.

``Machine(recipe="paper")`` is the paper's protocol (section IV.A): RMSprop at 0.1, 120 epochs of
30 gradient steps, minibatches growing from 16 to 160, T = 48, one persistent chain, the sampled
gradient of eqs. 16-17. ``Machine(recipe="auto")`` (the default) is what reaches the one-hot
model family's ceiling (the EM mixture of the same L) from the paper's demo to all of MNIST
(``docs/training-at-scale.md`` has the measurements):

* the Rao-Blackwellized gradient for one-hot machines: each recorded fantasy x' weights every
  hidden state by Abar(z | x') instead of the one state it drew. With the sampled gradient a
  state the chain did not visit during a step gets no weight and no gradient, and at L = 20 half
  of the states die (9 to 11 of 20 above 1% occupancy, 13 to 17 nats below the EM ceiling);
* minibatches of 500 rows (all rows when there are fewer) at a constant size, and RMSprop at
  0.03: the paper's minibatches of 16 to 160 digits drawn from ten classes give a gradient too
  noisy to settle the last nats;
* 7200 gradient steps (twice the paper's 3600), counted in passes over the data: an epoch is one
  pass (``ceil(N / batch)`` steps), and the number of epochs is what makes about 7200 steps;
* one-hot machines start from the EM mixture of the same L (:mod:`nemm.em_start`: the best of 5
  EM runs as a machine with ``wbar = 0``, ``abar = ln pi``) while that is cheap (N L at most
  1e6; above it, appendix A1's start): from appendix A1 about one seed in five ends in another
  local optimum of the mixture likelihood (demo: 29 of 36 seeds within 0.5 nat of EM), as EM
  does from a single start. Training from the EM start grows cycles as strong as from appendix
  A1 (counting sigma about 9-10 on the demo).

Binary hidden layers keep the sampled gradient (a sum over 2^L states has no cheap expectation)
with the same minibatches, learning rate and budget. Explicit keywords always win over a recipe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nemm._settings import RECIPES

__all__ = [
    "RECIPES",
    "RECIPE_SETTINGS",
    "PAPER",
    "EM_START_LIMIT",
    "auto_recipe",
    "em_start_applies",
    "recipe_settings",
    "resolve_recipe",
]

#: The settings a recipe chooses when they are left at None.
RECIPE_SETTINGS = ("learning_rate", "n_epochs", "steps_per_epoch", "batch_size", "chain_steps", "n_chains")

#: The paper's protocol (section IV.A; the spec's "Paper protocol").
PAPER: dict[str, Any] = {
    "learning_rate": 0.1,
    "n_epochs": 120,
    "steps_per_epoch": 30,
    "batch_size": (16, 160),
    "chain_steps": 48,
    "n_chains": 1,
    "gradient": "sampled",
}

# The auto recipe's constants (docs/training-at-scale.md: each one measured against the EM ceiling).
_AUTO_BATCH = 500
_AUTO_LEARNING_RATE = 0.03
_AUTO_STEPS = 7200
#: The auto recipe starts one-hot machines from the EM mixture while N L is at most this (the EM fit
#: with 5 starts then costs seconds; at 60,000 digits and L = 64 the start from appendix A1 is
#: already within 1 nat of the ceiling).
EM_START_LIMIT = 1_000_000
#: EM effort of that start: the best of this many k-means++ starts, at most this many iterations.
EM_START_RUNS, EM_START_ITERATIONS = 5, 200


def em_start_applies(settings: Mapping[str, Any], n_samples: int) -> bool:
    """Whether a fit with these (checked) settings on ``n_samples`` rows starts from the EM mixture."""
    L, N = int(settings["n_hidden"]), int(n_samples)
    # A mixture needs at least as many rows as components; fewer rows keep appendix A1's start.
    return (
        settings["recipe"] == "auto"
        and settings["hidden"] == "onehot"
        and not settings["tied"]
        and L <= N
        and N * L <= EM_START_LIMIT
    )


def auto_recipe(n_hidden: int, n_samples: int, hidden: str) -> dict[str, Any]:
    """The settings of ``recipe="auto"`` for ``n_samples`` training rows.

    Parameters
    ----------
    n_hidden : int
        L (kept in the signature: the recipe's choices are measured for L = 6 to 500 and do not
        depend on it yet).
    n_samples : int
        N, the rows of the training data.
    hidden : {"onehot", "binary"}

    Returns
    -------
    dict
        ``learning_rate``, ``n_epochs`` (passes over the data), ``steps_per_epoch`` (one pass),
        ``batch_size`` (a constant pair), ``chain_steps``, ``n_chains`` and ``gradient``.
    """
    del n_hidden  # the measured choices hold from L = 6 to 500
    batch = max(1, min(_AUTO_BATCH, int(n_samples)))
    steps_per_pass = max(1, math.ceil(int(n_samples) / batch))
    return {
        "learning_rate": _AUTO_LEARNING_RATE,
        "n_epochs": max(1, round(_AUTO_STEPS / steps_per_pass)),
        "steps_per_epoch": steps_per_pass,
        "batch_size": (batch, batch),
        "chain_steps": PAPER["chain_steps"],
        "n_chains": 1,
        "gradient": "rao_blackwell" if hidden == "onehot" else "sampled",
    }


def recipe_settings(recipe: str, n_hidden: int, n_samples: int | None, hidden: str) -> dict[str, Any]:
    """What ``recipe`` chooses; ``n_samples=None`` (no data yet) gives the paper's values for ``"paper"``
    and for ``"auto"`` the choices that do not depend on the data."""
    if recipe == "paper":
        return dict(PAPER)
    if n_samples is None:
        return {"gradient": "rao_blackwell" if hidden == "onehot" else "sampled"}
    return auto_recipe(n_hidden, n_samples, hidden)


def resolve_recipe(settings: Mapping[str, Any], n_samples: int | None) -> dict[str, Any]:
    """Checked Machine settings with the recipe's choices in place of the ones left at None.

    ``gradient="auto"`` becomes the recipe's gradient. Without data (``n_samples=None``) the
    auto recipe's data-dependent settings stay None until the machine is fitted.
    """
    out = dict(settings)
    chosen = recipe_settings(out["recipe"], out["n_hidden"], n_samples, out["hidden"])
    for name in RECIPE_SETTINGS:
        if out[name] is None and name in chosen:
            out[name] = chosen[name]
    if out["gradient"] == "auto":
        out["gradient"] = chosen["gradient"]
    return out
