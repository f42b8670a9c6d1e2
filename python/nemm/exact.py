"""Exact enumeration of the machine for tiny visible layers (spec "Exact answers for tests").

For ``D <= 12`` every visible state can be listed, so the kernels ``A`` and
``Abar``, the hidden-to-hidden matrix ``M = A Abar`` (eq. 3), its stationary
distribution ``pbar`` and the model likelihood ``p(x) = sum_z pbar(z) A(z, x)``
are computed exactly. These are the references that sampler, likelihood and
gradient tests compare the C++ engine with.

Conventions (shared with the engine)
------------------------------------
* ``w`` (D, L), ``a`` (D,), ``wbar`` (L, D), ``abar`` (L,), ``xbar`` (D,), float64.
* z -> x: ``h = w z + a``; ``A(z, x) = prod_i Bernoulli(x_i; sigmoid(h_i))``.
* x -> z: ``u = wbar (x - xbar) + abar`` (centered) or ``wbar x + abar``;
  one-hot: ``P(alpha|x) = softmax(u)`` or, with ``normalization="sigmoid"``,
  ``sigmoid(u_alpha) / sum_beta sigmoid(u_beta)`` (eq. 19); binary:
  ``prod_b Bernoulli(z_b; sigmoid(u_b))``.
* State codes: one-hot state ``alpha`` is ``z = e_alpha``; binary state ``c``
  has ``z_b = bit b of c``; visible state ``c`` has ``x_i = bit i of c``.
* ``M[z', z]``: row = current hidden state, column = next; ``pbar M = pbar``.

Everything is computed in the log domain until the final, small,
exponentiation, so the references stay exact to rounding even for large fields.

This module is the independent reference: it depends on numpy, the
log-sum-exp helper and input validation only, never on the engine or on
:mod:`nemm.markov` / :mod:`nemm.diagnostics`, whose answers it checks. It keeps
its own small copies (code <-> bits, pbar by linear algebra, eq. 21).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from ._checks import as_binary_matrix, as_real_array, shown
from ._logdomain import logsumexp

__all__ = [
    "MAX_EXACT_BITS",
    "ExactModel",
    "backward_kernel",
    "exact_log_likelihood",
    "exact_log_likelihood_gradient",
    "exact_model",
    "hidden_states",
    "is_detailed_balance",
    "log_A",
    "log_backward_kernel",
    "log_forward_kernel",
    "mu_z",
    "n_hidden_states",
    "visible_states",
]

Hidden = Literal["onehot", "binary"]
Normalization = Literal["softmax", "sigmoid"]

#: Largest visible (and binary hidden) layer that is enumerated: 2^12 = 4096 states.
MAX_EXACT_BITS = 12


# --------------------------------------------------------------------------- helpers


def _softplus(h: np.ndarray) -> np.ndarray:
    """``ln(1 + e^h)`` without overflow."""
    return np.logaddexp(0.0, h)


def _log_bernoulli_product(B: np.ndarray, F: np.ndarray) -> np.ndarray:
    """``out[n, s] = sum_i ln Bernoulli(B[n, i]; sigmoid(F[s, i]))``.

    ``ln Bernoulli(b; sigmoid(f)) = b f - softplus(f)``; written as
    ``-(1-b) relu(f) - b relu(-f) - ln(1 + e^{-|f|})`` it is a sum of
    non-positive terms, so no cancellation between large ``b f`` and
    ``softplus(f)`` can occur even for huge fields.
    """
    Bf = B.astype(np.float64)
    pos, neg = np.maximum(F, 0.0), np.maximum(-F, 0.0)
    tail = np.log1p(np.exp(-np.abs(F))).sum(axis=1)
    return -((1.0 - Bf) @ pos.T + Bf @ neg.T) - tail[None, :]


def _check_bits(n: int, name: str) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {shown(n)}")
    if n > MAX_EXACT_BITS:
        raise ValueError(
            f"{name} = {n} is too large for exact enumeration: the limit is {name} <= {MAX_EXACT_BITS} "
            f"(2^{MAX_EXACT_BITS} states)"
        )
    return int(n)


def _check_modes(hidden: str, normalization: str) -> None:
    if hidden not in ("onehot", "binary"):
        raise ValueError(f"hidden must be 'onehot' or 'binary', got {hidden!r}")
    if normalization not in ("softmax", "sigmoid"):
        raise ValueError(f"normalization must be 'softmax' or 'sigmoid', got {normalization!r}")
    if hidden == "binary" and normalization != "softmax":
        # Same rule as the engine: the ratio of sigmoids (eq. 19) normalizes one-hot states only.
        raise ValueError("normalization='sigmoid' applies to one-hot hidden states only")


def _code_weights(n: int) -> np.ndarray:
    return (np.int64(1) << np.arange(n, dtype=np.int64)).astype(np.int64)


def _bits(n: int) -> np.ndarray:
    codes = np.arange(1 << n, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1).astype(np.uint8)


def _stationary(M: np.ndarray) -> np.ndarray:
    """``pbar`` with ``pbar M = pbar`` and ``sum pbar = 1``, by least squares on the stacked system.

    Deliberately not the eigen-solver of :func:`nemm.markov.stationary_distribution`, so
    that the two check each other. Every exact M here is strictly positive (sigmoid
    kernels), hence irreducible, and the solution unique.
    """
    S = M.shape[0]
    lhs = np.vstack([M.T - np.eye(S), np.ones((1, S))])
    rhs = np.zeros(S + 1)
    rhs[-1] = 1.0
    p = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    p = np.clip(p, 0.0, None)
    return p / p.sum()


def _entropy_production(M: np.ndarray, pbar: np.ndarray) -> float:
    """Eq. 21 summed pair by pair: ``sum_{z'<z} (J - J^T) ln(J / J^T)``, ``J = pbar M``."""
    J = pbar[:, None] * M
    total = 0.0
    for i in range(J.shape[0]):
        for j in range(i + 1, J.shape[0]):
            f, b = J[i, j], J[j, i]
            if f > 0 and b > 0:
                total += (f - b) * (np.log(f) - np.log(b))
            elif f > 0 or b > 0:
                return float("inf")
    return float(total)


# --------------------------------------------------------------------------- state lists


def visible_states(D: int) -> np.ndarray:
    """All visible states, row ``c`` having ``x_i = bit i of c``.

    Parameters
    ----------
    D : int
        Visible layer size, ``1 <= D <= 12``.

    Returns
    -------
    numpy.ndarray of uint8, shape (2^D, D)

    Raises
    ------
    ValueError
        If ``D > 12`` (the enumeration limit) or ``D < 1``.
    """
    return _bits(_check_bits(D, "D"))


def hidden_states(L: int, hidden: Hidden = "onehot") -> np.ndarray:
    """All hidden states as rows ``z`` (float), in state-code order.

    Parameters
    ----------
    L : int
        Number of hidden units.
    hidden : {"onehot", "binary"}
        One-hot: the identity (state ``alpha`` is ``e_alpha``), ``L`` rows.
        Binary: row ``c`` has ``z_b = bit b of c``, ``2^L`` rows (``L <= 12``).

    Returns
    -------
    numpy.ndarray of float64, shape (S, L)
    """
    _check_modes(hidden, "softmax")
    if int(L) != L or L < 1:
        raise ValueError(f"L must be a positive integer, got {shown(L)}")
    if hidden == "onehot":
        return np.eye(int(L))
    return _bits(_check_bits(L, "L")).astype(np.float64)


def n_hidden_states(L: int, hidden: Hidden) -> int:
    """Number of hidden states: ``L`` (one-hot) or ``2^L`` (binary)."""
    return int(L) if hidden == "onehot" else 1 << int(L)


# --------------------------------------------------------------------------- kernels


def _params_forward(w: object, a: object) -> tuple[np.ndarray, np.ndarray]:
    W = np.asarray(w)
    if W.ndim != 2:
        raise ValueError(f"w must have shape (D, L), got {W.shape}")
    D, L = W.shape
    return as_real_array(w, "w", (D, L)), as_real_array(a, "a", (D,))


def _params_backward(
    wbar: object, abar: object, xbar: object | None, centered: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    Wb = np.asarray(wbar)
    if Wb.ndim != 2:
        raise ValueError(f"wbar must have shape (L, D), got {Wb.shape}")
    L, D = Wb.shape
    Wb = as_real_array(wbar, "wbar", (L, D))
    ab = as_real_array(abar, "abar", (L,))
    if centered:
        if xbar is None:
            raise ValueError("xbar is required when centered=True")
        return Wb, ab, as_real_array(xbar, "xbar", (D,))
    return Wb, ab, None


def log_A(w: object, a: object, Z: object, X: object) -> np.ndarray:
    """Log-likelihood matrix ``log A(z, x)`` for data rows ``X`` and hidden rows ``Z`` (eq. 8, 10).

    ``log A(z, x) = sum_i [x_i h_i - softplus(h_i)]`` with ``h = w z + a``,
    evaluated without any product of probabilities in linear space. This is
    the exact reference for the engine's ``log_A``.

    Parameters
    ----------
    w : array_like, shape (D, L)
    a : array_like, shape (D,)
    Z : array_like, shape (S, L)
        Hidden states (any real rows; one-hot or binary in practice).
    X : array_like of 0/1, shape (N, D)

    Returns
    -------
    numpy.ndarray, shape (N, S)
    """
    W, av = _params_forward(w, a)
    D, L = W.shape
    Zm = np.asarray(Z, dtype=np.float64)
    if Zm.ndim != 2 or Zm.shape[1] != L:
        raise ValueError(f"Z must have shape (S, {L}), got {Zm.shape}")
    Xm = as_binary_matrix(X, "X", D)
    H = Zm @ W.T + av[None, :]  # (S, D) fields
    return _log_bernoulli_product(Xm, H)


def log_forward_kernel(w: object, a: object, Z: object) -> np.ndarray:
    """``log A(z, x)`` for every hidden row of ``Z`` and every visible state.

    Parameters
    ----------
    w : array_like, shape (D, L)
        ``D <= 12``.
    a : array_like, shape (D,)
    Z : array_like, shape (S, L)
        Hidden states, e.g. :func:`hidden_states`.

    Returns
    -------
    numpy.ndarray, shape (S, 2^D)
        Columns in visible-code order (:func:`visible_states`).
    """
    W, av = _params_forward(w, a)
    return log_A(W, av, Z, visible_states(W.shape[0])).T


def _fields_backward(Wb: np.ndarray, ab: np.ndarray, xb: np.ndarray | None, X: object) -> np.ndarray:
    Xm = as_binary_matrix(X, "X", Wb.shape[1]).astype(np.float64)
    if xb is not None:
        Xm = Xm - xb[None, :]
    return Xm @ Wb.T + ab[None, :]  # (N, L)


def log_backward_kernel(
    wbar: object,
    abar: object,
    xbar: object | None,
    X: object,
    hidden: Hidden = "onehot",
    normalization: Normalization = "softmax",
    centered: bool = True,
) -> np.ndarray:
    """``ln Abar(x, z)`` for data rows ``X`` and every hidden state (eq. 9, 11, 17, 19).

    Parameters
    ----------
    wbar : array_like, shape (L, D)
    abar : array_like, shape (L,)
    xbar : array_like, shape (D,), or None
        Data mean; required when ``centered``.
    X : array_like of 0/1, shape (N, D)
    hidden : {"onehot", "binary"}
    normalization : {"softmax", "sigmoid"}
        One-hot only: log-softmax of ``u``, or the log of the ratio of
        sigmoids of eq. 19.
    centered : bool
        Use ``u = wbar (x - xbar) + abar`` (eq. 17) rather than ``wbar x + abar``.

    Returns
    -------
    numpy.ndarray, shape (N, S)
        Columns in hidden-code order; ``S = L`` (one-hot) or ``2^L`` (binary, ``L <= 12``).
    """
    _check_modes(hidden, normalization)
    Wb, ab, xb = _params_backward(wbar, abar, xbar, centered)
    U = _fields_backward(Wb, ab, xb, X)
    if hidden == "binary":
        return _log_bernoulli_product(hidden_states(Wb.shape[0], "binary"), U).T
    if normalization == "softmax":
        return U - logsumexp(U, axis=1)[:, None]
    log_s = -_softplus(-U)  # ln sigmoid(u)
    return log_s - logsumexp(log_s, axis=1)[:, None]


def backward_kernel(
    wbar: object,
    abar: object,
    xbar: object | None,
    X: object,
    hidden: Hidden = "onehot",
    normalization: Normalization = "softmax",
    centered: bool = True,
) -> np.ndarray:
    """Probabilities ``Abar(x, z)`` for data rows ``X`` and every hidden state.

    The exponential of :func:`log_backward_kernel` (same parameters); rows
    sum to one.

    Returns
    -------
    numpy.ndarray, shape (N, S)
    """
    return np.exp(log_backward_kernel(wbar, abar, xbar, X, hidden, normalization, centered))


def mu_z(
    wbar: object,
    abar: object,
    xbar: object | None,
    X: object,
    hidden: Hidden = "onehot",
    normalization: Normalization = "softmax",
    centered: bool = True,
) -> np.ndarray:
    """Conditional mean ``mu_{z|x} = E[z | x]`` of the hidden units (eqs. 13, 16c-d).

    One-hot: ``P(. | x)`` (softmax or ratio of sigmoids); binary: ``sigmoid(u)``.

    Returns
    -------
    numpy.ndarray, shape (N, L)
    """
    _check_modes(hidden, normalization)
    if hidden == "onehot":
        return backward_kernel(wbar, abar, xbar, X, hidden, normalization, centered)
    Wb, ab, xb = _params_backward(wbar, abar, xbar, centered)
    U = _fields_backward(Wb, ab, xb, X)
    return np.exp(-_softplus(-U))


# --------------------------------------------------------------------------- the exact model


@dataclass(frozen=True)
class ExactModel:
    """Exact enumeration of one machine.

    Attributes
    ----------
    X : numpy.ndarray of uint8, shape (2^D, D)
        Visible states in code order.
    Z : numpy.ndarray, shape (S, L)
        Hidden states in code order.
    log_A : numpy.ndarray, shape (S, 2^D)
        ``ln A(z, x)``.
    A : numpy.ndarray, shape (S, 2^D)
        ``A(z, x)``; rows sum to one.
    Abar : numpy.ndarray, shape (2^D, S)
        ``Abar(x, z)``; rows sum to one.
    M : numpy.ndarray, shape (S, S)
        ``M(z', z) = sum_x A(z', x) Abar(x, z)`` (eq. 3), row-stochastic.
    pbar : numpy.ndarray, shape (S,)
        Stationary hidden distribution, ``pbar M = pbar``.
    log_px : numpy.ndarray, shape (2^D,)
        ``ln p(x) = logsumexp_z (ln pbar(z) + ln A(z, x))``.
    px : numpy.ndarray, shape (2^D,)
        ``p(x)``, summing to one.
    """

    X: np.ndarray
    Z: np.ndarray
    log_A: np.ndarray
    A: np.ndarray
    Abar: np.ndarray
    M: np.ndarray
    pbar: np.ndarray
    log_px: np.ndarray
    px: np.ndarray

    @property
    def entropy_production(self) -> float:
        """Exact entropy production rate (eq. 21) of the stationary chain."""
        return _entropy_production(self.M, self.pbar)

    def log_likelihood(self, X: object) -> float:
        """Mean ``ln p(x)`` over the rows of ``X`` (eq. 7)."""
        D = self.X.shape[1]
        codes = as_binary_matrix(X, "X", D).astype(np.int64) @ _code_weights(D)
        return float(self.log_px[codes].mean())


def exact_model(
    w: object,
    a: object,
    wbar: object,
    abar: object,
    xbar: object | None = None,
    hidden: Hidden = "onehot",
    normalization: Normalization = "softmax",
    centered: bool = True,
) -> ExactModel:
    """Enumerate the machine exactly (``D <= 12``; binary hidden ``L <= 12``).

    Parameters
    ----------
    w, a, wbar, abar : array_like
        Parameters with shapes (D, L), (D,), (L, D), (L,).
    xbar : array_like, shape (D,), or None
        Data mean for centering; required when ``centered``.
    hidden, normalization, centered
        As in :func:`log_backward_kernel`.

    Returns
    -------
    ExactModel

    Raises
    ------
    ValueError
        If ``D > 12`` or the shapes disagree.
    """
    _check_modes(hidden, normalization)
    W, av = _params_forward(w, a)
    D, L = W.shape
    _check_bits(D, "D")
    wbar_shape = np.shape(cast(npt.ArrayLike, wbar))
    if wbar_shape != (L, D):
        raise ValueError(f"wbar must have shape ({L}, {D}) to match w, got {wbar_shape}")
    X = visible_states(D)
    Z = hidden_states(L, hidden)
    logA = log_A(W, av, Z, X).T  # (S, 2^D)
    A = np.exp(logA)
    Abar = backward_kernel(wbar, abar, xbar, X, hidden, normalization, centered)
    M = A @ Abar
    # Each row is sum_x A(z', x) * (probability vector): one up to rounding; make it exact.
    M /= M.sum(axis=1, keepdims=True)
    pbar = _stationary(M)
    with np.errstate(divide="ignore"):
        log_pbar = np.log(pbar)
    log_px = logsumexp(log_pbar[:, None] + logA, axis=0)
    return ExactModel(X=X, Z=Z, log_A=logA, A=A, Abar=Abar, M=M, pbar=pbar, log_px=log_px, px=np.exp(log_px))


def exact_log_likelihood(
    w: object,
    a: object,
    wbar: object,
    abar: object,
    xbar: object | None,
    X: object,
    hidden: Hidden = "onehot",
    normalization: Normalization = "softmax",
    centered: bool = True,
) -> float:
    """Exact mean log-likelihood ``(1/N) sum_n ln p(x_n)`` (eq. 7) of the rows of ``X``.

    Parameters are as in :func:`exact_model`; ``X`` is an (N, D) 0/1 array.

    Returns
    -------
    float
    """
    return exact_model(w, a, wbar, abar, xbar, hidden, normalization, centered).log_likelihood(X)


def exact_log_likelihood_gradient(
    w: object,
    a: object,
    wbar: object,
    abar: object,
    xbar: object | None,
    X: object,
    hidden: Hidden = "onehot",
    normalization: Normalization = "softmax",
    centered: bool = True,
    eps: float = 1e-6,
) -> dict[str, np.ndarray]:
    """Gradient of :func:`exact_log_likelihood` by central finite differences.

    ``xbar`` is held fixed (it is the data mean, not a parameter). The cost
    is two exact enumerations per parameter, fine for the tiny systems of
    the tests.

    Parameters
    ----------
    w, a, wbar, abar, xbar, X, hidden, normalization, centered
        As in :func:`exact_log_likelihood`.
    eps : float, default 1e-6
        Step of the central difference (error ``O(eps^2)`` plus rounding ``~1e-16/eps``).

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``"w"``, ``"a"``, ``"wbar"``, ``"abar"``, each shaped like its parameter.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {shown(eps)}")
    params = {
        "w": np.array(w, dtype=np.float64),
        "a": np.array(a, dtype=np.float64),
        "wbar": np.array(wbar, dtype=np.float64),
        "abar": np.array(abar, dtype=np.float64),
    }
    Xm = as_binary_matrix(X, "X", params["w"].shape[0])

    def f() -> float:
        return exact_log_likelihood(
            params["w"],
            params["a"],
            params["wbar"],
            params["abar"],
            xbar,
            Xm,
            hidden,
            normalization,
            centered,
        )

    grads: dict[str, np.ndarray] = {}
    for name, p in params.items():
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            orig = p[idx]
            p[idx] = orig + eps
            up = f()
            p[idx] = orig - eps
            down = f()
            p[idx] = orig
            g[idx] = (up - down) / (2.0 * eps)
        grads[name] = g
    return grads


def is_detailed_balance(M: object, pbar: object, atol: float = 1e-10) -> bool:
    """Whether the flux ``pbar(z) M(z, z')`` is symmetric to within ``atol`` (detailed balance).

    Parameters
    ----------
    M : array_like, shape (S, S)
    pbar : array_like, shape (S,)
    atol : float
        Absolute tolerance on ``|J(z, z') - J(z', z)|``.

    Returns
    -------
    bool
    """
    P = np.asarray(M, dtype=np.float64)
    p = np.asarray(pbar, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or p.shape != (P.shape[0],):
        raise ValueError(f"M must be (S, S) and pbar (S,), got {P.shape} and {p.shape}")
    J = p[:, None] * P
    return bool(np.allclose(J, J.T, rtol=0.0, atol=atol))
