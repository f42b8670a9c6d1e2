"""The class distribution of a machine's hidden states (eq. 22): class KL with the spec's majority rule.

Every point of the labelled data goes to its most probable hidden state (argmax of
ln pbar + log A); a state's class is the majority label of its points; P_model(k) sums
pbar over the states of class k (a state given no point has no class and its mass is
lost); the measure is KL(P_data || P_model). Pure array functions, like :mod:`nemm.markov`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClassKL", "class_kl", "class_kl_from_assignment"]


@dataclass(frozen=True)
class ClassKL:
    """Class-distribution KL divergence and the assignment behind it (eq. 22).

    Attributes
    ----------
    kl : float
        ``KL(P_data || P_model)`` in nats; ``inf`` if a class present in the
        data has zero model mass.
    state_class : numpy.ndarray of int, shape (S,)
        Class label of each hidden state, ``-1`` for a state given no point.
    p_model : numpy.ndarray, shape (K,)
        ``P_model(k)``: total ``pbar`` of the states of class ``classes[k]``
        (sums to ``1 - lost_mass``).
    p_data : numpy.ndarray, shape (K,)
        Label frequencies of the data.
    lost_mass : float
        Total ``pbar`` of the states that have no class.
    classes : numpy.ndarray of int, shape (K,)
        The class labels, ascending; indexes ``p_model`` and ``p_data``.
    assignment : numpy.ndarray of int, shape (N,)
        The hidden state each data point was given.
    """

    kl: float
    state_class: np.ndarray
    p_model: np.ndarray
    p_data: np.ndarray
    lost_mass: float
    classes: np.ndarray
    # Per data point, so left out of JSON reports (nemm.results skips fields marked json=False).
    assignment: np.ndarray = field(metadata={"json": False})


def class_kl(
    log_pbar: object,
    log_A: object,
    labels: object,
    *,
    classes: Sequence[int] | np.ndarray | None = None,
) -> ClassKL:
    """Class-distribution KL divergence ``KL(P_data || P_model)`` (eq. 22).

    The spec's default rule: every data point ``n`` is given its most
    probable hidden state ``argmax_alpha [ln pbar(alpha) + log A(alpha, x_n)]``;
    a state's class is the majority label of the points given to it (ties go
    to the smallest label); a state given no point has no class and its mass
    counts as lost (``P_model`` is then not renormalized, so lost mass raises
    the KL). The rule "class with the highest mean log A" is deliberately not
    used: sparse digits (the 1s) have the highest likelihood under almost any
    state and would win every state.

    Parameters
    ----------
    log_pbar : array_like, shape (S,)
        Log stationary probabilities (``-inf`` allowed); normalized here.
    log_A : array_like, shape (N, S)
        ``log A(alpha, x_n)`` for every data point and hidden state.
    labels : array_like of int, shape (N,)
        Non-negative integer class label of each data point.
    classes : sequence of int, optional
        All class labels to report (default: the labels present). Must
        contain every label; classes absent from the data have
        ``P_data = 0`` and do not contribute.

    Returns
    -------
    ClassKL
    """
    lp = np.asarray(log_pbar, dtype=np.float64)
    LA = np.asarray(log_A, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ValueError(f"log_pbar must be a non-empty vector, got shape {lp.shape}")
    S = lp.size
    if LA.ndim != 2 or LA.shape[1] != S or LA.shape[0] == 0:
        raise ValueError(f"log_A must have shape (N >= 1, {S}), got {LA.shape}")
    if np.isnan(lp).any() or np.isnan(LA).any() or (lp == np.inf).any() or (LA == np.inf).any():
        raise ValueError("log_pbar and log_A must not contain NaN or +inf")
    if not np.isfinite(lp).any():
        raise ValueError("log_pbar gives zero mass to every state")
    lab = np.asarray(labels)
    if lab.shape != (LA.shape[0],):
        raise ValueError(f"labels must have shape ({LA.shape[0]},), got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        if lab.dtype == np.bool_ or not np.array_equal(lab, np.round(lab)):
            raise ValueError("labels must be integers")
    lab = lab.astype(np.int64)
    if (lab < 0).any():
        raise ValueError("labels must be non-negative (-1 marks a state with no class)")
    cls = np.unique(lab) if classes is None else np.unique(np.asarray(classes, dtype=np.int64))
    if (cls < 0).any():
        raise ValueError("classes must be non-negative")
    missing = np.setdiff1d(lab, cls)
    if missing.size:
        raise ValueError(f"labels {missing.tolist()} are not in classes")
    k_of = np.searchsorted(cls, lab)  # class index of each point
    K = cls.size

    pbar = np.exp(lp - np.max(lp))
    pbar /= pbar.sum()

    assignment = np.argmax(lp[None, :] + LA, axis=1)
    # tally[s, k]: points of class k given to state s.
    tally = np.zeros((S, K), dtype=np.int64)
    np.add.at(tally, (assignment, k_of), 1)
    has_points = tally.sum(axis=1) > 0
    # argmax returns the first maximum, i.e. the smallest label on ties (cls is ascending).
    state_k = np.where(has_points, np.argmax(tally, axis=1), -1)
    state_class = np.where(has_points, cls[np.clip(state_k, 0, None)], -1)

    p_model = np.zeros(K)
    np.add.at(p_model, state_k[has_points], pbar[has_points])
    lost = float(pbar[~has_points].sum())
    p_data = np.bincount(k_of, minlength=K) / lab.size

    present = p_data > 0
    if (p_model[present] <= 0).any():
        kl = float("inf")
    else:
        kl = float(np.sum(p_data[present] * (np.log(p_data[present]) - np.log(p_model[present]))))
    return ClassKL(
        kl=kl,
        state_class=state_class.astype(np.int64),
        p_model=p_model,
        p_data=p_data,
        lost_mass=lost,
        classes=cls,
        assignment=assignment.astype(np.int64),
    )


# --------------------------------------------------------------------------- error bars


def class_kl_from_assignment(assignment: np.ndarray, labels: np.ndarray, pbar: np.ndarray) -> float:
    """Class KL (eq. 22) from each point's state ``assignment`` (indices into ``pbar``).

    The rule of :func:`class_kl` once the argmax is taken (majority class per state,
    ties to the smallest label, states given no point lose their mass), for callers
    that compute the argmax in blocks instead of holding the (N, S) table of log A.
    """
    S = int(np.asarray(pbar).size)
    cls, k_of = np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)
    tally = np.zeros((S, cls.size), dtype=np.int64)
    np.add.at(tally, (np.asarray(assignment, dtype=np.int64), k_of), 1)
    has = tally.sum(axis=1) > 0
    p_model = np.bincount(np.argmax(tally[has], axis=1), weights=np.asarray(pbar)[has], minlength=cls.size)
    p_data = np.bincount(k_of, minlength=cls.size) / k_of.size
    if (p_model <= 0).any():
        return math.inf
    return float(np.sum(p_data * (np.log(p_data) - np.log(p_model))))
