"""Tests of nemm.recipes: the EM initialization and the settings of the "auto" recipe."""

from __future__ import annotations

import numpy as np
import pytest

import nemm
from nemm.baselines import BernoulliMixture
from nemm.exact import exact_model
from nemm.recipes import auto_recipe, em_initial_params, posterior_backward_params


def _mixture_data(n: int, D: int, K: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.05, 0.95, size=(K, D))
    labels = rng.integers(K, size=n)
    return (rng.random((n, D)) < means[labels]).astype(np.uint8)


def test_posterior_kernel_is_the_mixture_posterior() -> None:
    X = _mixture_data(400, 10, 3, seed=1)
    bm = BernoulliMixture(3, n_init=1, random_state=0).fit(X)
    p = bm.as_machine_params()
    xbar = X.mean(axis=0)
    wbar, abar = posterior_backward_params(p["w"], p["log_weights"], xbar)
    u = (X - xbar) @ wbar.T + abar
    post = np.exp(u - u.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(post, bm.predict_proba(X), atol=1e-10)


@pytest.mark.parametrize("backward", ["prior", "posterior"])
def test_em_machine_is_the_mixture_exactly(backward: str) -> None:
    """On an enumerable D the machine's stationary pbar is pi and its p(x) the mixture's."""
    X = _mixture_data(300, 8, 3, seed=2)
    p = em_initial_params(X, 3, seed=0, n_iter=50, backward=backward)
    bm = BernoulliMixture(3, n_init=1, max_iter=50, random_state=0).fit(X)
    ex = exact_model(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"])
    np.testing.assert_allclose(ex.pbar, bm.weights_, atol=1e-9)
    np.testing.assert_allclose(ex.log_px, bm.score_samples(ex.X), atol=1e-9)
    assert p["em_loglik"] == pytest.approx(bm.log_likelihood_)
    # Both starts are reversible (detailed balance): the machine begins without cycles.
    flow = ex.pbar[:, None] * ex.M
    np.testing.assert_allclose(flow, flow.T, atol=1e-12)
    if backward == "prior":
        np.testing.assert_allclose(ex.M, np.tile(bm.weights_, (3, 1)), atol=1e-12)


def test_em_initial_params_feed_a_machine(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X = digits[0][::10]
    p = em_initial_params(X, 4, seed=0, n_iter=30)
    em = p.pop("em_loglik")
    m = nemm.Machine.from_params(**p, random_state=0)
    assert m.n_hidden == 4
    # The prior start mixes in one step, so a short chain already finds pbar = pi.
    pbar = m.occupancy(20_000, seed=1)[1]
    assert m.score_samples(X, pbar=pbar).mean() == pytest.approx(em, abs=0.05)
    m.partial_fit(X, n_epochs=1)  # trains on from the given parameters
    assert m.epochs_done_ == 1


def test_em_initial_params_errors() -> None:
    X = _mixture_data(50, 6, 2, seed=3)
    with pytest.raises(ValueError, match="backward"):
        em_initial_params(X, 2, backward="exact")
    with pytest.raises(ValueError, match="n_hidden"):
        em_initial_params(X, 0)
    with pytest.raises(ValueError, match="log_weights"):
        posterior_backward_params(np.zeros((6, 2)), np.zeros(3), np.zeros(6))


def test_auto_recipe_one_hot_starts_from_em_and_trains_on_gently() -> None:
    demo = auto_recipe(6, 2980, 784, "onehot")
    assert demo["init"] == "em" and (demo["em_iter"], demo["em_init"]) == (200, 5)
    assert demo["n_chains"] == 8 and demo["chain_steps"] == 48 and demo["batch_size"] == (16, 160)
    assert (demo["learning_rate"], demo["learning_rate_final"], demo["lr_pieces"]) == (0.01, 0.001, 4)
    assert demo["n_epochs"] == 40 and demo["passes"] == pytest.approx(40 * 30 * 88 / 2980)
    ten = auto_recipe(20, 10_000, 784, "onehot")
    assert ten["n_chains"] * ten["chain_steps"] >= 20 * 20 > (ten["n_chains"] - 1) * ten["chain_steps"]
    full = auto_recipe(64, 60_000, 784, "onehot")
    assert full["n_chains"] == 27 and (full["em_iter"], full["em_init"]) == (50, 1)  # EM effort capped
    assert auto_recipe(500, 60_000, 784, "onehot")["n_chains"] == 64  # chains capped


def test_auto_recipe_binary_trains_from_the_paper_start_for_32_passes() -> None:
    small = auto_recipe(6, 2980, 784, "binary")
    assert small["init"] == "paper" and small["em_iter"] == 0
    assert (small["learning_rate"], small["learning_rate_final"]) == (0.02, None)
    assert small["n_epochs"] == 120 and small["passes"] > 32  # the paper's epochs are the floor
    big = auto_recipe(64, 60_000, 784, "binary")
    assert big["n_epochs"] > 120 and 32 <= big["passes"] < 32.1


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
def test_auto_recipe_settings_are_valid_machine_settings(hidden: str) -> None:
    r = auto_recipe(20, 10_000, 784, hidden)
    keys = ("n_chains", "chain_steps", "learning_rate", "n_epochs", "steps_per_epoch", "batch_size")
    m = nemm.Machine(20, hidden=hidden, **{k: r[k] for k in keys})
    assert m._validate_settings()["n_chains"] == r["n_chains"]


@pytest.mark.parametrize("args, message", [
    ((0, 10, 784, "onehot"), "n_hidden"),
    ((6, -1, 784, "onehot"), "n_samples"),
    ((6, 10, True, "onehot"), "n_features"),
    ((6, 10, 784, "potts"), "hidden"),
])
def test_auto_recipe_errors(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        auto_recipe(*args)
