"""The nonequilibrium Markov machine estimator.

State lives in two places only: the C++ engine (parameters, persistent chains,
optimizer) and this object's settings and history. Everything else is a small
pure function.
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from nemm import _core
from nemm._checks import as_binary_matrix, as_real_array
from nemm._io import atomic_open
from nemm._states import codes_to_states
from nemm.markov import occupancy_from_trajectory

__all__ = ["Machine", "load", "approx_gradient", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "nemm-machine"
FORMAT_VERSION = 1

_HIDDEN = ("onehot", "binary")
_NORMALIZATION = ("softmax", "sigmoid")
# Means of the initialization subsets are clipped here before the logit (appendix A1).
_INIT_CLIP = 0.01


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


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


def _seed_words(seed_seq: np.random.SeedSequence) -> int:
    """A 64-bit engine seed drawn from a SeedSequence (hashing, never offsets)."""
    return int(seed_seq.generate_state(1, dtype=np.uint64)[0])


class Machine:
    """Nonequilibrium Markov machine (Baiesi and Rosso, arXiv:2512.11415).

    Two independent kernels link binary data ``x`` (D bits) and a hidden state
    ``z``: ``A(z, x)`` with mean ``sigmoid(w z + a)`` (eq. 10) and ``Abar(x, z)``
    with field ``u = wbar (x - xbar) + abar`` (eqs. 11, 17). The chain
    x -> z -> x -> ... breaks detailed balance unless ``tied=True``.

    Parameters
    ----------
    n_hidden : int
        L: hidden states (one-hot) or hidden bits (binary).
    hidden : {"onehot", "binary"}
        One-hot hidden states (the paper's experiments) or L factorized bits.
    normalization : {"softmax", "sigmoid"}
        One-hot x -> z normalization: softmax (default) or the sigmoid ratio of eq. 19.
    centered : bool
        Subtract the data mean inside the x -> z kernel (eq. 17).
    tied : bool
        Share one weight matrix, ``wbar = w.T``: an RBM Gibbs sampler, the
        equilibrium baseline, trained by the same loop.
    learning_rate, rho, eps : float
        RMSprop ascent: ``v = rho v + (1 - rho) g**2``, ``p += lr g / (sqrt(v) + eps)``.
    n_epochs, steps_per_epoch : int
        Paper protocol: 120 epochs of 30 gradient steps.
    batch_size : (int, int)
        Minibatch size, growing linearly from the first to the second value over the epochs.
    chain_steps : int
        T, double steps x' -> z -> x' of every persistent chain per gradient step.
    n_chains : int
        Persistent chains, advanced in parallel; their recorded pairs are pooled.
    freeze_visible_bias : bool or None
        Keep ``a`` fixed; ``None`` means frozen (at 0) for one-hot, trained for binary.
    random_state : int or None
        Seed. The same seed gives the same numbers whatever the number of threads.
    verbose : bool
        Show a progress bar during ``fit``.
    """

    def __init__(
        self,
        n_hidden: int = 6,
        *,
        hidden: str = "onehot",
        normalization: str = "softmax",
        centered: bool = True,
        tied: bool = False,
        learning_rate: float = 0.1,
        rho: float = 0.9,
        eps: float = 1e-8,
        n_epochs: int = 120,
        steps_per_epoch: int = 30,
        batch_size: tuple[int, int] = (16, 160),
        chain_steps: int = 48,
        n_chains: int = 1,
        freeze_visible_bias: bool | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_hidden = n_hidden
        self.hidden = hidden
        self.normalization = normalization
        self.centered = centered
        self.tied = tied
        self.learning_rate = learning_rate
        self.rho = rho
        self.eps = eps
        self.n_epochs = n_epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.chain_steps = chain_steps
        self.n_chains = n_chains
        self.freeze_visible_bias = freeze_visible_bias
        self.random_state = random_state
        self.verbose = verbose
        self._engine: _core.Engine | None = None
        self._occupancy: tuple[np.ndarray, np.ndarray, int] | None = None
        self.history_: dict[str, list[float]] = {}
        self.epochs_done_ = 0

    # ------------------------------------------------------------------ settings
    _SETTINGS = (
        "n_hidden", "hidden", "normalization", "centered", "tied", "learning_rate", "rho", "eps",
        "n_epochs", "steps_per_epoch", "batch_size", "chain_steps", "n_chains",
        "freeze_visible_bias", "random_state", "verbose",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Settings as a dict (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._SETTINGS}

    def set_params(self, **params: Any) -> "Machine":
        """Change settings (scikit-learn convention); takes effect at the next ``fit``."""
        for k, v in params.items():
            if k not in self._SETTINGS:
                raise ValueError(f"unknown setting {k!r}; valid settings: {', '.join(self._SETTINGS)}")
            setattr(self, k, v)
        return self

    def _validate_settings(self) -> None:
        if not isinstance(self.n_hidden, (int, np.integer)) or self.n_hidden < 1:
            raise ValueError(f"n_hidden must be a positive integer, got {self.n_hidden!r}")
        if self.hidden not in _HIDDEN:
            raise ValueError(f"hidden must be one of {_HIDDEN}, got {self.hidden!r}")
        if self.normalization not in _NORMALIZATION:
            raise ValueError(f"normalization must be one of {_NORMALIZATION}, got {self.normalization!r}")
        if self.hidden == "onehot" and self.n_hidden < 2:
            raise ValueError("a one-hot hidden layer needs n_hidden >= 2")
        if self.hidden == "binary" and self.n_hidden > 63:
            raise ValueError("a binary hidden layer supports n_hidden <= 63")
        if self.hidden == "binary" and self.normalization != "softmax":
            raise ValueError("normalization='sigmoid' (eq. 19) applies to one-hot hidden states only")
        if self.tied and self.normalization != "softmax":
            raise ValueError("tied=True is the RBM Gibbs sampler and needs normalization='softmax'")
        for name in ("n_epochs", "steps_per_epoch", "chain_steps", "n_chains"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        b = self.batch_size
        if isinstance(b, (int, np.integer)):
            self.batch_size = b = (int(b), int(b))
        if len(b) != 2 or min(b) < 1:
            raise ValueError(f"batch_size must be a positive int or a pair (start, end), got {b!r}")
        if not (self.learning_rate > 0 and 0 <= self.rho < 1 and self.eps > 0):
            raise ValueError("need learning_rate > 0, 0 <= rho < 1 and eps > 0")

    @property
    def _freeze_a(self) -> bool:
        if self.freeze_visible_bias is None:
            return self.hidden == "onehot"
        return bool(self.freeze_visible_bias)

    # ------------------------------------------------------------------ parameters
    def _require_fitted(self) -> _core.Engine:
        if self._engine is None:
            raise RuntimeError("this Machine has no parameters yet: call fit(X) or use Machine.from_params")
        return self._engine

    @property
    def n_visible_(self) -> int:
        """D, the number of visible bits."""
        return int(self._require_fitted().n_visible)

    @property
    def w_(self) -> np.ndarray:
        """Forward weights w, (D, L) (eq. 10)."""
        return self._require_fitted().w

    @property
    def a_(self) -> np.ndarray:
        """Visible bias a, (D,)."""
        return self._require_fitted().a

    @property
    def wbar_(self) -> np.ndarray:
        """Backward weights wbar, (L, D) (eq. 11); ``w_.T`` when tied."""
        return self._require_fitted().wbar

    @property
    def abar_(self) -> np.ndarray:
        """Hidden bias abar, (L,)."""
        return self._require_fitted().abar

    @property
    def xbar_(self) -> np.ndarray:
        """Data mean used for centering, (D,) (eq. 17)."""
        return self._require_fitted().xbar

    @property
    def n_states(self) -> int:
        """Number of hidden states: L (one-hot) or 2**L (binary)."""
        return self.n_hidden if self.hidden == "onehot" else 2**self.n_hidden

    def _make_engine(self, D: int) -> _core.Engine:
        return _core.Engine(D, int(self.n_hidden), self.hidden, self.normalization, bool(self.centered), bool(self.tied))

    def _set_params(self, w: Any, a: Any, wbar: Any, abar: Any, xbar: Any) -> None:
        D, L = np.shape(w) if np.ndim(w) == 2 else (None, None)
        if D is None or L != self.n_hidden:
            raise ValueError(f"w must have shape (D, {self.n_hidden}), got {np.shape(w)}")
        w = as_real_array(w, "w", (D, L))
        a = as_real_array(a, "a", (D,))
        if self.tied:
            if wbar is not None and not np.allclose(np.asarray(wbar, dtype=float), w.T, rtol=0, atol=1e-12):
                raise ValueError("tied=True shares one matrix: wbar must be None or equal to w.T")
            wbar = w.T
        wbar = as_real_array(wbar, "wbar", (L, D))
        abar = as_real_array(abar, "abar", (L,))
        xbar = as_real_array(xbar, "xbar", (D,))
        if ((xbar < 0) | (xbar > 1)).any():
            raise ValueError("xbar is a data mean and must lie in [0, 1]")
        if self._engine is None or self._engine.n_visible != D:
            self._engine = self._make_engine(D)
        self._engine.set_params(w, a, wbar, abar, xbar)
        self._occupancy = None

    @classmethod
    def from_params(
        cls,
        w: Any,
        a: Any,
        wbar: Any,
        abar: Any,
        xbar: Any | None = None,
        **settings: Any,
    ) -> "Machine":
        """A machine built from given parameters, ready to sample and score.

        Parameters
        ----------
        w, a, wbar, abar : array_like
            Shapes (D, L), (D,), (L, D), (L,). With ``tied=True``, ``wbar`` may be None.
        xbar : array_like, optional
            Centering mean (D,); defaults to 0.5 everywhere.
        **settings
            Any constructor setting (``hidden``, ``normalization``, ``centered``, ``tied``, ...).
        """
        w_arr = np.asarray(w)
        if w_arr.ndim != 2:
            raise ValueError(f"w must be two-dimensional (D, L), got shape {w_arr.shape}")
        settings.setdefault("n_hidden", int(w_arr.shape[1]))
        m = cls(**settings)
        m._validate_settings()
        if xbar is None:
            xbar = np.full(w_arr.shape[0], 0.5)
        m._set_params(w_arr, a, wbar, abar, xbar)
        return m

    def _initial_params(self, X: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Appendix A1: wbar = 0, abar = 0, w[:, alpha] = logit(mean of a random 10% subset)."""
        N, D = X.shape
        L = int(self.n_hidden)
        xbar = X.mean(axis=0)
        if self.hidden == "onehot":
            k = max(1, N // 10)
            w = np.empty((D, L))
            for alpha in range(L):
                sub = rng.choice(N, size=k, replace=False)
                w[:, alpha] = _logit(np.clip(X[sub].mean(axis=0), _INIT_CLIP, 1 - _INIT_CLIP))
            a = np.zeros(D)
        else:
            w = 0.01 * rng.standard_normal((D, L))
            a = _logit(np.clip(xbar, _INIT_CLIP, 1 - _INIT_CLIP))
        wbar = w.T.copy() if self.tied else np.zeros((L, D))
        return dict(w=w, a=a, wbar=wbar, abar=np.zeros(L), xbar=xbar)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        callback: Callable[["Machine", int], None] | None = None,
    ) -> "Machine":
        """Train on binary data with the paper's protocol (section III).

        Parameters
        ----------
        X : array_like, (N, D)
            Rows of 0/1 values.
        y : ignored
        callback : callable, optional
            Called as ``callback(machine, epoch)`` after every epoch (e.g. diagnostics).

        Returns
        -------
        self
        """
        self._validate_settings()
        X = as_binary_matrix(X)
        seeds = np.random.SeedSequence(self.random_state).spawn(3)
        init_rng, batch_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
        self._engine = None
        self._set_params(**self._initial_params(X, init_rng))
        self._start_training(X, batch_rng, _seed_words(seeds[2]))
        return self._train_epochs(self.n_epochs, callback)

    def partial_fit(self, X: Any, y: Any = None, *, n_epochs: int = 1) -> "Machine":
        """Continue training for ``n_epochs`` epochs (initializing first if needed).

        The persistent chains and the RMSprop state carry over; the minibatch size
        continues the linear schedule of ``fit``.
        """
        X = as_binary_matrix(X, n_features=self.n_visible_ if self._engine is not None else None)
        if self._engine is None or not hasattr(self, "_batches"):
            self._validate_settings()
            seeds = np.random.SeedSequence(self.random_state).spawn(3)
            if self._engine is None:
                self._set_params(**self._initial_params(X, np.random.default_rng(seeds[0])))
            self._start_training(X, np.random.default_rng(seeds[1]), _seed_words(seeds[2]), keep_history=True)
        elif self._batches.n != X.shape[0] or not np.array_equal(self._train_data_sum, X.sum(axis=0)):
            self._engine.set_data(X)
            self._batches = _BatchStream(X.shape[0], self._batches.rng)
            self._train_data_sum = X.sum(axis=0)
        return self._train_epochs(n_epochs, None)

    def _start_training(self, X: np.ndarray, batch_rng: np.random.Generator, chain_seed: int,
                        keep_history: bool = False) -> None:
        engine = self._require_fitted()
        engine.set_data(X)
        init_rows = batch_rng.choice(X.shape[0], size=int(self.n_chains), replace=X.shape[0] < self.n_chains)
        engine.reset_chains(int(self.n_chains), chain_seed, X[init_rows])
        engine.reset_optimizer()
        self._batches = _BatchStream(X.shape[0], batch_rng)
        self._train_data_sum = X.sum(axis=0)
        if not keep_history or not self.history_:
            self.history_ = {"epoch": [], "loglik": [], "batch_size": [], "seconds": []}
            self.epochs_done_ = 0

    def _train_epochs(self, n_epochs: int, callback: Callable[["Machine", int], None] | None) -> "Machine":
        engine = self._require_fitted()
        progress = tqdm(total=n_epochs, desc="training", disable=not self.verbose)
        t0 = time.perf_counter()
        try:
            for _ in range(n_epochs):
                e = self.epochs_done_
                bs = batch_size_schedule(e, self.n_epochs, tuple(self.batch_size))
                rows = self._batches.take(bs * self.steps_per_epoch)
                sizes = np.full(self.steps_per_epoch, bs, dtype=np.int64)
                ll = engine.train_steps(rows, sizes, int(self.chain_steps), float(self.learning_rate),
                                        float(self.rho), float(self.eps), self._freeze_a)
                if not np.isfinite(ll).all() or not np.isfinite(engine.w).all():
                    raise FloatingPointError(f"training diverged at epoch {e} (non-finite parameters); "
                                             "try a smaller learning_rate")
                self.epochs_done_ += 1
                self.history_.setdefault("epoch", []).append(e)
                self.history_.setdefault("loglik", []).append(float(ll.mean()))
                self.history_.setdefault("batch_size", []).append(bs)
                self.history_.setdefault("seconds", []).append(time.perf_counter() - t0)
                self._occupancy = None
                if callback is not None:
                    callback(self, e)
                progress.set_postfix_str(f"LL {ll.mean():.2f}", refresh=False)
                progress.update(1)
        finally:
            progress.close()
        return self

    # ------------------------------------------------------------------ sampling
    def _codes_to_states(self, codes: np.ndarray) -> np.ndarray:
        """One-hot: int states; binary: bits along a new last axis."""
        return codes_to_states(codes, self.hidden, self.n_hidden)

    def _seed(self, seed: int | None) -> int:
        return _seed_words(np.random.SeedSequence(self.random_state if seed is None else seed))

    def hidden_trajectory(
        self, T: int, *, seed: int | None = None, n_chains: int = 1, burn_in: int = 1000, codes: bool = False
    ) -> np.ndarray:
        """Hidden states z(0..T-1) of a long run of fresh chains (eq. 18).

        Parameters
        ----------
        T : int
            Length of each trajectory.
        seed : int, optional
            Defaults to the machine's ``random_state``.
        n_chains : int
            Independent chains (run in parallel); with more than one, a leading axis is added.
        burn_in : int
            Unrecorded double steps first.
        codes : bool
            Return integer state codes (binary: sum_b z_b 2**b) instead of bits.

        Returns
        -------
        ndarray
            One-hot: int64 (T,); binary: uint8 (T, L) bits, or int codes with ``codes=True``.
        """
        engine = self._require_fitted()
        if T < 1 or n_chains < 1 or burn_in < 0:
            raise ValueError("need T >= 1, n_chains >= 1 and burn_in >= 0")
        traj = engine.hidden_trajectory(int(T), int(n_chains), self._seed(seed), int(burn_in))
        out = traj.astype(np.int64) if (codes or self.hidden == "onehot") else self._codes_to_states(traj)
        return out[0] if n_chains == 1 else out

    def sample(
        self,
        n_samples: int,
        *,
        burn_in: int = 1000,
        thin: int = 10,
        n_chains: int | None = None,
        seed: int | None = None,
        return_hidden: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Draw visible samples from the stationary state of the chain.

        Parameters
        ----------
        n_samples : int
        burn_in : int
            Double steps discarded by every chain before its first sample.
        thin : int
            Double steps between successive samples of one chain.
        n_chains : int, optional
            Independent chains (default ``min(n_samples, 64)``), run in parallel.
        seed : int, optional
            Defaults to the machine's ``random_state``.
        return_hidden : bool
            Also return the hidden state that generated each sample.

        Returns
        -------
        X : ndarray of uint8, (n_samples, D)
        Z : ndarray, only with ``return_hidden``
        """
        engine = self._require_fitted()
        if n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        C = int(n_chains) if n_chains is not None else min(int(n_samples), 64)
        if C < 1:
            raise ValueError("n_chains must be at least 1")
        per_chain = math.ceil(n_samples / C)
        X, Z = engine.sample(C, per_chain, int(burn_in), int(thin), self._seed(seed))
        X, Z = X[:n_samples], Z[:n_samples]
        return (X, Z) if return_hidden else X

    def mean_images(self, states: Any = None) -> np.ndarray:
        """mu_{x|z} = sigmoid(w z + a) (eq. 14) for hidden states (default: every one-hot state)."""
        Z = self._state_matrix(states)
        h = Z @ self.w_.T + self.a_
        return 0.5 * (1.0 + np.tanh(0.5 * h))

    def _state_matrix(self, states: Any) -> np.ndarray:
        L = self.n_hidden
        if states is None:
            if self.hidden != "onehot":
                raise ValueError("give the binary hidden states explicitly")
            return np.eye(L)
        s = np.asarray(states)
        if self.hidden == "onehot":
            return np.eye(L)[s.astype(np.int64)]
        return s.reshape(-1, L).astype(float)

    # ------------------------------------------------------------------ likelihood
    def log_A(self, X: Any, states: Any = None) -> np.ndarray:
        """log A(z, x) for every row x of X and every hidden state z, (N, S), in the log domain.

        ``states`` defaults to all one-hot states; binary states are (S, L) bits.
        """
        engine = self._require_fitted()
        X = as_binary_matrix(X, n_features=self.n_visible_)
        if states is None:
            if self.hidden != "onehot":
                raise ValueError("give the binary hidden states explicitly")
            states = np.arange(self.n_hidden)
        return engine.log_A(X, states)

    def occupancy(self, n_steps: int = 100_000, *, seed: int | None = None, n_chains: int = 1,
                  burn_in: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Empirical stationary occupancy pbar_e(z) of the hidden chain.

        Returns
        -------
        states : ndarray
            Visited states (one-hot: all L states; binary: visited codes, as (S, L) bits).
        pbar : ndarray of float, (S,)
        """
        traj = self.hidden_trajectory(n_steps, seed=seed, n_chains=n_chains, burn_in=burn_in, codes=True)
        if self.hidden == "onehot":
            return np.arange(self.n_hidden), occupancy_from_trajectory(traj, self.n_hidden)
        codes, counts = np.unique(traj.ravel(), return_counts=True)
        return self._codes_to_states(codes.astype(np.uint64)), counts / traj.size

    def score_samples(self, X: Any, *, pbar: Any = None, n_steps: int = 100_000) -> np.ndarray:
        """Log-likelihood ln p(x) of every row (appendix A3).

        ``ln p(x) = logsumexp_z [ln pbar(z) + log A(z, x)]``, exact given ``pbar``. By default
        ``pbar`` is the occupancy of a chain of ``n_steps`` steps (computed once and cached).

        Parameters
        ----------
        X : array_like, (N, D)
        pbar : array_like, optional
            Stationary hidden distribution over all states (L, or 2**L for binary).
        n_steps : int
            Length of the chain that estimates ``pbar`` when it is not given.
        """
        engine = self._require_fitted()
        X = as_binary_matrix(X, n_features=self.n_visible_)
        if pbar is None:
            if self._occupancy is None or self._occupancy[2] != n_steps:
                states, p = self.occupancy(n_steps)
                self._occupancy = (states, p, n_steps)
            states, p = self._occupancy[0], self._occupancy[1]
        else:
            p = as_real_array(pbar, "pbar", (self.n_states,))
            if (p < 0).any() or not np.isclose(p.sum(), 1.0, atol=1e-8):
                raise ValueError("pbar must be a probability vector (non-negative, summing to 1)")
            keep = np.flatnonzero(p > 0)
            states = keep if self.hidden == "onehot" else self._codes_to_states(keep.astype(np.uint64))
            p = p[keep]
        with np.errstate(divide="ignore"):
            logw = np.log(p)
        return engine.log_likelihood(X, states, logw)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per data point (nats)."""
        return float(self.score_samples(X).mean())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (npz with JSON metadata; no pickle), atomically.

        The file holds the arrays ``w``, ``a``, ``wbar``, ``abar``, ``xbar``, the history
        (``history/<key>``) and ``metadata``: a JSON string with ``format``
        ("nemm-machine"), ``format_version``, the nemm version and the settings.
        """
        engine = self._require_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        settings = self.get_params()
        settings["batch_size"] = list(settings["batch_size"])
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "nemm_version": _core.__version__,
            "settings": settings,
            "epochs_done": self.epochs_done_,
            "history_keys": sorted(self.history_),
        }
        arrays = {
            "w": engine.w, "a": engine.a, "wbar": engine.wbar, "abar": engine.abar, "xbar": engine.xbar,
            "metadata": np.array(json.dumps(meta)),
        }
        for k, v in self.history_.items():
            arrays[f"history/{k}"] = np.asarray(v, dtype=float)
        with atomic_open(path) as fh:
            np.savez(fh, **arrays)
        return path

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("n_hidden", "hidden", "normalization",
                                                               "centered", "tied", "random_state"))
        return f"Machine({shown})"


