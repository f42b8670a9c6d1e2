"""Mixing of a sampling chain, measured on the class of its generated samples.

Spec section "Mixing at equal likelihood": the paper's claim is that latent
cycles decorrelate successive fantasy samples. Every generated visible state
is labeled by a classifier fitted on the labeled data (by default
:class:`nemm.classifier.BernoulliNaiveBayes`), and the sequence of labels is
summarized by

* ``tau_int_class``: the integrated autocorrelation time of the class
  indicator vector: a non-negative tapered lag-window estimate whose reach
  follows Sokal's automatic window on the envelope (the spec's literal
  window is kept as ``tau_int_class_sokal``), checked against the exact value
  of a hidden Markov model of the chain (:func:`exact_tau_int_class`);
* the class cover time: steps from a start until every class has appeared;
* the class KL of the samples (eq. 22 computed from sample frequencies).

The label functions are pure functions of integer arrays, so they serve any
sampler: the nonequilibrium chain, an RBM's Gibbs chain, or i.i.d. draws (the
ideal, ``tau_int_class = 1``). This module never runs a model: the mixing of
a model's own chain is :func:`nemm.sample_mixing.mixing_of`. Equation numbers
are those of Baiesi & Rosso, arXiv:2512.11415.

Label arrays hold class *indices* ``0 .. n_classes - 1`` with time along the
last axis: shape ``(T,)`` for one chain or ``(n_chains, T)`` for independent
chains of equal length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, overload

import numpy as np

from ._checks import as_binary_matrix
from .markov import stationary_distribution

__all__ = [
    "MixingMeasures",
    "class_autocorrelation",
    "class_cover_time",
    "class_cover_times",
    "class_kernel_from_emissions",
    "exact_class_autocorrelation",
    "exact_tau_int_class",
    "integrated_autocorrelation_time",
    "mixing_measures",
    "mixing_measures_from_labels",
    "sample_class_kl",
]

# Sokal's window constant: the smallest W with W >= SOKAL_C * tau_int(W).
SOKAL_C = 5.0


class Classifier(Protocol):
    """What :func:`mixing_measures` needs of a classifier: ``classes_`` and ``predict``."""

    classes_: np.ndarray

    def predict(self, X: Any) -> np.ndarray: ...


# --------------------------------------------------------------------------- label sequences


def _as_labels(labels: object, n_classes: int | None, name: str = "labels") -> tuple[np.ndarray, int]:
    """Validate class indices; return them as int64 (n_chains, T) and the number of classes."""
    arr = np.asarray(labels)
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be one-dimensional (T,) or two-dimensional (n_chains, T), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if (
            arr.dtype == object
            or not np.issubdtype(arr.dtype, np.number)
            or np.issubdtype(arr.dtype, np.complexfloating)
        ):
            raise TypeError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices (found NaN, inf or fractions)")
    arr = np.atleast_2d(arr.astype(np.int64))
    if arr.min() < 0:
        raise ValueError(f"{name} contains negative class indices")
    if n_classes is None:
        k = int(arr.max()) + 1
    else:
        if int(n_classes) != n_classes or n_classes < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
        k = int(n_classes)
        if arr.max() >= k:
            raise ValueError(f"{name} contains class index {int(arr.max())}, outside 0..{k - 1}")
    return np.ascontiguousarray(arr), k


def class_autocorrelation(labels: object, n_classes: int | None = None) -> np.ndarray:
    """Normalized autocorrelation ``rho(k)`` of the class indicator vector, ``k = 0 .. T-1``.

    ``rho(k) = sum_c C_c(k) / sum_c C_c(0)`` where ``C_c(k)`` is the
    autocovariance of ``f_c(t) = 1[c(t) = c]`` (spec, "Mixing at equal
    likelihood"). Pooling over independent chains: every chain is centered by
    the *pooled* class frequencies (all chains, all times), and
    ``C_c(k) = sum_chains sum_{t < T-k} f'_c(t) f'_c(t+k) / (n_chains T)``
    (the usual biased, positive-definite estimator, divided by ``T`` rather
    than ``T - k``). Centering by the pooled mean counts disagreement between
    chains as correlation: chains each stuck in a different class give
    ``rho(k) ~ 1`` at every lag, as they should. Autocovariances by FFT,
    ``O(n_chains K T log T)``.

    Parameters
    ----------
    labels : array_like of int, shape (T,) or (n_chains, T)
        Class indices in time order.
    n_classes : int, optional
        Number of classes (default ``max(labels) + 1``).

    Returns
    -------
    numpy.ndarray, shape (T,)
        ``rho[0] = 1``; all ``nan`` when the indicators have zero variance (every
        label equal).
    """
    lab, K = _as_labels(labels, n_classes)
    n_chains, T = lab.shape
    freq = np.bincount(lab.ravel(), minlength=K) / lab.size
    nfft = 1 << int(2 * T - 1).bit_length()  # zero-padded: no circular wrap-around
    power = np.zeros(nfft // 2 + 1)
    for chain in lab:
        f = (chain[None, :] == np.arange(K)[:, None]).astype(np.float64) - freq[:, None]  # (K, T)
        F = np.fft.rfft(f, n=nfft, axis=1)
        power += np.sum(F.real**2 + F.imag**2, axis=0)  # summed over classes before the inverse
    acov = np.fft.irfft(power, n=nfft)[:T] / (n_chains * T)
    c0 = acov[0]
    if not c0 > 1e-14:  # exactly zero up to FFT rounding: every label equal
        return np.full(T, np.nan)
    return acov / c0


def _taper(half_width: int) -> np.ndarray:
    """Lag weights ``w(0..2h-2)``: a triangle convolved with itself (a discrete Parzen window).

    Its Fourier transform is the square of a Fejer kernel, so it is non-negative:
    ``sum_k w(|k|) gamma(k)`` of a positive-definite autocovariance ``gamma``
    (the biased estimate of :func:`class_autocorrelation`) is a smoothed
    periodogram at frequency 0 and can never be negative. ``w(0) = 1`` and
    ``1 - w(k)`` grows as ``k^2``, so the bias on a decaying ``rho`` is of order
    ``sum_k k^2 rho(k) / h^2``.
    """
    h = int(half_width)
    tri = 1.0 - np.abs(np.arange(-(h - 1), h)) / h
    w = np.convolve(tri, tri)
    return w[w.size // 2 :] / w[w.size // 2]


def _tapered_tau(rho: np.ndarray, c: float) -> tuple[float, int]:
    """``(tau_int, reach)`` with the tapered lag window; ``(inf, -1)`` when no finite value can be claimed.

    The reach is set by the envelope: Sokal's rule on ``1 + 2 sum |rho(k)|``
    gives ``W`` (:func:`_sokal_window` with ``window="abs"``), and the taper
    keeps weight above 0.98 up to ``W / 5`` (about one envelope time) by
    reaching to ``4 W``, capped by the chain length. When the envelope never
    decays within the chain (a nearly deterministic cycle, or chains stuck
    apart) the longest reach is used, and the value is kept only if it passes
    Sokal's test there (``reach >= c tau``): a cycle's power lies away from
    frequency 0 and its tau is small, while slow or stuck chains fail the test.
    """
    _, W = _sokal_window(rho, c, "abs")
    h_max = max(1, (rho.size + 1) // 2)
    h = h_max if W < 0 else max(1, min(2 * W, h_max))
    w = _taper(h)
    tau = max(0.0, 1.0 + 2.0 * float(np.dot(w[1:], rho[1 : w.size])))  # max: >= 0 up to rounding
    reach = int(w.size - 1)
    if W < 0 and reach < c * tau:
        return math.inf, -1
    return tau, reach


def _sokal_window(rho: np.ndarray, c: float, window: str) -> tuple[float, int]:
    """``(tau_int(W), W)`` at Sokal's window; ``(inf, -1)`` if it never closes.

    ``window="sokal"``: the smallest ``W >= 1`` with ``W >= c tau_int(W)``.
    ``window="abs"``: the smallest ``W >= 1`` with ``W >= c tau_abs(W)``, where
    ``tau_abs(W) = 1 + 2 sum_{k<=W} |rho(k)|`` measures the decay of the envelope.
    """
    taus = 2.0 * np.cumsum(rho) - 1.0  # taus[W] = 1 + 2 sum_{k=1}^{W} rho(k)
    scale = taus if window == "sokal" else 2.0 * np.cumsum(np.abs(rho)) - 1.0
    W = np.arange(rho.size)
    ok = (W >= 1) & (W >= c * scale)
    if not ok.any():
        return math.inf, -1
    w = int(np.argmax(ok))
    return float(taus[w]), w


@overload
def integrated_autocorrelation_time(
    labels: object,
    n_classes: int | None = ...,
    *,
    c: float = ...,
    window: Literal["tapered", "abs", "sokal"] = ...,
    return_window: Literal[False] = ...,
) -> float: ...


@overload
def integrated_autocorrelation_time(
    labels: object,
    n_classes: int | None = ...,
    *,
    c: float = ...,
    window: Literal["tapered", "abs", "sokal"] = ...,
    return_window: Literal[True],
) -> tuple[float, int]: ...


def integrated_autocorrelation_time(
    labels: object,
    n_classes: int | None = None,
    *,
    c: float = SOKAL_C,
    window: Literal["tapered", "abs", "sokal"] = "tapered",
    return_window: bool = False,
) -> float | tuple[float, int]:
    """Integrated autocorrelation time of the class of the generated samples (``tau_int_class``).

    ``tau_int = 1 + 2 sum_{k >= 1} rho(k)`` with ``rho`` from
    :func:`class_autocorrelation` (chains pooled as described there), measured
    in steps of the label sequence (one sample each). The true value is never
    negative (it is the spectral density of the class indicators at frequency
    0 over their variance); the windows differ in how the sum is cut.

    Windows:

    * ``"tapered"`` (default, the headline ``tau_int_class``): ``1 + 2 sum_k
      w(k) rho(k)`` with a discrete Parzen lag window ``w`` (a triangle
      convolved with itself) whose Fourier transform is non-negative, so the
      estimate is a smoothed periodogram at frequency 0 and **never
      negative**. Its reach is four times Sokal's window on the envelope
      ``1 + 2 sum |rho(k)|`` (below), so that an oscillating ``rho`` (a chain
      that cycles through the classes) is summed over whole periods of its
      decay, not cut at a trough. Checked against the exact value of
      :func:`exact_tau_int_class` on trained machines.
    * ``"sokal"``: the spec's rule taken literally, the smallest ``W >= 1``
      with ``W >= c tau_int(W)`` and the plain sum up to ``W``. It assumes a
      mostly positive ``rho``: on an oscillating ``rho`` (e.g. 1, -0.08,
      -0.43, -0.16, 0.45, ...) the partial sums swing through 0 and the rule
      closes at the first trough (``W = 2``), long before the sum has settled,
      and the value can be negative (reported as it is, as
      ``tau_int_class_sokal``).
    * ``"abs"`` (the *envelope* window): the same rule on ``1 + 2 sum_{k<=W}
      |rho(k)|``, reporting the signed plain sum there
      (``tau_int_class_envelope``; can be slightly negative).

    For a non-negative, quickly decaying ``rho`` (every reversible chain and
    the i.i.d. case) all three agree closely.

    Parameters
    ----------
    labels : array_like of int, shape (T,) or (n_chains, T)
        Class indices in time order; ``T >= 2``.
    n_classes : int, optional
        Number of classes (default ``max(labels) + 1``).
    c : float, default 5
        Sokal's window constant.
    window : {"tapered", "abs", "sokal"}, default "tapered"
        Window rule, see above.
    return_window : bool
        Also return the window: the last lag summed (``-1`` when ``tau`` is inf).

    Returns
    -------
    float
        About 1 for i.i.d. labels; below 1 (down to 0) for a chain that
        cycles through the classes (anti-correlated labels: successive classes
        differ more often than i.i.d. draws would). ``math.inf`` when

        * the class never changes (zero variance of the indicators, e.g. one
          chain stuck in one class), or
        * the window never closes within the chain (the rule fails for every
          ``W < T``): the chain is shorter than about ``c`` autocorrelation
          times, so no finite value can be claimed (e.g. several chains each
          stuck in its own class). With ``window="abs"`` this includes a
          deterministic cycle through the classes, whose correlations never
          decay; ``"tapered"`` gives it its spectral value near 0 instead
          (a cycle's class frequencies converge faster than i.i.d. draws').
    """
    if not (math.isfinite(float(c)) and c > 0):
        raise ValueError(f"c must be finite and positive, got {c!r}")
    if window not in ("tapered", "abs", "sokal"):
        raise ValueError(f"window must be 'tapered', 'abs' or 'sokal', got {window!r}")
    lab, K = _as_labels(labels, n_classes)
    if lab.shape[1] < 2:
        raise ValueError(f"labels need at least 2 time steps per chain, got {lab.shape[1]}")
    rho = class_autocorrelation(lab, K)
    if np.isnan(rho[0]):
        tau, w = math.inf, -1
    elif window == "tapered":
        tau, w = _tapered_tau(rho, float(c))
    else:
        tau, w = _sokal_window(rho, float(c), window)
    return (tau, w) if return_window else tau


def class_cover_times(labels: object, n_classes: int) -> np.ndarray:
    """Cover time from every start: the first ``k`` such that ``labels[t:t+k]`` contains every class.

    Parameters
    ----------
    labels : array_like of int, shape (T,) or (n_chains, T)
        Class indices in time order; each row is a chain (a window never runs
        across rows).
    n_classes : int
        Number of classes ``K`` to cover (``0 .. K-1``).

    Returns
    -------
    numpy.ndarray of float, shape (n_chains, T) (or (T,) for 1-d input)
        ``k(t) >= 1`` (``k = K`` at best), ``inf`` for a start whose remaining
        chain never shows every class (censored at the chain's end).
        ``O(n_chains K T)``.
    """
    lab, K = _as_labels(labels, n_classes)
    n_chains, T = lab.shape
    out = np.empty((n_chains, T))
    t = np.arange(T)
    for r, chain in enumerate(lab):
        last = np.full(T, -1, dtype=np.int64)  # max over classes of the next occurrence at or after t
        never = np.zeros(T, dtype=bool)
        for cls in range(K):
            # next_c[t] = smallest s >= t with chain[s] == cls, by a reversed running minimum.
            pos = np.where(chain == cls, t, T)
            nxt = np.minimum.accumulate(pos[::-1])[::-1]
            never |= nxt == T
            np.maximum(last, nxt, out=last)
        out[r] = np.where(never, np.inf, (last - t + 1).astype(np.float64))
    return out[0] if np.asarray(labels).ndim == 1 else out


@overload
def class_cover_time(
    labels: object, n_classes: int, *, min_fraction: float = ..., return_fraction: Literal[False] = ...
) -> float: ...


@overload
def class_cover_time(
    labels: object, n_classes: int, *, min_fraction: float = ..., return_fraction: Literal[True]
) -> tuple[float, float]: ...


def class_cover_time(
    labels: object, n_classes: int, *, min_fraction: float = 0.5, return_fraction: bool = False
) -> float | tuple[float, float]:
    """Mean class cover time over all start positions (spec, "Mixing at equal likelihood").

    Every position ``t`` of every chain is a start; its cover time is
    :func:`class_cover_times`. Starts near a chain's end may never cover
    (censored). The mean is taken over the starts that do cover, provided they
    are at least ``min_fraction`` of all starts; otherwise the result is
    ``inf``. Censoring drops the longest cover times, so when the fraction is
    below one the mean is a slight underestimate (negligible when the cover
    time is much shorter than the chain: about ``cover / T`` of the starts).

    Parameters
    ----------
    labels : array_like of int, shape (T,) or (n_chains, T)
    n_classes : int
        Number of classes to cover.
    min_fraction : float in (0, 1], default 0.5
        Minimum fraction of covering starts for a finite answer.
    return_fraction : bool
        Also return the fraction of starts that cover.

    Returns
    -------
    float
        Mean cover time in steps; for i.i.d. uniform labels it is the
        coupon-collector ``K H_K``; for the deterministic cycle ``0, 1, ..., K-1,
        0, ...`` it is exactly ``K``. ``inf`` when too few starts cover (a chain
        that never shows some class).
    """
    mf = float(min_fraction)
    if not (0.0 < mf <= 1.0):
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
    k = class_cover_times(labels, n_classes).ravel()
    covered = np.isfinite(k)
    frac = float(covered.mean())
    mean = float(k[covered].mean()) if covered.any() and frac >= mf else math.inf
    return (mean, frac) if return_fraction else mean


def sample_class_kl(
    sample_labels: object, data_labels: object, n_classes: int, *, pseudocount: float = 0.0
) -> float:
    """Class KL of generated samples: ``KL(P_data || P_model)`` (eq. 22) from sample class frequencies.

    ``P_model(k) = (n_k + pseudocount) / (n + K pseudocount)`` where ``n_k``
    counts the samples labeled ``k``, and ``P_data`` is the label frequency of
    the data. Unlike the state-based eq. 22 of
    :func:`nemm.class_distribution.class_kl`, no hidden state is assigned a class: the
    samples themselves are classified.

    Parameters
    ----------
    sample_labels : array_like of int, shape (T,) or (n_chains, T)
        Class indices of the generated samples.
    data_labels : array_like of int, shape (N,)
        Class indices of the data.
    n_classes : int
    pseudocount : float, default 0
        With the default 0, a class present in the data but never generated
        gives ``inf`` (the plug-in value). A positive value is added to every
        class count of the samples.

    Returns
    -------
    float
        ``>= 0`` nats (``0`` iff the frequencies agree); classes absent from the
        data contribute nothing.
    """
    pc = float(pseudocount)
    if not (math.isfinite(pc) and pc >= 0):
        raise ValueError(f"pseudocount must be finite and >= 0, got {pseudocount!r}")
    s, K = _as_labels(sample_labels, n_classes, "sample_labels")
    d, _ = _as_labels(data_labels, K, "data_labels")
    if np.asarray(data_labels).ndim != 1:
        raise ValueError("data_labels must be one-dimensional")
    p_data = np.bincount(d.ravel(), minlength=K) / d.size
    n_k = np.bincount(s.ravel(), minlength=K).astype(np.float64)
    p_model = (n_k + pc) / (n_k.sum() + K * pc)
    present = p_data > 0
    if (p_model[present] == 0).any():
        return math.inf
    return float(np.sum(p_data[present] * (np.log(p_data[present]) - np.log(p_model[present]))))


# --------------------------------------------------------------------------- exact oracle


def class_kernel_from_emissions(M: object, B: object) -> np.ndarray:
    """The class kernel of a hidden Markov process whose class is emitted apart from the next state.

    For a chain ``z_t`` with transition matrix ``M`` that shows class ``c_t``
    with probability ``B(z_t, c_t)``, independently of ``z_{t+1}``, the kernel of
    :func:`exact_class_autocorrelation` is ``K[c] = diag(B[:, c]) M``. (The
    sampling chain of a machine is not of this kind: its next hidden state is
    drawn from the very image that is classified; see
    :func:`nemm.sample_mixing.class_kernel_of`.)

    Parameters
    ----------
    M : array_like, shape (S, S)
        Row-stochastic transition matrix.
    B : array_like, shape (S, K)
        ``B[z, c]``: probability of class ``c`` in state ``z`` (rows sum to one).

    Returns
    -------
    numpy.ndarray, shape (K, S, S)
    """
    P = np.asarray(M, dtype=np.float64)
    b = np.asarray(B, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or b.ndim != 2 or b.shape[0] != P.shape[0]:
        raise ValueError(f"M must be (S, S) and B (S, K), got {P.shape} and {b.shape}")
    return b.T[:, :, None] * P[None, :, :]


def _check_class_kernel(class_kernel: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(K, M, B, pbar)`` of a class kernel (K, S, S), validated."""
    Kc = np.asarray(class_kernel, dtype=np.float64)
    if Kc.ndim != 3 or Kc.shape[1] != Kc.shape[2] or Kc.shape[0] < 1 or Kc.shape[1] < 1:
        raise ValueError(f"class_kernel must have shape (n_classes, S, S), got {Kc.shape}")
    if not np.isfinite(Kc).all() or (Kc < 0).any():
        raise ValueError("class_kernel must be finite and non-negative")
    M = Kc.sum(axis=0)
    if not np.allclose(M.sum(axis=1), 1.0, rtol=0.0, atol=1e-8):
        raise ValueError("class_kernel must sum to a row-stochastic matrix over classes and next states")
    M = M / M.sum(axis=1, keepdims=True)
    B = Kc.sum(axis=2).T  # (S, K): P(class | state)
    return Kc, M, B, stationary_distribution(M)


def exact_class_autocorrelation(class_kernel: object, max_lag: int) -> np.ndarray:
    """Exact ``rho(k)`` of the class indicator vector of a stationary hidden Markov process.

    The process: hidden states ``z_t`` with transition matrix ``M``; step ``t``
    shows class ``c_t`` and moves to ``z_t``, with joint probability
    ``class_kernel[c, z_{t-1}, z_t] = P(c_t = c, z_t | z_{t-1})``. For a
    machine's sampling chain ``x_t ~ A(z_{t-1}, .)``, ``c_t`` its class and
    ``z_t ~ Abar(x_t, .)``, so ``class_kernel[c] = sum_{x: class(x) = c} A(., x)
    Abar(x, .)`` (a class-resolved eq. 3; ``M = sum_c class_kernel[c]``).
    Then, with ``pbar`` the stationary distribution of ``M``,
    ``B[z, c] = sum_z' class_kernel[c, z, z']`` and ``pi_c = pbar B[:, c]``,

        ``C_c(k) = pbar class_kernel[c] M^(k-1) B[:, c] - pi_c^2``  (k >= 1),

    and ``rho(k) = sum_c C_c(k) / sum_c pi_c (1 - pi_c)``: the quantity that
    :func:`class_autocorrelation` estimates from samples.

    Parameters
    ----------
    class_kernel : array_like, shape (n_classes, S, S)
        Non-negative; summed over classes, a row-stochastic ``M``.
    max_lag : int
        Largest lag ``k``.

    Returns
    -------
    numpy.ndarray, shape (max_lag + 1,)
        ``rho[0] = 1``; all NaN when the class never varies (``pi`` is one-hot).
    """
    if int(max_lag) != max_lag or max_lag < 0:
        raise ValueError(f"max_lag must be a non-negative integer, got {max_lag!r}")
    Kc, M, B, pbar = _check_class_kernel(class_kernel)
    pi = pbar @ B
    var = float(np.sum(pi * (1.0 - pi)))
    rho = np.empty(int(max_lag) + 1)
    if not var > 1e-14:
        rho[:] = np.nan
        return rho
    rho[0] = 1.0
    v = np.einsum("z,czy->cy", pbar, Kc)  # row c: pbar class_kernel[c], carried forward by M
    for k in range(1, int(max_lag) + 1):
        rho[k] = (float(np.einsum("cz,zc->", v, B)) - float(np.sum(pi**2))) / var
        v = v @ M
    return rho


def exact_tau_int_class(class_kernel: object) -> float:
    """Exact integrated autocorrelation time ``1 + 2 sum_{k >= 1} rho(k)`` of :func:`exact_class_autocorrelation`.

    Summed in closed form with the fundamental matrix ``Z = (I - M + 1 pbar)^-1``:
    ``sum_{k >= 1} C_c(k) = pbar class_kernel[c] Z (B[:, c] - pi_c)``. This is
    the spectral density of the class indicators at frequency 0 over their
    variance; for a periodic chain (a deterministic cycle, ``|lambda_2| = 1``)
    the sum does not converge and the closed form is its Cesaro mean, the same
    spectral value (0 for a deterministic cycle through the classes).

    Parameters
    ----------
    class_kernel : array_like, shape (n_classes, S, S)

    Returns
    -------
    float
        ``>= 0``; ``inf`` when the class never varies, or when ``M`` is
        reducible (eigenvalue 1 more than once: chains that start apart stay
        apart, and the class correlations never decay).
    """
    Kc, M, B, pbar = _check_class_kernel(class_kernel)
    pi = pbar @ B
    var = float(np.sum(pi * (1.0 - pi)))
    n_unit = int(np.sum(np.abs(np.linalg.eigvals(M) - 1.0) < 1e-10))
    if not var > 1e-14 or n_unit > 1:
        return math.inf
    S = M.shape[0]
    Z = np.linalg.inv(np.eye(S) - M + np.outer(np.ones(S), pbar))
    v = np.einsum("z,czy->cy", pbar, Kc)
    total = float(np.einsum("cz,zc->", v @ Z, B - pi[None, :]))
    return max(0.0, 1.0 + 2.0 * total / var)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class MixingMeasures:
    """Mixing of one sampling chain (or i.i.d. draws), measured on sample classes.

    Attributes
    ----------
    tau_int_class : float
        :func:`integrated_autocorrelation_time` with ``window_rule`` (by default
        the non-negative tapered estimator; ``inf``: stuck, or not measurable in
        this chain length; near 0 for strongly anti-correlated classes).
    tau_window : int
        Its window: the last lag summed (``-1`` when ``tau_int_class`` is inf).
    window_rule : str
        ``"tapered"``, ``"abs"`` or ``"sokal"``: the window rule of ``tau_int_class``.
    tau_int_class_envelope : float
        The plain sum at the envelope window (``window="abs"``).
    tau_window_envelope : int
        The envelope window ``W`` (``-1`` when inf).
    tau_int_class_sokal : float
        The plain sum at the spec's literal Sokal window (``window="sokal"``):
        a cycling chain's oscillating ``rho`` closes it at its first trough, so
        it can be near 0 or negative; kept for comparison, not as a time.
    tau_window_sokal : int
        Its window ``W`` (``-1`` when inf).
    cover_time : float
        :func:`class_cover_time` (mean over covering starts).
    cover_fraction : float
        Fraction of starts that cover every class.
    class_kl_samples : float
        :func:`sample_class_kl` with ``pseudocount``.
    class_frequencies : tuple of float
        Fraction of samples in each class (the ``P_model`` of ``class_kl_samples``
        before any pseudo-count).
    classes : tuple of int
        Class labels, in the order of ``class_frequencies``.
    n_steps : int
        Samples per chain ``T``.
    n_chains : int
    pseudocount : float
    """

    tau_int_class: float
    tau_window: int
    cover_time: float
    cover_fraction: float
    class_kl_samples: float
    class_frequencies: tuple[float, ...]
    classes: tuple[int, ...]
    n_steps: int
    n_chains: int
    pseudocount: float = 0.0
    window_rule: str = "tapered"
    tau_int_class_envelope: float = math.nan
    tau_window_envelope: int = -1
    tau_int_class_sokal: float = math.nan
    tau_window_sokal: int = -1

    def as_dict(self) -> dict[str, Any]:
        """Plain ints, floats and lists (floats may be ``inf``)."""
        d = asdict(self)
        d["class_frequencies"] = list(self.class_frequencies)
        d["classes"] = list(self.classes)
        return d


def mixing_measures_from_labels(
    labels: object,
    data_labels: object,
    n_classes: int,
    *,
    classes: object = None,
    pseudocount: float = 0.0,
    window: Literal["tapered", "abs", "sokal"] = "tapered",
) -> MixingMeasures:
    """:class:`MixingMeasures` of a class-index sequence (``(T,)`` or ``(n_chains, T)``).

    ``data_labels`` are class indices too; ``classes`` names the indices
    (default ``0 .. n_classes - 1``); ``pseudocount`` goes to
    :func:`sample_class_kl` and ``window`` to :func:`integrated_autocorrelation_time`.
    """
    lab, K = _as_labels(labels, n_classes)
    tau, w = integrated_autocorrelation_time(lab, K, window=window, return_window=True)
    tau_env, w_env = integrated_autocorrelation_time(lab, K, window="abs", return_window=True)
    tau_sokal, w_sokal = integrated_autocorrelation_time(lab, K, window="sokal", return_window=True)
    cover, frac = class_cover_time(lab, K, return_fraction=True)
    names = np.arange(K) if classes is None else np.asarray(classes)
    if names.shape != (K,):
        raise ValueError(f"classes must have {K} entries, got shape {names.shape}")
    freq = np.bincount(lab.ravel(), minlength=K) / lab.size
    return MixingMeasures(
        tau_int_class=float(tau),
        tau_window=int(w),
        cover_time=float(cover),
        cover_fraction=float(frac),
        class_kl_samples=sample_class_kl(lab, data_labels, K, pseudocount=pseudocount),
        class_frequencies=tuple(float(f) for f in freq),
        classes=tuple(int(c) for c in names),
        n_steps=int(lab.shape[1]),
        n_chains=int(lab.shape[0]),
        pseudocount=float(pseudocount),
        window_rule=window,
        tau_int_class_envelope=float(tau_env),
        tau_window_envelope=int(w_env),
        tau_int_class_sokal=float(tau_sokal),
        tau_window_sokal=int(w_sokal),
    )


def mixing_measures(
    samples: object,
    classifier: Classifier,
    data_labels: object,
    *,
    pseudocount: float = 0.0,
    window: Literal["tapered", "abs", "sokal"] = "tapered",
) -> MixingMeasures:
    """Classify generated samples and measure the mixing of their class.

    Parameters
    ----------
    samples : array_like of 0/1, shape (T, D) or (n_chains, T, D)
        Consecutive visible states of one chain (``Machine.sample(T,
        n_chains=1, thin=1)``), of several independent chains of equal length,
        or i.i.d. draws (the ideal: ``tau_int_class`` about 1).
    classifier : fitted classifier with ``classes_`` and ``predict``
        E.g. :class:`nemm.classifier.BernoulliNaiveBayes` fitted on the labeled data.
    data_labels : array_like, shape (N,)
        Labels of the data (values from ``classifier.classes_``), for the class KL.
    pseudocount : float, default 0
        Passed to :func:`sample_class_kl`.
    window : {"tapered", "abs", "sokal"}, default "tapered"
        Window of ``tau_int_class`` (the envelope and literal Sokal values are always reported too).

    Returns
    -------
    MixingMeasures
    """
    arr = np.asarray(samples)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(f"samples must have shape (T, D) or (n_chains, T, D), got {arr.shape}")
    n_chains, T, D = arr.shape
    classes = np.asarray(classifier.classes_)
    if classes.ndim != 1 or classes.size < 2:
        raise ValueError("classifier.classes_ must list at least 2 classes")
    flat = as_binary_matrix(arr.reshape(n_chains * T, D), "samples")
    pred = np.asarray(classifier.predict(flat))
    idx = _class_indices(pred, classes, "predicted labels").reshape(n_chains, T)
    dl = np.asarray(data_labels)
    if dl.ndim != 1:
        raise ValueError(f"data_labels must be one-dimensional, got shape {dl.shape}")
    didx = _class_indices(dl, classes, "data_labels")
    return mixing_measures_from_labels(
        idx, didx, classes.size, classes=classes, pseudocount=pseudocount, window=window
    )


def _class_indices(values: np.ndarray, classes: np.ndarray, name: str) -> np.ndarray:
    """Positions of ``values`` in ``classes`` (which must be sorted, as ``np.unique`` gives)."""
    order = np.argsort(classes, kind="stable")
    pos = np.searchsorted(classes[order], values)
    pos = np.clip(pos, 0, classes.size - 1)
    bad = classes[order][pos] != values
    if bad.any():
        raise ValueError(
            f"{name} contain {values[bad][0]!r}, which is not among the classes {classes.tolist()}"
        )
    return order[pos].astype(np.int64)
