"""The class-distribution KL of eq. 22 (nemm.class_distribution) against constructed cases."""

import math

import numpy as np
import pytest

from nemm.class_distribution import ClassKL, class_kl, class_kl_from_assignment
from nemm.exact import hidden_states, log_A


def test_class_kl_constructed_case():
    # 3 states; points of labels 0,0,1,1,1,2 given to states 0,0,1,1,2,2 via log_A.
    log_pbar = np.log([0.5, 0.3, 0.2])
    assign = np.array([0, 0, 1, 1, 2, 2])
    log_A = np.full((6, 3), -50.0)
    log_A[np.arange(6), assign] = -1.0
    labels = np.array([0, 0, 1, 1, 1, 2])
    r = class_kl(log_pbar, log_A, labels)
    assert isinstance(r, ClassKL)
    np.testing.assert_array_equal(r.assignment, assign)
    # State 2 got one 1 and one 2: tie -> the smaller label.
    np.testing.assert_array_equal(r.state_class, [0, 1, 1])
    np.testing.assert_array_equal(r.classes, [0, 1, 2])
    np.testing.assert_allclose(r.p_model, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(r.p_data, [2 / 6, 3 / 6, 1 / 6])
    assert r.lost_mass == 0.0
    assert r.kl == math.inf  # class 2 is in the data but no state generates it
    # Without the class-2 point the KL is finite and explicit.
    r2 = class_kl(log_pbar, log_A[:5], labels[:5])
    p_d = np.array([2 / 5, 3 / 5])
    p_m = np.array([0.5, 0.5])
    assert r2.kl == pytest.approx(float(np.sum(p_d * np.log(p_d / p_m))), rel=1e-12)


def test_class_kl_uses_pbar_in_assignment_and_reports_lost_mass():
    # Equal log A for states 0 and 1: pbar decides. State 2 gets nothing: its mass is lost.
    log_pbar = np.log([0.2, 0.5, 0.3])
    log_A = np.array([[-3.0, -3.0, -10.0], [-2.0, -2.0, -10.0], [-1.0, -9.0, -12.0]])
    labels = np.array([4, 4, 7])
    r = class_kl(log_pbar, log_A, labels, classes=[4, 7, 9])
    np.testing.assert_array_equal(r.assignment, [1, 1, 0])
    np.testing.assert_array_equal(r.state_class, [7, 4, -1])
    assert r.lost_mass == pytest.approx(0.3)
    np.testing.assert_allclose(r.p_model, [0.5, 0.2, 0.0])
    np.testing.assert_allclose(r.p_data, [2 / 3, 1 / 3, 0.0])
    want = 2 / 3 * math.log((2 / 3) / 0.5) + 1 / 3 * math.log((1 / 3) / 0.2)
    assert r.kl == pytest.approx(want, rel=1e-12)  # class 9: no data, no contribution
    assert r.p_model.sum() + r.lost_mass == pytest.approx(1.0)


def test_class_kl_sparse_digit_trap():
    # D = 12. State 0 is a blurry "dense digit" (every pixel on with p = 0.35); state 1 is a
    # sharp "one" (pixels 0, 1 on with p = 0.9, the rest 0.02). Class-0 data: 4 pixels on among
    # 2..11; class-1 data: only pixel 0 on. A sparse image is likely under almost any state, so
    # the rule "class with the highest mean log A" labels BOTH states as class 1.
    D = 12
    p0 = np.full(D, 0.35)
    p1 = np.full(D, 0.02)
    p1[:2] = 0.9
    w = np.log(np.stack([p0, p1], axis=1) / (1 - np.stack([p0, p1], axis=1)))
    a = np.zeros(D)
    rng = np.random.default_rng(3)
    dense = np.zeros((30, D), dtype=np.uint8)
    for row in dense:
        row[2 + rng.choice(D - 2, size=4, replace=False)] = 1
    sparse = np.zeros((10, D), dtype=np.uint8)
    sparse[:, 0] = 1
    X = np.vstack([dense, sparse])
    labels = np.array([0] * 30 + [1] * 10)
    LA = log_A(w, a, hidden_states(2), X)
    log_pbar = np.log([0.6, 0.4])

    # The trap exists in this case: by mean log A both states would be called "1".
    mean_by_class = np.stack([LA[labels == k].mean(axis=0) for k in (0, 1)])
    np.testing.assert_array_equal(np.argmax(mean_by_class, axis=0), [1, 1])

    r = class_kl(log_pbar, LA, labels)
    np.testing.assert_array_equal(r.state_class, [0, 1])
    np.testing.assert_allclose(r.p_model, [0.6, 0.4])
    p_d = np.array([0.75, 0.25])
    assert r.kl == pytest.approx(float(np.sum(p_d * np.log(p_d / [0.6, 0.4]))), rel=1e-12)


def test_class_kl_argument_errors():
    with pytest.raises(ValueError):
        class_kl(np.zeros(2), np.zeros((3, 3)), [0, 1, 2])
    with pytest.raises(ValueError):
        class_kl(np.zeros(2), np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="not in classes"):
        class_kl(np.zeros(2), np.zeros((2, 2)), [0, 3], classes=[0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        class_kl(np.zeros(2), np.zeros((2, 2)), [0, -1])


def test_class_kl_from_assignment_matches_the_argmax_rule():
    rng = np.random.default_rng(5)
    log_pbar = np.log(rng.dirichlet(np.ones(4)))
    log_A = rng.normal(size=(60, 4)) * 3
    labels = rng.integers(0, 3, size=60)
    full = class_kl(log_pbar, log_A, labels)
    assignment = np.argmax(log_pbar + log_A, axis=1)
    assert class_kl_from_assignment(assignment, labels, np.exp(log_pbar)) == pytest.approx(full.kl, rel=1e-12)
