"""scikit-learn compatibility: Machine and RBM as density estimators (skipped without scikit-learn)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

from nemm import RBM, Machine, load  # noqa: E402

# Small and fast: every estimator check fits this instance (or a clone) a few times.
FAST = dict(n_epochs=2, steps_per_epoch=2, chain_steps=4, batch_size=(4, 8))

_CONTINUOUS = (
    "the check fits on continuous (or negative) random data; a Machine models binary data "
    "and rejects any value other than 0 and 1 with a ValueError naming it"
)
# Checks that cannot apply to binary-only data, each with its reason.
_EXPECTED_FAILED = {
    name: _CONTINUOUS
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_estimators_dtypes",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
    )
}
_EXPECTED_FAILED.update(
    {
        "check_positive_only_tag_during_fit": "negative values are no binary data; the positive_only tag would not "
        "help, since positive non-binary values are rejected as well",
        "check_dtype_object": "the check passes an object array of numbers and strings; a Machine takes only numeric "
        "or boolean arrays and says so in a TypeError",
        "check_estimator_sparse_array": "sparse input is accepted (made dense after its stored values are checked), "
        "but the check's sparse data hold continuous values, rejected as non-binary",
        "check_estimator_sparse_matrix": "as check_estimator_sparse_array",
        "check_estimator_sparse_tag": "as check_estimator_sparse_array",
    }
)


def tiny_binary(seed: int = 0, N: int = 60, D: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((N, D)) < rng.uniform(0.2, 0.8, size=D)).astype(np.uint8)


# The estimator checks warn that Machine does not inherit from sklearn.base.BaseEstimator. It
# does not, on purpose: importing scikit-learn costs more than a second, and nemm keeps it
# optional and unimported; Machine implements the protocol instead (get/set_params,
# __sklearn_tags__, __sklearn_is_fitted__, score, n_features_in_).
with warnings.catch_warnings():  # the checks are listed (and the warning given) right here
    warnings.filterwarnings("ignore", "Estimator Machine does not inherit from", UserWarning)
    _with_checks = parametrize_with_checks(
        [Machine(3, random_state=0, **FAST)], expected_failed_checks=lambda est: _EXPECTED_FAILED
    )


@_with_checks
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _binarized(X: object) -> object:
    """X > 0 for finite real 2-D input; anything else unchanged, for the Machine to reject."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    arr = np.asarray(X)
    if arr.dtype == object:
        return arr
    if (
        arr.ndim == 2
        and np.issubdtype(arr.dtype, np.number)
        and not np.issubdtype(arr.dtype, np.complexfloating)
        and arr.size
        and np.isfinite(arr).all()
    ):
        return arr > 0
    return arr


class BinarizedMachine(Machine):
    """A Machine on ``X > 0``: lets the checks, written for continuous data, exercise the whole
    estimator API (fit, refit, clone, pickle, scores, n_features_in_) instead of stopping at the
    first non-binary value."""

    def fit(self, X, y=None, **kwargs):
        return super().fit(_binarized(X), y, **kwargs)

    def partial_fit(self, X, y=None, **kwargs):
        return super().partial_fit(_binarized(X), y, **kwargs)

    def score_samples(self, X, **kwargs):
        return super().score_samples(_binarized(X), **kwargs)

    def score(self, X, y=None):
        return super().score(_binarized(X), y)


_BINARIZED_EXPECTED_FAILED = {
    "check_dtype_object": _EXPECTED_FAILED["check_dtype_object"],
}

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Estimator BinarizedMachine does not inherit from", UserWarning)
    _with_binarized_checks = parametrize_with_checks(
        [BinarizedMachine(3, random_state=0, **FAST)],
        expected_failed_checks=lambda est: _BINARIZED_EXPECTED_FAILED,
    )


@_with_binarized_checks
def test_sklearn_estimator_checks_on_binarized_data(estimator, check):
    check(estimator)


def test_tags_say_density_estimator():
    tags = get_tags(Machine(3))
    assert tags.estimator_type == "density_estimator"
    assert tags.requires_fit and not tags.target_tags.required


def test_fitted_attributes_exist_only_after_fit():
    X = tiny_binary()
    m = Machine(3, random_state=0, **FAST)
    fitted = [k for k in vars(m) if k.endswith("_") and not k.startswith("__")]
    assert fitted == []
    with pytest.raises(NotFittedError):
        check_is_fitted(m)
    m.fit(X)
    check_is_fitted(m)
    assert m.n_features_in_ == X.shape[1] == m.n_visible_
    assert m.epochs_done_ == FAST["n_epochs"] and len(m.history_["loglik"]) == FAST["n_epochs"]


def test_fit_keeps_the_parameters_as_given():
    X = tiny_binary()
    m = Machine(
        np.int64(3),
        batch_size=8,
        learning_rate=np.float32(0.1),
        random_state=0,
        **{k: v for k, v in FAST.items() if k != "batch_size"},
    )
    before = m.get_params()
    m.fit(X)
    after = m.get_params()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert after[k] is v, k  # the very objects given: fit rewrites nothing
    assert m.batch_size == 8
    c = clone(m)
    assert c.get_params() == before and not hasattr(c, "n_features_in_")


def test_score_is_the_mean_log_likelihood():
    X = tiny_binary()
    m = Machine(3, random_state=0, **FAST).fit(X)
    assert m.score(X) == pytest.approx(float(np.mean(m.score_samples(X))), rel=1e-12)


