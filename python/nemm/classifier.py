"""The classifier that labels generated samples: a Bernoulli naive Bayes on binary features.

Spec section "Mixing at equal likelihood": every generated visible state is
given the class of a classifier fitted on the labeled data; :mod:`nemm.mixing`
then measures the sequence of labels. Any object with ``classes_`` and
``predict`` serves there; this one is the default (small, exact, no
dependency beyond numpy).
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import as_binary_matrix
from ._logdomain import logsumexp

__all__ = ["BernoulliNaiveBayes"]

#: Rows per piece of the classifier's matrix product (see BernoulliNaiveBayes.joint_log_likelihood).
_JLL_ROWS = 4096


def _as_label_vector(y: object, n: int | None, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {n} (one per row of X)")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels")
    return arr.astype(np.int64)


class BernoulliNaiveBayes:
    """Bernoulli naive Bayes on binary features with Laplace smoothing, in the log domain.

    ``P(x | c) = prod_i theta_ci^x_i (1 - theta_ci)^(1 - x_i)`` with
    ``theta_ci = (n_ci + alpha) / (n_c + 2 alpha)`` (``n_ci``: points of class
    ``c`` with ``x_i = 1``), and the class prior ``n_c / N``. Only sums of
    logarithms are ever formed: for ``D = 784`` the product underflows.

    Parameters
    ----------
    alpha : float, default 1.0
        Laplace (add-alpha) smoothing; must be positive so that no log is ``-inf``.

    Attributes
    ----------
    classes_ : ndarray of int, shape (K,)
        The class labels seen by :meth:`fit`, ascending.
    class_log_prior_ : ndarray, shape (K,)
        ``ln(n_c / N)``.
    feature_log_prob_ : ndarray, shape (K, D)
        ``ln theta_ci``.
    feature_log_neg_prob_ : ndarray, shape (K, D)
        ``ln(1 - theta_ci)``.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: object, y: object) -> BernoulliNaiveBayes:
        """Fit on labeled binary data.

        Parameters
        ----------
        X : array_like of 0/1, shape (N, D)
        y : array_like of int, shape (N,)
            Class labels; at least two distinct classes.

        Returns
        -------
        self
        """
        alpha = float(self.alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be finite and positive, got {self.alpha!r}")
        Xb = as_binary_matrix(X, "X")
        labels = _as_label_vector(y, Xb.shape[0])
        classes, idx, n_c = np.unique(labels, return_inverse=True, return_counts=True)
        if classes.size < 2:
            raise ValueError(f"y must contain at least 2 classes, got {classes.size}")
        onehot = np.zeros((Xb.shape[0], classes.size))
        onehot[np.arange(Xb.shape[0]), idx] = 1.0
        n_ci = onehot.T @ Xb.astype(np.float64)  # (K, D) counts of ones per class
        denom = (n_c + 2.0 * alpha)[:, None]
        self.classes_ = classes
        self.class_log_prior_ = np.log(n_c / n_c.sum())
        self.feature_log_prob_ = np.log(n_ci + alpha) - np.log(denom)
        self.feature_log_neg_prob_ = np.log(n_c[:, None] - n_ci + alpha) - np.log(denom)
        return self

    def _require_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError("BernoulliNaiveBayes is not fitted; call fit(X, y) first")

    def joint_log_likelihood(self, X: object) -> np.ndarray:
        """``ln P(c) + ln P(x | c)`` for every row of ``X`` and class, shape (N, K)."""
        self._require_fitted()
        Xb = as_binary_matrix(X, "X", n_features=self.feature_log_prob_.shape[1])
        # sum_i [x_i ln theta + (1 - x_i) ln(1 - theta)] = x . (ln theta - ln(1-theta)) + sum_i ln(1-theta)
        diff = self.feature_log_prob_ - self.feature_log_neg_prob_
        neg = self.feature_log_neg_prob_.sum(axis=1)
        # In pieces of at least _JLL_ROWS rows: the float64 copy of a 20,000-sample chain would be
        # 125 MB (most of the classifier's time, in page faults). Every piece stays a large matrix
        # product (BLAS keeps its large-matrix kernel, so every row gets the same bits as in one
        # product), and the two additions keep their order.
        n = Xb.shape[0]
        out = np.empty((n, diff.shape[0]))
        edges = np.linspace(0, n, max(1, n // _JLL_ROWS) + 1).astype(np.int64)
        for lo, hi in zip(edges[:-1], edges[1:]):
            out[lo:hi] = Xb[lo:hi].astype(np.float64) @ diff.T + neg + self.class_log_prior_
        return out

    def predict_log_proba(self, X: object) -> np.ndarray:
        """Posterior ``ln P(c | x)``, shape (N, K), columns in the order of ``classes_``."""
        jll = self.joint_log_likelihood(X)
        return jll - logsumexp(jll, axis=1)[:, None]

    def predict_index(self, X: object) -> np.ndarray:
        """Index into ``classes_`` of the most probable class of each row (ties: the lowest), int64 (N,)."""
        return np.argmax(self.joint_log_likelihood(X), axis=1).astype(np.int64)

    def predict(self, X: object) -> np.ndarray:
        """Most probable class label of each row, shape (N,)."""
        idx = self.predict_index(X)  # checks that the model is fitted
        return self.classes_[idx]

    def score(self, X: object, y: object) -> float:
        """Fraction of rows of ``X`` whose predicted label equals ``y``."""
        pred = self.predict(X)
        return float(np.mean(pred == _as_label_vector(y, pred.shape[0])))
