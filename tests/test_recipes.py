"""Tests of nemm.recipes: the EM initialization and the settings of the "auto" recipe."""

from __future__ import annotations

import numpy as np
import pytest

import nemm
from nemm.baselines import BernoulliMixture
from nemm.em_start import em_initial_params, posterior_backward_params
from nemm.exact import exact_model
from nemm.recipes import PAPER, auto_recipe, resolve_recipe


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


# --------------------------------------------------------------------------- the recipes


def test_auto_recipe_counts_epochs_in_passes_of_minibatches_of_500() -> None:
    demo = auto_recipe(6, 2980, "onehot")
    assert demo["batch_size"] == (500, 500) and demo["steps_per_epoch"] == 6  # one pass: ceil(2980 / 500)
    assert demo["n_epochs"] == 1200 and demo["n_epochs"] * demo["steps_per_epoch"] == 7200
    assert demo["learning_rate"] == 0.03 and demo["gradient"] == "rao_blackwell"
    assert (demo["chain_steps"], demo["n_chains"]) == (48, 1)
    full = auto_recipe(64, 60_000, "onehot")
    assert full["steps_per_epoch"] == 120 and full["n_epochs"] == 60
    small = auto_recipe(3, 40, "onehot")
    assert small["batch_size"] == (40, 40) and small["steps_per_epoch"] == 1 and small["n_epochs"] == 7200
    assert auto_recipe(6, 2980, "binary")["gradient"] == "sampled"  # no cheap expectation over 2^L states


def test_resolve_recipe_fills_only_what_was_left_out() -> None:
    m = nemm.Machine(4, recipe="paper")
    assert {k: m.training_settings(100)[k] for k in PAPER} == PAPER
    auto = nemm.Machine(4, learning_rate=0.2, gradient="sampled").training_settings(2980)
    assert auto["learning_rate"] == 0.2 and auto["gradient"] == "sampled"  # explicit keywords win
    assert auto["batch_size"] == (500, 500) and auto["n_epochs"] == 1200
    unresolved = resolve_recipe(nemm.Machine(4)._validate_settings(), None)  # no data yet
    assert unresolved["gradient"] == "rao_blackwell" and unresolved["n_epochs"] is None
    with pytest.raises(ValueError, match="recipe must be one of"):
        nemm.Machine(4, recipe="fast").training_settings(10)
    with pytest.raises(ValueError, match="gradient='rao_blackwell' weights every one-hot state"):
        nemm.Machine(4, hidden="binary", gradient="rao_blackwell").fit(_mixture_data(30, 6, 2, seed=0))


def test_paper_recipe_is_the_paper_protocol_bit_for_bit() -> None:
    # (tools/behaviour_hash.py checks recipe="paper" against the engine's recorded behaviour.)
    X = _mixture_data(60, 8, 3, seed=1)
    a = nemm.Machine(3, recipe="paper", n_epochs=3, random_state=0).fit(X)
    b = nemm.Machine(
        3,
        recipe="paper",
        n_epochs=3,
        learning_rate=0.1,
        steps_per_epoch=30,
        batch_size=(16, 160),
        chain_steps=48,
        n_chains=1,
        gradient="sampled",
        random_state=0,
    ).fit(X)
    np.testing.assert_array_equal(a.w_, b.w_)
    np.testing.assert_array_equal(a.wbar_, b.wbar_)
    assert a.history_["batch_size"] == b.history_["batch_size"] == [16, 88, 160]


def test_auto_recipe_starts_small_one_hot_machines_from_the_em_mixture() -> None:
    X = _mixture_data(200, 10, 3, seed=4)
    starts = {}
    for recipe in ("auto", "paper"):
        m = nemm.Machine(3, recipe=recipe, random_state=0)
        m._cfg = m.training_settings(X.shape[0])
        starts[recipe] = m._initial_params(X, np.random.default_rng(0))
    em = starts["auto"]
    assert not em["wbar"].any() and np.isclose(np.exp(em["abar"]).sum(), 1.0)  # wbar = 0, abar = ln pi
    mix = BernoulliMixture(n_components=3, n_init=5, random_state=0).fit(X)
    ll_start = nemm.Machine.from_params(em["w"], em["a"], em["wbar"], em["abar"], em["xbar"]).score(X)
    assert ll_start == pytest.approx(mix.log_likelihood_, abs=0.05)  # the machine starts as the mixture
    assert not starts["paper"]["abar"].any()  # appendix A1: uniform states
    big = nemm.Machine(64, random_state=0)._validate_settings()
    assert not nemm.recipes.em_start_applies(big, 60_000)  # N L above the limit: appendix A1's start


def test_auto_recipe_trains_and_is_recorded_in_the_model_file(tmp_path) -> None:
    X = _mixture_data(60, 8, 3, seed=2)
    m = nemm.Machine(3, n_epochs=4, random_state=0).fit(X)  # recipe="auto" by default
    s = m.training_settings_
    assert s["recipe"] == "auto" and s["gradient"] == "rao_blackwell" and s["batch_size"] == (60, 60)
    assert m._engine.gradient == "rao_blackwell" and m.history_["batch_size"] == [60] * 4
    loaded = nemm.load(m.save(tmp_path / "m.npz"))
    assert (
        loaded.recipe == "auto" and loaded.learning_rate is None
    )  # the recipe's name, its choices left to it
    loaded.partial_fit(X, n_epochs=1)
    m.partial_fit(X, n_epochs=1)
    np.testing.assert_array_equal(loaded.w_, m.w_)  # the same choices, so the same continuation


def test_files_written_before_the_recipes_continue_with_the_paper_protocol() -> None:
    # Settings of a model file without "recipe": every training setting is explicit, and the
    # gradient is the paper's sampled one.
    m = nemm.Machine(
        **nemm.Machine._settings_from_file(
            {
                "n_hidden": 3,
                "learning_rate": 0.1,
                "n_epochs": 2,
                "steps_per_epoch": 3,
                "batch_size": [4, 8],
                "chain_steps": 4,
                "n_chains": 1,
            }
        )
    )
    assert m.recipe == "paper" and m.training_settings(40)["gradient"] == "sampled"