def test_pipeline_grid_search_and_cross_validation(tmp_path):
    X = tiny_binary()
    # A GridSearchCV grid from np.arange gives numpy integers: the best model must still save.
    grid = GridSearchCV(Machine(3, random_state=0, **FAST), {"n_hidden": np.arange(2, 4)}, cv=2)
    grid.fit(X)
    assert isinstance(grid.best_params_["n_hidden"], np.integer)
    path = grid.best_estimator_.save(tmp_path / "best.npz")
    assert load(path).n_hidden == int(grid.best_params_["n_hidden"])
    pipe = Pipeline([("identity", FunctionTransformer()), ("machine", Machine(3, random_state=0, **FAST))])
    pipe.fit(X)
    assert np.isfinite(pipe.score(X))
    scores = cross_val_score(Machine(3, random_state=0, **FAST), X, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all() and (scores < 0).all()
    # joblib workers receive pickled estimators
    scores2 = cross_val_score(Machine(3, random_state=0, **FAST), X, cv=3, n_jobs=2)
    np.testing.assert_array_equal(scores, scores2)


def test_clone_and_pickle_of_a_fitted_machine():
    X = tiny_binary()
    m = Machine(3, random_state=0, **FAST).fit(X)
    r = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(r.w_, m.w_)
    assert r.score(X) == m.score(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(m))


# --------------------------------------------------------------------------- the RBM baseline
RBM_FAST = dict(n_epochs=2, batch_size=8)

# The same checks as for Machine cannot apply, for the same reasons: the RBM models binary data.
_RBM_EXPECTED_FAILED = {
    name: reason.replace("a Machine", "an RBM") for name, reason in _EXPECTED_FAILED.items()
}

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Estimator RBM does not inherit from", UserWarning)
    _with_rbm_checks = parametrize_with_checks(
        [RBM(3, random_state=0, **RBM_FAST)], expected_failed_checks=lambda est: _RBM_EXPECTED_FAILED
    )


@_with_rbm_checks
def test_sklearn_estimator_checks_rbm(estimator, check):
    check(estimator)


class BinarizedRBM(RBM):
    """An RBM on ``X > 0``, as BinarizedMachine: the whole API under the checks' continuous data."""

    def fit(self, X, y=None, **kwargs):
        return super().fit(_binarized(X), y, **kwargs)

    def partial_fit(self, X, y=None, **kwargs):
        return super().partial_fit(_binarized(X), y, **kwargs)

    def score_samples(self, X):
        return super().score_samples(_binarized(X))

    def score(self, X, y=None):
        return super().score(_binarized(X), y)


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Estimator BinarizedRBM does not inherit from", UserWarning)
    _with_binarized_rbm_checks = parametrize_with_checks(
        [BinarizedRBM(3, random_state=0, **RBM_FAST)],
        expected_failed_checks=lambda est: {"check_dtype_object": _RBM_EXPECTED_FAILED["check_dtype_object"]},
    )


@_with_binarized_rbm_checks
def test_sklearn_estimator_checks_on_binarized_data_rbm(estimator, check):
    check(estimator)


def test_rbm_tags_fitted_attributes_and_score():
    X = tiny_binary()
    tags = get_tags(RBM(3))
    assert tags.estimator_type == "density_estimator" and tags.requires_fit
    r = RBM(3, random_state=0, **RBM_FAST)
    assert [k for k in vars(r) if k.endswith("_") and not k.startswith("__")] == []
    with pytest.raises(NotFittedError):
        check_is_fitted(r)
    r.fit(X)
    check_is_fitted(r)
    assert r.n_features_in_ == X.shape[1] == r.n_visible_
    assert r.score(X) == pytest.approx(float(np.mean(r.score_samples(X))), rel=1e-12)
    # score is the exact mean ln p: the probabilities of all 2**D patterns sum to one
    D = X.shape[1]
    allx = ((np.arange(2**D)[:, None] >> np.arange(D)) & 1).astype(np.uint8)
    assert np.logaddexp.reduce(r.score_samples(allx)) == pytest.approx(0.0, abs=1e-9)


def test_rbm_fit_keeps_the_parameters_as_given():
    X = tiny_binary()
    r = RBM(
        np.int64(3),
        learning_rate=np.float32(0.05),
        batch_size=np.int32(8),
        n_epochs=np.int64(2),
        random_state=np.uint8(0),
    )
    before = r.get_params()
    r.fit(X)
    after = r.get_params()
    for k, v in before.items():
        assert after[k] is v, k
    c = clone(r)
    assert c.get_params() == before and not hasattr(c, "n_features_in_")


def test_rbm_pipeline_grid_search_and_cross_validation(tmp_path):
    X = tiny_binary()
    grid = GridSearchCV(RBM(3, random_state=0, **RBM_FAST), {"n_hidden": np.arange(2, 4)}, cv=2)
    grid.fit(X)
    assert isinstance(grid.best_params_["n_hidden"], np.integer)
    path = grid.best_estimator_.save(tmp_path / "best.npz")
    assert load(path).n_hidden == int(grid.best_params_["n_hidden"])
    pipe = Pipeline([("identity", FunctionTransformer()), ("rbm", RBM(3, random_state=0, **RBM_FAST))])
    pipe.fit(X)
    assert np.isfinite(pipe.score(X))
    scores = cross_val_score(RBM(3, random_state=0, **RBM_FAST), X, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all() and (scores < 0).all()
    scores2 = cross_val_score(RBM(3, random_state=0, **RBM_FAST), X, cv=3, n_jobs=2)  # pickled to workers
    np.testing.assert_array_equal(scores, scores2)


def test_clone_pickle_and_deepcopy_of_a_fitted_rbm():
    import copy

    X = tiny_binary()
    r = RBM(3, "binary", random_state=0, **RBM_FAST).fit(X)
    for back in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r)):
        np.testing.assert_array_equal(back.w_, r.w_)
        assert back.score(X) == r.score(X) and back.get_params() == r.get_params()
        assert back.history_ == r.history_ and back.n_features_in_ == r.n_features_in_
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(r))