#: Readers of the other models in the nemm file family, by metadata ``format``. Their modules
#: register here (``nemm.rbm`` adds "nemm-rbm"), so this module never imports them.
_OTHER_FORMATS: dict[str, Callable[[Any, dict[str, Any], Path], Any]] = {}


def register_format(name: str, reader: Callable[[Any, dict[str, Any], Path], Any]) -> None:
    """Let :func:`load` read files whose metadata ``format`` is ``name`` with ``reader(npz, meta, path)``."""
    _OTHER_FORMATS[name] = reader


def load(path: str | os.PathLike[str]) -> Machine:
    """Load a machine saved by :meth:`Machine.save` (never unpickles).

    A file written by :meth:`nemm.baselines.RBM.save` (format "nemm-rbm") gives that RBM.

    Raises
    ------
    ValueError
        If the file is not a nemm model, has an unsupported format version, or its
        arrays are malformed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    with open(path, "rb") as fh:  # our own handle: numpy leaks its own on a corrupt archive
        try:
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an npz archive")
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} is not a readable nemm model file (npz): {exc}") from exc
        try:
            return _machine_from_npz(npz, path)
        except (KeyError, TypeError, EOFError, zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{path} is a corrupt nemm model file: {exc}") from exc
        finally:
            npz.close()


def _machine_from_npz(npz: Any, path: Path) -> Machine:
    if "metadata" not in npz.files:
        raise ValueError(f"{path} is not a nemm model file (no metadata)")
    try:
        meta = json.loads(str(npz["metadata"][()]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt metadata: {exc}") from exc
    if isinstance(meta, dict) and meta.get("format") in _OTHER_FORMATS:  # e.g. the equilibrium RBM's file
        return _OTHER_FORMATS[meta["format"]](npz, meta, path)  # type: ignore[no-any-return]
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a nemm model file (metadata format is not {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has model format version {version!r}; this nemm reads version {FORMAT_VERSION}")
    missing = [k for k in ("w", "a", "wbar", "abar", "xbar") if k not in npz.files]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}")
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: metadata has no settings")
    unknown = sorted(set(settings) - set(Machine._SETTINGS))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown} (written by a newer nemm?)")
    settings = dict(settings)
    if "batch_size" in settings:
        settings["batch_size"] = tuple(settings["batch_size"])
    m = Machine.from_params(npz["w"], npz["a"], npz["wbar"], npz["abar"], npz["xbar"], **settings)
    keys = meta.get("history_keys", [])
    m.history_ = {k: npz[f"history/{k}"].tolist() for k in keys if f"history/{k}" in npz.files}
    m.epochs_done_ = int(meta.get("epochs_done", 0))
    return m


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
