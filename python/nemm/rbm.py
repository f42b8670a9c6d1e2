"""The equilibrium RBM, trained by its own learning rule.

Spec section "The equilibrium baseline: an RBM trained as an RBM". The energy is

    E(x, h) = -x . w h - a . x - abar . h,   p(x, h) = exp(-E(x, h)) / Z,

with h one-hot over L states (a Potts hidden unit) or L binary units. Training
ascends the exact gradient of the mean ln p when the hidden layer can be
enumerated (at most 2**16 states), else persistent contrastive divergence with
k Gibbs steps (PCD-k). Everything runs in the C++ core (``_core.RBMEngine``),
and sampling is the engine's Gibbs chain: ``nemm.Machine`` with ``tied=True``
and ``centered=False`` draws x | h ~ Bernoulli(sigmoid(w h + a)) and
h | x ~ softmax(w^T x + abar) (one-hot) or independent sigmoids (binary),
which is this RBM's Gibbs sampler exactly. (The tied machine trained by eqs.
16-17, ``nemm.Machine(tied=True)``, is a different model: a studied variant.)
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from nemm import _core, model_file
from nemm._checks import as_binary_matrix, as_real_array
from nemm._seeds import engine_seed
from nemm.machine import Machine
from nemm.model_file import register_format
from nemm.training import HIDDEN as _HIDDEN
from nemm.training import initial_weights

__all__ = ["RBM", "FORMAT_NAME", "FORMAT_VERSION", "EXACT_MAX_STATES"]

FORMAT_NAME = "nemm-rbm"
FORMAT_VERSION = 1
#: ``gradient="auto"`` uses the exact gradient up to this many hidden states, PCD-k beyond.
EXACT_MAX_STATES = 2**16
# The exact ln Z of score_samples enumerates at most this many hidden states.
_SCORE_MAX_STATES = 2**24
# Centering: the offset of h is a running mean of E[h | x] over the minibatches, at this rate.
_CENTER_RATE = 0.01

_OPTIMIZERS = ("adam", "rmsprop")
_GRADIENTS = ("auto", "exact", "pcd")


def _softplus(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0.0) + np.log1p(np.exp(-np.abs(h)))


class RBM:
    """Restricted Boltzmann machine with one-hot or binary hidden units, trained as an RBM.

    Parameters
    ----------
    n_hidden : int
        L: hidden states (one-hot) or hidden units (binary).
    hidden : {"onehot", "binary"}
        One Potts hidden unit with L states, or L independent binary units (2**L states).
    optimizer : {"adam", "rmsprop"}
        Ascent rule. Adam: ``beta1``, ``beta2``, ``eps``; RMSprop (as for the machine): ``rho``, ``eps``.
    learning_rate : float
    n_epochs : int
        Passes over the data; each is a fresh random order cut into minibatches.
    batch_size : int
        Rows per gradient step.
    centered : bool
        Montavon-Mueller centering: the step is taken in the coordinates of the energy
        -(x - mu).W(h - lambda) - b.(x - mu) - c.(h - lambda), mu the data mean, lambda a
        running mean of E[h | x]. The model family is unchanged; only the path differs.
    gradient : {"auto", "exact", "pcd"}
        ``"auto"``: the exact gradient when the hidden layer has at most 2**16 states
        (one-hot: L; binary: 2**L), else PCD-k.
    pcd_steps : int
        k, Gibbs double steps of the persistent chains per gradient step (PCD only).
    n_chains : int
        Persistent chains (PCD only).
    beta1, beta2, rho, eps : float
        Optimizer constants.
    random_state : int or None
        Seed. The same seed gives the same numbers whatever the number of threads.
    verbose : bool
        Show a progress bar during ``fit``.

    Notes
    -----
    Initialization. One-hot: as the machine's appendix A1, ``w[:, alpha]`` is the logit of
    the mean of a random 10 % subset of the data (clipped to [0.01, 0.99]), ``a = 0``, and
    ``abar[alpha] = -sum_i softplus(w[i, alpha])`` so that the L mixture components start
    with equal weights. Binary: ``w ~ 0.01 N(0, 1)``, ``a = logit(data mean)``, ``abar = 0``.

    Defaults (Adam, learning rate 0.02, minibatches of 100, 100 epochs: 3000 exact-gradient
    steps) were chosen on the training likelihood alone. On the 2980 embedded digits they give
    -146.93 and -146.82 nats (one-hot, L = 6, seeds 0 and 1) and -140.17 and -139.46 (binary,
    L = 6); the EM ceiling of the one-hot family is about -146.2.

    ``history_["loglik"]`` holds, per epoch, the mean over its minibatches of their exact
    mean ln p at the parameters before each step (NaN under PCD with more than 1024 hidden
    states, where ln Z is not computed during training).
    """

    _SETTINGS = (
        "n_hidden", "hidden", "optimizer", "learning_rate", "n_epochs", "batch_size", "centered",
        "gradient", "pcd_steps", "n_chains", "beta1", "beta2", "rho", "eps", "random_state", "verbose",
    )

    def __init__(
        self,
        n_hidden: int = 6,
        hidden: str = "onehot",
        *,
        optimizer: str = "adam",
        learning_rate: float = 0.02,
        n_epochs: int = 100,
        batch_size: int = 100,
        centered: bool = False,
        gradient: str = "auto",
        pcd_steps: int = 1,
        n_chains: int = 100,
        beta1: float = 0.9,
        beta2: float = 0.999,
        rho: float = 0.9,
        eps: float = 1e-8,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_hidden = n_hidden
        self.hidden = hidden
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.centered = centered
        self.gradient = gradient
        self.pcd_steps = pcd_steps
        self.n_chains = n_chains
        self.beta1 = beta1
        self.beta2 = beta2
        self.rho = rho
        self.eps = eps
        self.random_state = random_state
        self.verbose = verbose
        self._engine: _core.RBMEngine | None = None
        self._rng: np.random.Generator | None = None
        self._sampler: Any = None
        self.history_: dict[str, list[float]] = {}
        self.epochs_done_ = 0

    # ------------------------------------------------------------------ settings
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Settings as a dict (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._SETTINGS}

    def set_params(self, **params: Any) -> "RBM":
        """Change settings (scikit-learn convention); takes effect at the next ``fit``."""
        for k, v in params.items():
            if k not in self._SETTINGS:
                raise ValueError(f"unknown setting {k!r}; valid settings: {', '.join(self._SETTINGS)}")
            setattr(self, k, v)
        return self

    def _validate_settings(self) -> None:
        if not isinstance(self.n_hidden, (int, np.integer)) or isinstance(self.n_hidden, bool) or self.n_hidden < 1:
            raise ValueError(f"n_hidden must be a positive integer, got {self.n_hidden!r}")
        if self.hidden not in _HIDDEN:
            raise ValueError(f"hidden must be one of {_HIDDEN}, got {self.hidden!r}")
        if self.hidden == "onehot" and self.n_hidden < 2:
            raise ValueError("a one-hot hidden layer needs n_hidden >= 2")
        if self.hidden == "binary" and self.n_hidden > 63:
            raise ValueError("a binary hidden layer supports n_hidden <= 63")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.gradient not in _GRADIENTS:
            raise ValueError(f"gradient must be one of {_GRADIENTS}, got {self.gradient!r}")
        if self.gradient == "exact" and self.n_states > EXACT_MAX_STATES:
            raise ValueError(f"gradient='exact' enumerates the hidden layer: at most {EXACT_MAX_STATES} states, "
                             f"this one has {self.n_states}; use gradient='pcd'")
        for name in ("n_epochs", "batch_size", "pcd_steps", "n_chains"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (self.learning_rate > 0 and self.eps > 0):
            raise ValueError("need learning_rate > 0 and eps > 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and 0 <= self.rho < 1):
            raise ValueError("need beta1, beta2 and rho in [0, 1)")

    @property
    def n_states(self) -> int:
        """Number of hidden states: L (one-hot) or 2**L (binary)."""
        return int(self.n_hidden) if self.hidden == "onehot" else 2 ** int(self.n_hidden)

    @property
    def gradient_(self) -> str:
        """The gradient actually used: ``"exact"`` or ``"pcd"`` (``"auto"`` resolved)."""
        if self.gradient != "auto":
            return str(self.gradient)
        return "exact" if self.n_states <= EXACT_MAX_STATES else "pcd"

    # ------------------------------------------------------------------ parameters
    def _require_fitted(self) -> _core.RBMEngine:
        if self._engine is None:
            raise RuntimeError("this RBM has no parameters yet: call fit(X) or use RBM.from_params")
        return self._engine

    @property
    def n_visible_(self) -> int:
        """D, the number of visible bits."""
        return int(self._require_fitted().n_visible)

    @property
    def w_(self) -> np.ndarray:
        """Weights w, (D, L)."""
        return self._require_fitted().w

    @property
    def a_(self) -> np.ndarray:
        """Visible bias a, (D,)."""
        return self._require_fitted().a

    @property
    def abar_(self) -> np.ndarray:
        """Hidden bias abar, (L,)."""
        return self._require_fitted().abar

    @property
    def xbar_(self) -> np.ndarray:
        """Data mean, (D,): the centering offset and the start of fresh chains."""
        return self._require_fitted().xbar

    def _set_params(self, w: Any, a: Any, abar: Any, xbar: Any) -> None:
        if np.ndim(w) != 2 or np.shape(w)[1] != self.n_hidden:
            raise ValueError(f"w must have shape (D, {self.n_hidden}), got {np.shape(w)}")
        D, L = np.shape(w)
        w = as_real_array(w, "w", (D, L))
        a = as_real_array(a, "a", (D,))
        abar = as_real_array(abar, "abar", (L,))
        xbar = as_real_array(xbar, "xbar", (D,))
        if ((xbar < 0) | (xbar > 1)).any():
            raise ValueError("xbar is a data mean and must lie in [0, 1]")
        if self._engine is None or self._engine.n_visible != D:
            self._engine = _core.RBMEngine(int(D), int(L), self.hidden)
            self._rng = None
        self._engine.set_params(w, a, abar, xbar)
        self._sampler = None

    @classmethod
    def from_params(cls, w: Any, a: Any, abar: Any, xbar: Any | None = None, **settings: Any) -> "RBM":
        """An RBM built from given parameters, ready to sample and score.

        Parameters
        ----------
        w, a, abar : array_like
            Shapes (D, L), (D,), (L,).
        xbar : array_like, optional
            Data mean (D,), where fresh chains start; defaults to 0.5 everywhere.
        **settings
            Any constructor setting (``hidden``, ...).
        """
        w_arr = np.asarray(w)
        if w_arr.ndim != 2:
            raise ValueError(f"w must be two-dimensional (D, L), got shape {w_arr.shape}")
        settings.setdefault("n_hidden", int(w_arr.shape[1]))
        m = cls(**settings)
        m._validate_settings()
        m._set_params(w_arr, a, abar, np.full(w_arr.shape[0], 0.5) if xbar is None else xbar)
        return m

    def _initial_params(self, X: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        w, a, xbar = initial_weights(X, self.n_hidden, self.hidden, rng)
        # One-hot: equal mixture weights, lw(alpha) = 0 for every alpha.
        abar = -_softplus(w).sum(axis=0) if self.hidden == "onehot" else np.zeros(int(self.n_hidden))
        return dict(w=w, a=a, abar=abar, xbar=xbar)

    # ------------------------------------------------------------------ training
    def fit(self, X: Any, y: Any = None, *, callback: Callable[["RBM", int], None] | None = None) -> "RBM":
        """Train on binary data for ``n_epochs`` passes.

        Parameters
        ----------
        X : array_like, (N, D)
            Rows of 0/1 values.
        y : ignored
        callback : callable, optional
            Called as ``callback(rbm, epoch)`` after every epoch.

        Returns
        -------
        self
        """
        self._validate_settings()
        X = as_binary_matrix(X)
        seeds = np.random.SeedSequence(self.random_state).spawn(3)
        self._engine = None
        self._set_params(**self._initial_params(X, np.random.default_rng(seeds[0])))
        self._start_training(X, np.random.default_rng(seeds[1]), engine_seed(seeds[2]))
        self.history_ = {"epoch": [], "loglik": [], "seconds": []}
        self.epochs_done_ = 0
        return self._train_epochs(X, int(self.n_epochs), callback)

    def partial_fit(self, X: Any, y: Any = None, *, n_epochs: int = 1) -> "RBM":
        """Continue training for ``n_epochs`` passes (initializing first if needed).

        The optimizer state and the persistent chains carry over from the previous call.
        """
        if not isinstance(n_epochs, (int, np.integer)) or n_epochs < 1:
            raise ValueError(f"n_epochs must be a positive integer, got {n_epochs!r}")
        X = as_binary_matrix(X, n_features=self.n_visible_ if self._engine is not None else None)
        self._validate_settings()
        if self._engine is None or self._rng is None:
            seeds = np.random.SeedSequence(self.random_state).spawn(3)
            if self._engine is None:
                self._set_params(**self._initial_params(X, np.random.default_rng(seeds[0])))
            self._start_training(X, np.random.default_rng(seeds[1]), engine_seed(seeds[2]))
            self.history_ = {k: list(self.history_.get(k, [])) for k in ("epoch", "loglik", "seconds")}
        else:
            self._require_fitted().set_data(X)
        return self._train_epochs(X, int(n_epochs), None)

    def _start_training(self, X: np.ndarray, rng: np.random.Generator, chain_seed: int) -> None:
        engine = self._require_fitted()
        engine.set_data(X)
        engine.set_optimizer(self.optimizer, float(self.learning_rate), float(self.beta1), float(self.beta2),
                             float(self.rho), float(self.eps))
        engine.reset_optimizer()
        if self.gradient_ == "pcd":  # chains start at random data points
            init = rng.choice(X.shape[0], size=int(self.n_chains), replace=X.shape[0] < self.n_chains)
            engine.reset_chains(int(self.n_chains), chain_seed, X[init])
        self._rng = rng

    def _train_epochs(self, X: np.ndarray, n_epochs: int, callback: Callable[["RBM", int], None] | None) -> "RBM":
        engine = self._require_fitted()
        assert self._rng is not None
        N = X.shape[0]
        bs = min(int(self.batch_size), N)
        n_steps = math.ceil(N / bs)
        sizes = np.full(n_steps, bs, dtype=np.int64)
        sizes[-1] = N - bs * (n_steps - 1)
        progress = tqdm(total=n_epochs, desc="training", disable=not self.verbose)
        t0 = time.perf_counter()
        try:
            for _ in range(n_epochs):
                e = self.epochs_done_
                rows = self._rng.permutation(N).astype(np.int64)
                ll = engine.train_steps(rows, sizes, self.gradient_, int(self.pcd_steps), bool(self.centered),
                                        _CENTER_RATE)
                if not np.isfinite(engine.w).all() or not np.isfinite(engine.abar).all():
                    raise FloatingPointError(f"training diverged at epoch {e} (non-finite parameters); "
                                             "try a smaller learning_rate")
                self.epochs_done_ += 1
                mean_ll = float(np.average(ll, weights=sizes))
                self.history_.setdefault("epoch", []).append(e)
                self.history_.setdefault("loglik", []).append(mean_ll)
                self.history_.setdefault("seconds", []).append(time.perf_counter() - t0)
                self._sampler = None
                if callback is not None:
                    callback(self, e)
                progress.set_postfix_str(f"LL {mean_ll:.2f}", refresh=False)
                progress.update(1)
        finally:
            progress.close()
        return self

    # ------------------------------------------------------------------ likelihood
    def _require_enumerable(self) -> None:
        if self.n_states > _SCORE_MAX_STATES:
            raise ValueError(f"the exact ln Z enumerates the hidden layer: at most {_SCORE_MAX_STATES} states, "
                             f"this RBM has {self.n_states}")

    def log_partition(self) -> float:
        """ln Z = logsumexp_h [abar.h + sum_i softplus(a_i + (w h)_i)], by enumerating h."""
        engine = self._require_fitted()
        self._require_enumerable()
        return float(engine.log_partition())

    def score_samples(self, X: Any) -> np.ndarray:
        """Exact ln p(x) of every row: a.x + logsumexp_h [abar.h + x.w h] - ln Z (nats)."""
        engine = self._require_fitted()
        self._require_enumerable()
        X = as_binary_matrix(X, n_features=self.n_visible_)
        return np.asarray(engine.log_likelihood(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean exact log-likelihood per data point (nats)."""
        return float(self.score_samples(X).mean())

    def gradient_of(self, X: Any) -> dict[str, np.ndarray]:
        """Exact gradient of the mean ln p over the rows of X: ``w`` (D, L), ``a`` (D,), ``abar`` (L,).

        Data term E_{h|x}[x h^T, x, h] minus the model term sum_h p(h) [sigmoid(w h + a) h^T,
        sigmoid(w h + a), h], the same C++ code as training.
        """
        engine = self._require_fitted()
        self._require_enumerable()
        X = as_binary_matrix(X, n_features=self.n_visible_)
        g = engine.exact_gradient(X)
        return {k: np.asarray(g[k]) for k in ("w", "a", "abar")}

    # ------------------------------------------------------------------ sampling
    def _gibbs(self) -> Any:
        """The engine's chain with tied weights and no centering: this RBM's Gibbs sampler."""

        if self._sampler is None:
            self._sampler = Machine.from_params(self.w_, self.a_, None, self.abar_, self.xbar_,
                                                hidden=self.hidden, centered=False, tied=True,
                                                random_state=self.random_state)
        return self._sampler

    def hidden_trajectory(
        self, T: int, *, seed: int | None = None, n_chains: int = 1, burn_in: int = 1000, codes: bool = False
    ) -> np.ndarray:
        """Hidden states h(0..T-1) of the Gibbs chain x -> h -> x -> ..., fresh chains from the data mean.

        Same conventions as :meth:`nemm.Machine.hidden_trajectory`: one-hot int64 (T,);
        binary uint8 (T, L) bits, or int codes sum_b h_b 2**b with ``codes=True``; a leading
        chain axis when ``n_chains > 1``. ``seed`` defaults to ``random_state``.
        """
        return self._gibbs().hidden_trajectory(T, seed=seed, n_chains=n_chains, burn_in=burn_in, codes=codes)

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
        """Visible samples of the Gibbs chain, as :meth:`nemm.Machine.sample`.

        Returns
        -------
        X : ndarray of uint8, (n_samples, D)
        Z : ndarray, the hidden state that generated each sample, only with ``return_hidden``
        """
        return self._gibbs().sample(n_samples, burn_in=burn_in, thin=thin, n_chains=n_chains, seed=seed,
                                    return_hidden=return_hidden)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (npz with JSON metadata, no pickle), atomically; read back by ``nemm.load``.

        Arrays ``w``, ``a``, ``abar``, ``xbar``, ``history/<key>`` and ``metadata``: a JSON string
        with ``format`` ("nemm-rbm"), ``format_version``, the nemm version and the settings.
        """
        engine = self._require_fitted()
        meta = model_file.metadata(FORMAT_NAME, FORMAT_VERSION, self.get_params(), self.epochs_done_, self.history_)
        arrays = {"w": engine.w, "a": engine.a, "abar": engine.abar, "xbar": engine.xbar,
                  "metadata": np.array(json.dumps(meta))}
        arrays.update(model_file.history_arrays(self.history_, keep_integers=False))
        return model_file.write(path, arrays)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in ("n_hidden", "hidden", "optimizer", "gradient",
                                                               "centered", "random_state"))
        return f"RBM({shown})"


def rbm_from_npz(npz: Any, meta: dict[str, Any], path: Path | str) -> RBM:
    """Rebuild an :class:`RBM` from an opened npz whose metadata says ``format: "nemm-rbm"``."""
    model_file.check_version(meta, path, (FORMAT_VERSION,), "RBM")
    model_file.require_arrays(npz, ("w", "a", "abar", "xbar"), path)
    settings = model_file.read_settings(meta, RBM._SETTINGS, path)
    m = RBM.from_params(npz["w"], npz["a"], npz["abar"], npz["xbar"], **settings)
    m.history_, m.epochs_done_ = model_file.read_history(npz, meta)
    return m


register_format(FORMAT_NAME, rbm_from_npz)
