"""Training bookkeeping around the engine, and the gradient of eqs. 16-17.

The minibatch stream (a random permutation walked and redrawn, resumable bit for bit from its
state), the batch-size schedule, the checksum that names training data in a model file, the
memory estimate checked before training, and :func:`approx_gradient`, which evaluates the
engine's own training gradient on given states. Used by :mod:`nemm.machine`; imports none of
the model modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from nemm._checks import as_binary_matrix, shown
from nemm._logdomain import logit
from nemm._settings import _WHY_INT32, HIDDEN, MACHINE_SETTINGS, NORMALIZATION, check_settings  # noqa: F401  (_WHY_INT32: machine.py imports it from here)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.machine import Machine

__all__ = [
    "HIDDEN",
    "NORMALIZATION",
    "approx_gradient",
    "batch_size_schedule",
    "initial_weights",
    "validate_settings",
]

# Means of the initialization subsets are clipped here before the logit (appendix A1).
_INIT_CLIP = 0.01


def initial_weights(
    X: np.ndarray, n_hidden: int, hidden: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Appendix A1: the starting w (D, L) and a (D,), and the data mean xbar.

    One-hot: ``w[:, alpha]`` is the logit of the mean of a random 10% subset of the data (one
    subset per state), ``a = 0``; binary: ``w`` small Gaussian, ``a = logit(xbar)``. Means are
    clipped to [0.01, 0.99] first. Shared by the machine and the equilibrium RBM.
    """
    N, D = X.shape
    L = int(n_hidden)
    xbar = X.mean(axis=0)
    if hidden == "onehot":
        k = max(1, N // 10)
        w = np.empty((D, L))
        for alpha in range(L):
            sub = rng.choice(N, size=k, replace=False)
            w[:, alpha] = logit(np.clip(X[sub].mean(axis=0), _INIT_CLIP, 1 - _INIT_CLIP))
        a = np.zeros(D)
    else:
        w = 0.01 * rng.standard_normal((D, L))
        a = logit(np.clip(xbar, _INIT_CLIP, 1 - _INIT_CLIP))
    return w, a, xbar


def batch_size_schedule(epoch: int, n_epochs: int, batch_size: tuple[int, int]) -> int:
    """Minibatch size of ``epoch``: linear from ``batch_size[0]`` to ``batch_size[1]``."""
    start, end = batch_size
    if n_epochs <= 1:
        return int(end)
    frac = min(max(epoch / (n_epochs - 1), 0.0), 1.0)
    return int(round(start + (end - start) * frac))


class _BatchStream:
    """Minibatches drawn by walking a random permutation of the data, reshuffled when used up."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.perm = rng.permutation(n)
        self.pos = 0

    def state(self) -> tuple[np.ndarray, int, dict[str, Any]]:
        """(permutation, position, PCG64 state): everything that decides the next minibatches."""
        # numpy's stubs say Mapping; PCG64's state getter returns a fresh dict.
        return self.perm, self.pos, cast(dict[str, Any], self.rng.bit_generator.state)

    @classmethod
    def from_state(cls, perm: np.ndarray, pos: int, rng_state: dict[str, Any]) -> _BatchStream:
        """The stream ``state()`` described; it continues bit for bit."""
        perm = np.asarray(perm, dtype=np.int64)
        n = perm.shape[0]
        if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError("the saved minibatch permutation is not a permutation")
        if not isinstance(pos, int) or not 0 <= pos <= n:
            raise ValueError(f"the saved minibatch position {shown(pos)} is outside [0, {n}]")
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = rng_state  # numpy checks its keys and types
        stream = cls.__new__(cls)
        stream.n, stream.rng, stream.perm, stream.pos = n, rng, perm, pos
        return stream

    def restore(self, state: tuple[np.ndarray, int, dict[str, Any]]) -> None:
        """Go back to a ``state()`` of this stream (take() replaces perm, never writes into it)."""
        self.perm, self.pos, self.rng.bit_generator.state = state

    def take(self, k: int) -> np.ndarray:
        out = np.empty(k, dtype=np.int64)
        filled = 0
        while filled < k:
            if self.pos == self.n:
                self.perm, self.pos = self.rng.permutation(self.n), 0
            m = min(k - filled, self.n - self.pos)
            out[filled : filled + m] = self.perm[self.pos : self.pos + m]
            filled += m
            self.pos += m
        return out


def _data_checksum(X: np.ndarray, y: np.ndarray | None = None) -> str:
    """sha256 of a 0/1 matrix (its shape and packed bits) and its labels, if any: the data's identity.

    It names the training data in a model file (no labels) and the data of a sweep's run ids.
    """
    h = hashlib.sha256(f"{X.shape[0]}x{X.shape[1]}:".encode())
    h.update(np.packbits(np.asarray(X, dtype=bool), axis=1).tobytes())
    if y is not None:
        h.update(b"labels")
        h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def _training_memory(n_samples: int, n_visible: int, settings: dict[str, Any]) -> dict[str, int]:
    """Bytes that training needs, estimated from the sizes of the core's buffers, by the setting
    that decides each part (so that a refusal can name it).

    Per weight (D * L of them): w and wbar, their RMSprop accumulators and gradients, the
    gradient workspace, the forward fields of the visited states (doubles), the float and
    threshold tables of the chains, and the parameter copies made on the Python side.
    Per chain: its scratch vectors and the recording of ``chain_steps`` fantasy states.
    Per minibatch: the gradient's tables of its rows against the visited states; per epoch:
    its minibatch rows (int64) handed to the core at once. Per data point: its active-pixel
    list. Peaks measured at D = 784, L = 2000 and 4000 are about 20% below this estimate.
    """
    D, L = int(n_visible), int(settings["n_hidden"])
    C, T = int(settings["n_chains"]), int(settings["chain_steps"])
    B = max(settings["batch_size"])
    U = min(L if settings["hidden"] == "onehot" else 2**L, C * T)  # distinct hidden states in one step
    per_weight = 8 * 13 + 4 * 2
    per_chain = D * (4 + 4 + 1 + 4) + L * (4 + 8) + T * (4 * D + 8 + 8)
    return {
        "n_hidden": D * L * per_weight,
        "n_chains or chain_steps": C * per_chain,
        "batch_size": 8 * 3 * B * U + 8 * 2 * D * U,
        "steps_per_epoch or batch_size": 8 * (B + 2) * int(settings["steps_per_epoch"]),
        "the number of data points": 4 * n_samples * D,
    }


def approx_gradient(machine: Machine, X: Any, Xp: Any, Z: Any) -> dict[str, np.ndarray]:
    """The approximate log-likelihood gradient of eqs. 16a-16d with 17.

    The same C++ code as training.

    Parameters
    ----------
    machine : Machine
    X : array_like, (N, D)
        Data points; the result is averaged over them.
    Xp : array_like, (T, D)
        Recorded fantasy states x'(t).
    Z : array_like
        Hidden states z(t) drawn from Xp: int (T,) for one-hot, (T, L) bits for binary.
        mu_{z|x'} is recomputed from Xp.

    Returns
    -------
    dict
        ``w`` (D, L), ``a`` (D,), ``wbar`` (L, D), ``abar`` (L,). Tied machines give the
        shared-matrix gradient in ``w`` and its transpose in ``wbar``.
    """
    with machine._lock:  # the engine serves one call at a time
        engine = machine._require_fitted()
        D = machine.n_visible_
        X = as_binary_matrix(X, "X", n_features=D)
        Xp = as_binary_matrix(Xp, "Xp", n_features=D)
        Z = np.asarray(Z)
        if Z.ndim == 0:
            raise ValueError("Z must be an array of hidden states, one per row of Xp")
        if machine.hidden == "onehot" and not np.issubdtype(Z.dtype, np.integer):
            raise TypeError(f"one-hot hidden states Z must be integers in [0, L), got dtype {Z.dtype}")
        if machine.hidden == "binary":
            Z = as_binary_matrix(Z, "binary hidden states Z", n_features=machine.n_hidden)
        if Z.shape[0] != Xp.shape[0]:
            raise ValueError(f"Z has {Z.shape[0]} hidden states but Xp has {Xp.shape[0]} rows")
        g = engine.approx_gradient(X, Xp, Z)
        return {k: np.asarray(g[k]) for k in ("w", "a", "wbar", "abar")}


def validate_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every Machine setting checked and converted to a plain Python value: the one place that does it.

    ``params`` holds every setting (``Machine.get_params()``), as the user gave them; each is checked
    against its entry of :data:`nemm._settings.MACHINE_SETTINGS`, then the combinations. The returned
    dict has the same keys in the same order, ``batch_size`` always as a pair.
    """
    s = check_settings(MACHINE_SETTINGS, params)
    if s["hidden"] == "onehot" and s["n_hidden"] < 2:
        raise ValueError("a one-hot hidden layer needs n_hidden >= 2")
    if s["hidden"] == "binary" and s["normalization"] != "softmax":
        raise ValueError("normalization='sigmoid' (eq. 19) applies to one-hot hidden states only")
    if s["tied"] and s["normalization"] != "softmax":
        raise ValueError("tied=True is the RBM Gibbs sampler and needs normalization='softmax'")
    if s["gradient"] == "rao_blackwell" and s["hidden"] != "onehot":
        raise ValueError(
            "gradient='rao_blackwell' weights every one-hot state; a binary hidden layer needs "
            "gradient='sampled' (or 'auto')"
        )
    return s
