"""The nonequilibrium Markov machine estimator.

State lives in two places only: the C++ engine (parameters, persistent chains,
optimizer) and this object's settings and history. Everything else is a small
pure function.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from nemm import _core, model_file
from nemm._checks import (
    INT32_MAX,
    as_binary_matrix,
    as_int,
    as_onehot_states,
    as_real_array,
    as_seed,
    check_memory,
)
from nemm._estimator import Estimator, locked
from nemm._logdomain import sigmoid
from nemm._seeds import engine_seed
from nemm._states import MAX_CODE_BITS, codes_to_states, state_labels, words_to_bits
from nemm.em_start import em_initial_params
from nemm.markov import occupancy_from_trajectory
from nemm.model_file import CHAIN_ARRAYS, load, register_format
from nemm.recipes import EM_START_ITERATIONS, EM_START_RUNS, RECIPE_SETTINGS, em_start_applies, resolve_recipe
from nemm.training import (
    _WHY_INT32,
    _BatchStream,
    _data_checksum,
    _training_memory,
    approx_gradient,
    batch_size_schedule,
    initial_weights,
    validate_settings,
)

# The model file (``load``, ``register_format``) lives in nemm.model_file, shared with the RBM;
# the names stay importable from here. ``save`` and the reader are nemm._estimator's.
__all__ = [
    "Machine",
    "load",
    "approx_gradient",
    "register_format",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ENUMERATION_LIMIT",
]

FORMAT_NAME = "nemm-machine"
FORMAT_VERSION = 2
# Version 1 held the parameters only; version 2 adds the training state (``train/*``) for an
# exact resume. Both are read.
READABLE_VERSIONS = (1, 2)
#: The training-state arrays of a version-2 machine file: the chains with their random streams
#: (``model_file.CHAIN_ARRAYS``), the RMSprop accumulators and the minibatch permutation.
OPTIMIZER_ARRAYS = ("vw", "va", "vwbar", "vabar")
TRAIN_ARRAYS = CHAIN_ARRAYS + OPTIMIZER_ARRAYS + ("perm",)

#: Most hidden states whose exact ln p ``score_samples`` computes (binary: L <= 16). The C++
#: likelihood enumerates all 2^L binary states once there are many of them (kEnumerateMaxL).
ENUMERATION_LIMIT = 2**16
#: Binary layers wider than MAX_CODE_BITS: score_samples weighs at most this many chain steps
#: (almost every step visits a new state, and each costs a pass over the rows).
WIDE_SCORE_STEPS = 4096

# Settings that shape the engine: changing one after fit makes the parameters meaningless.
_STRUCTURE = ("n_hidden", "hidden", "normalization", "centered", "tied")


class Machine(Estimator):
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
        Share one weight matrix, ``wbar = w.T``: a machine that samples like an
        RBM's Gibbs chain but is trained by eqs. 16-17, a studied variant. The
        equilibrium baseline is :class:`nemm.RBM`, trained by its own rule.
    recipe : {"auto", "paper"}
        Chooses the training settings left at None (:mod:`nemm.recipes`): ``"paper"`` is the
        paper's protocol (RMSprop 0.1, 120 epochs of 30 steps, minibatches 16 -> 160, T = 48, one
        chain, the sampled gradient); ``"auto"`` reaches the EM ceiling of the one-hot family at
        scale (the Rao-Blackwellized gradient, minibatches of min(N, 500), RMSprop 0.03, about
        7200 steps counted in passes over the data). Explicit keywords always win.
    gradient : {"auto", "sampled", "rao_blackwell"}
        The gradient estimator: eqs. 16a-16d with 17 on the sampled hidden states, or (one-hot
        only) its Rao-Blackwellization that weights every state by Abar(z | x') of each recorded
        x'; ``"auto"``: the recipe's.
    learning_rate, rho, eps : float
        RMSprop ascent: ``v = rho v + (1 - rho) g**2``, ``p += lr g / (sqrt(v) + eps)``.
    n_epochs, steps_per_epoch : int or None
        Epochs of ``steps_per_epoch`` gradient steps (None: the recipe's).
    batch_size : (int, int) or None
        Minibatch size, growing linearly from the first to the second value over the epochs.
    chain_steps : int or None
        T, double steps x' -> z -> x' of every persistent chain per gradient step.
    n_chains : int or None
        Persistent chains, advanced in parallel; their recorded pairs are pooled.
    freeze_visible_bias : bool or None
        Keep ``a`` fixed; ``None`` means frozen (at 0) for one-hot, trained for binary.
    random_state : int or None
        Seed. The same seed gives the same numbers whatever the number of threads.
    verbose : bool
        Show a progress bar during ``fit``.

    Notes
    -----
    Settings are stored as given (scikit-learn convention) and checked at the start of
    ``fit``, ``partial_fit`` and ``from_params``, before any memory is allocated: a wrong type
    or value raises ``TypeError``/``ValueError`` naming the setting, and a setting that needs
    more memory than the machine has raises ``MemoryError`` saying how much. Model files and
    metadata hold the checked, plain Python values.

    Thread safety: every method takes a per-machine lock, so calls on one Machine from several
    threads run one after the other (two ``partial_fit(n_epochs=2)`` calls train 4 epochs).
    Different Machines run in parallel.

    With scikit-learn installed, a Machine is a density estimator (``Pipeline``,
    ``GridSearchCV``, ``cross_val_score``, ``check_is_fitted``): ``score`` is the mean ln p(x),
    fitted attributes end in ``_`` and exist only after ``fit``, and ``n_features_in_`` is D.
    scikit-learn stays optional: it is imported only when it asks for the tags.

    Pickling (and ``copy.deepcopy``) goes through the bytes of the model file that ``save``
    writes, never through engine memory. Like ``load``, it keeps the whole training state: an
    unpickled machine continues training bit for bit (see ``save``).

    Ctrl-C and divergence: training checks for signals between gradient steps, and sampling,
    ``hidden_trajectory`` and the likelihood every few milliseconds; Ctrl-C raises
    ``KeyboardInterrupt``. A gradient or parameter that turns non-finite raises
    ``FloatingPointError`` naming the epoch and step. In both cases an interrupted ``fit`` or
    ``partial_fit`` leaves the machine at the end of its last complete epoch (parameters,
    chains, optimizer and minibatch stream together), so it can be saved and resumed exactly.
    An interrupted ``hidden_trajectory`` or ``sample`` returns nothing and changes nothing.

    ``partial_fit`` continues the linear minibatch-size schedule of ``fit``. Given the same data
    as before (recognized by its checksum) it continues exactly as one uninterrupted run; given
    other data, the chains and optimizer carry over and a new minibatch permutation of the new
    rows starts.
    """

    def __init__(
        self,
        n_hidden: int = 6,
        *,
        hidden: str = "onehot",
        normalization: str = "softmax",
        centered: bool = True,
        tied: bool = False,
        recipe: str = "auto",
        gradient: str = "auto",
        learning_rate: float | None = None,
        rho: float = 0.9,
        eps: float = 1e-8,
        n_epochs: int | None = None,
        steps_per_epoch: int | None = None,
        batch_size: int | tuple[int, int] | None = None,
        chain_steps: int | None = None,
        n_chains: int | None = None,
        freeze_visible_bias: bool | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_hidden = n_hidden
        self.hidden = hidden
        self.normalization = normalization
        self.centered = centered
        self.tied = tied
        self.recipe = recipe
        self.gradient = gradient
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
        self._lock = threading.RLock()
        self._engine: _core.Engine | None = None
        self._occupancy: tuple[np.ndarray, np.ndarray, int] | None = None
        # Checked settings of the current training run and those the engine was built with.
        self._cfg: dict[str, Any] = {}
        self._structure: dict[str, Any] = {}
        # The training data's checksum, whether the engine holds that data (not after load), and
        # where the data came from (set by ``nemm train`` for ``--resume``; saved as metadata).
        self._train_data_sha: str | None = None
        self._engine_has_data = False
        self._data_source: dict[str, Any] | None = None

    # ------------------------------------------------------------------ settings
    _SETTINGS = (
        "n_hidden",
        "hidden",
        "normalization",
        "centered",
        "tied",
        "recipe",
        "gradient",
        "learning_rate",
        "rho",
        "eps",
        "n_epochs",
        "steps_per_epoch",
        "batch_size",
        "chain_steps",
        "n_chains",
        "freeze_visible_bias",
        "random_state",
        "verbose",
    )

    def _validate_settings(self) -> dict[str, Any]:
        """Every setting checked and converted to a plain Python value: the one place that does it.

        The stored settings stay as the user gave them; callers use the returned dict (``batch_size``
        always as a pair).
        """
        return validate_settings(self.get_params())

    def _resolve_settings(self, cfg: dict[str, Any], X: np.ndarray) -> dict[str, Any]:
        """The recipe's choices for the settings left at None, for training on ``X``."""
        return resolve_recipe(cfg, X.shape[0])

    @locked
    def training_settings(self, n_samples: int) -> dict[str, Any]:
        """The settings a fit on ``n_samples`` rows trains with: the recipe's choices filled in.

        Returns the checked settings (plain Python values, ``batch_size`` as a pair) with every
        setting left at None and ``gradient="auto"`` replaced by what ``recipe`` chooses.
        """
        return resolve_recipe(self._validate_settings(), as_int(n_samples, "n_samples", minimum=1))

    @property
    @locked
    def training_settings_(self) -> dict[str, Any]:
        """The settings of the last training run, with the recipe's choices (after ``fit``)."""
        self._require_fitted()
        if any(self._cfg.get(k) is None for k in RECIPE_SETTINGS):
            raise AttributeError(
                "this machine has not been trained yet (from_params or a loaded file): "
                "training_settings(n_samples) gives what a fit would use"
            )
        return dict(self._cfg)

    def _check_training_memory(self, shape: tuple[int, int], cfg: dict[str, Any]) -> None:
        parts = _training_memory(shape[0], shape[1], cfg)
        largest = max(parts, key=parts.__getitem__)  # the setting to change
        check_memory(
            sum(parts.values()),
            f"training Machine(n_hidden={cfg['n_hidden']}, n_chains={cfg['n_chains']}, "
            f"chain_steps={cfg['chain_steps']}, batch_size={cfg['batch_size']}, "
            f"steps_per_epoch={cfg['steps_per_epoch']}) on {shape[0]} x {shape[1]} data",
            f"most of it is for its {largest}: use a smaller {largest}"
            if largest != "the number of data points"
            else "most of it is for the data: train on fewer data points",
        )

    @property
    def _freeze_a(self) -> bool:
        f = self._cfg["freeze_visible_bias"]
        return self._cfg["hidden"] == "onehot" if f is None else bool(f)

    # ------------------------------------------------------------------ parameters
    # The estimator base's declarations (nemm._estimator): parameters, history, file, repr.
    _PARAMS = ("w", "a", "wbar", "abar")
    _HISTORY_KEYS = ("epoch", "loglik", "batch_size", "seconds")
    _FORMAT_NAME = FORMAT_NAME
    _FORMAT_VERSION = FORMAT_VERSION
    _READABLE_VERSIONS = READABLE_VERSIONS
    _HISTORY_INTEGERS = True
    _REPR = ("n_hidden", "hidden", "normalization", "centered", "tied", "random_state")

    @property
    @locked
    def wbar_(self) -> np.ndarray:
        """Backward weights wbar, (L, D) (eq. 11); ``w_.T`` when tied."""
        return self._require_fitted().wbar

    @property
    def n_states(self) -> int:
        """Number of hidden states: L (one-hot) or 2**L (binary)."""
        return self.n_hidden if self.hidden == "onehot" else 2**self.n_hidden

    def _make_engine(self, D: int) -> _core.Engine:
        c = self._cfg
        if D > INT32_MAX:
            raise ValueError(f"{D} features are more than the C++ core supports ({INT32_MAX})")
        engine = _core.Engine(D, c["n_hidden"], c["hidden"], c["normalization"], c["centered"], c["tied"])
        self._structure = {k: c[k] for k in _STRUCTURE}
        self.n_features_in_ = D
        return engine

    def _set_params(self, w: Any, a: Any, wbar: Any, abar: Any, xbar: Any) -> None:
        """Load parameters into the engine (made anew if D changed); needs the checked ``self._cfg``."""
        n_hidden = self._cfg["n_hidden"]
        D, L = np.shape(w) if np.ndim(w) == 2 else (None, None)
        if D is None or L != n_hidden:
            raise ValueError(f"w must have shape (D, {n_hidden}), got {np.shape(w)}")
        w = as_real_array(w, "w", (D, L))
        a = as_real_array(a, "a", (D,))
        if self._cfg["tied"]:
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
        self._forget_derived()

    def _forget_derived(self) -> None:
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
    ) -> Machine:
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
        return cls._build({"w": w, "a": a, "wbar": wbar, "abar": abar}, xbar, settings)

    def _initial_params(self, X: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Appendix A1: w and a from ``initial_weights``; wbar = 0 (w^T when tied), abar = 0. Under the
        auto recipe a one-hot machine starts from the EM mixture instead (``em_start_applies``)."""
        L = self._cfg["n_hidden"]
        if em_start_applies(self._cfg, X.shape[0]):  # the auto recipe's start (nemm.recipes)
            p = em_initial_params(
                X, L, int(rng.integers(2**63)), n_iter=EM_START_ITERATIONS, n_init=EM_START_RUNS
            )
            return {k: p[k] for k in ("w", "a", "wbar", "abar", "xbar")}
        w, a, xbar = initial_weights(X, L, self._cfg["hidden"], rng)
        wbar = w.T.copy() if self._cfg["tied"] else np.zeros((L, X.shape[1]))
        return dict(w=w, a=a, wbar=wbar, abar=np.zeros(L), xbar=xbar)

    # ------------------------------------------------------------------ training
    def _training_started(self) -> bool:
        return hasattr(self, "_batches")

    def _start_training(self, X: np.ndarray, batch_rng: np.random.Generator, chain_seed: int) -> None:
        engine = self._require_fitted()
        engine.set_data(X)
        C = self._cfg["n_chains"]
        init_rows = batch_rng.choice(X.shape[0], size=C, replace=X.shape[0] < C)
        engine.reset_chains(C, chain_seed, X[init_rows])
        engine.reset_optimizer()
        self._batches = _BatchStream(X.shape[0], batch_rng)
        self._train_data_sha = _data_checksum(X)
        self._engine_has_data = True

    def _continue_training(self, X: np.ndarray) -> None:
        """The same data (by its checksum) continues the minibatch stream; other data starts a new one."""
        engine = self._require_fitted()
        sha = _data_checksum(X)
        if sha != self._train_data_sha:  # other data: a new permutation of its rows
            engine.set_data(X)
            self._batches = _BatchStream(X.shape[0], self._batches.rng)
            self._train_data_sha = sha
            self._engine_has_data = True
        elif not self._engine_has_data:  # the same data after load/unpickle: the stream goes on
            engine.set_data(X)
            self._engine_has_data = True

    def _epoch_batches(self, X: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``steps_per_epoch`` minibatches of the scheduled size (linear from the first to the second)."""
        c = self._cfg
        bs = batch_size_schedule(epoch, c["n_epochs"], c["batch_size"])
        rows = self._batches.take(bs * c["steps_per_epoch"])
        return rows, np.full(c["steps_per_epoch"], bs, dtype=np.int64)

    def _step_settings(self) -> tuple[Any, ...]:
        c = self._cfg
        self._require_fitted().gradient = c["gradient"]
        return (
            int(c["chain_steps"]),
            float(c["learning_rate"]),
            float(c["rho"]),
            float(c["eps"]),
            self._freeze_a,
        )

    def _batch_state(self) -> Any:
        return self._batches.state()

    def _restore_batches(self, state: Any) -> None:
        self._batches.restore(state)

    def _epoch_record(self, epoch: int, ll: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
        return {"epoch": epoch, "loglik": float(ll.mean()), "batch_size": int(sizes[0])}

    # ------------------------------------------------------------------ sampling
    def _codes_to_states(self, codes: np.ndarray) -> np.ndarray:
        """One-hot: int states; binary: bits along a new last axis."""
        return codes_to_states(codes, self.hidden, self.n_hidden)

    def _seed(self, seed: int | None) -> int:
        if seed is None:
            return engine_seed(np.random.SeedSequence(as_seed(self.random_state, "random_state")))
        return engine_seed(np.random.SeedSequence(as_seed(seed, "seed")))

    @locked
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
            Return integer state codes (binary: sum_b z_b 2**b) instead of bits; binary layers of
            at most 63 units (:data:`nemm._states.MAX_CODE_BITS`), wider ones have bits only.

        Returns
        -------
        ndarray
            One-hot: int64 (T,); binary: uint8 (T, L) bits, or int codes with ``codes=True``.
        """
        engine = self._require_fitted()
        T = as_int(T, "T", minimum=1)
        n_chains = as_int(n_chains, "n_chains", minimum=1, maximum=INT32_MAX, why_max=_WHY_INT32)
        burn_in = as_int(burn_in, "burn_in", minimum=0)
        wide = self.hidden == "binary" and self.n_hidden > MAX_CODE_BITS
        if codes and wide:
            raise ValueError(
                f"codes=True needs n_hidden <= {MAX_CODE_BITS} (int64 codes); this binary layer has "
                f"{self.n_hidden} units: ask for its bits (codes=False)"
            )
        bits = 0 if (codes or self.hidden == "onehot") else self.n_hidden
        words = -(-self.n_hidden // 64) if self.hidden == "binary" else 1
        check_memory(
            T * n_chains * (8 * words + 8 + bits),
            f"a hidden trajectory of {n_chains} x {T} steps",
            "ask for fewer steps or chains",
        )
        traj = engine.hidden_trajectory(T, n_chains, self._seed(seed), burn_in)
        if codes or self.hidden == "onehot":
            out = traj.astype(np.int64)
        else:  # (n_chains, T) codes, or (n_chains, T, W) words past 64 units
            out = words_to_bits(traj if traj.ndim == 3 else traj[..., None], self.n_hidden)
        return out[0] if n_chains == 1 else out

    @locked
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
        n_samples = as_int(n_samples, "n_samples", minimum=1)
        C = (
            min(n_samples, 64)
            if n_chains is None
            else as_int(n_chains, "n_chains", minimum=1, maximum=INT32_MAX, why_max=_WHY_INT32)
        )
        burn_in = as_int(burn_in, "burn_in", minimum=0)
        thin = as_int(thin, "thin", minimum=1)
        per_chain = math.ceil(n_samples / C)
        row_bytes = int(engine.n_visible) + 8 + (self.n_hidden if self.hidden == "binary" else 0)
        check_memory(C * per_chain * row_bytes, f"{n_samples} samples", "ask for fewer samples at a time")
        X, Z = engine.sample(C, per_chain, burn_in, thin, self._seed(seed))
        X, Z = X[:n_samples], Z[:n_samples]
        return (X, Z) if return_hidden else X

    @locked
    def mean_images(self, states: Any = None) -> np.ndarray:
        """mu_{x|z} = sigmoid(w z + a) (eq. 14) for hidden states (default: every one-hot state)."""
        Z = self._state_matrix(states)
        h = Z @ self.w_.T + self.a_
        return sigmoid(h)

    def _state_matrix(self, states: Any) -> np.ndarray:
        L = self.n_hidden
        if states is None:
            if self.hidden != "onehot":
                raise ValueError("give the binary hidden states explicitly")
            return np.eye(L)
        if self.hidden == "onehot":
            return np.eye(L)[as_onehot_states(states, "states", L)]
        return self._binary_states(states).astype(float)

    def _binary_states(self, states: Any) -> np.ndarray:
        """Binary hidden states as an (S, L) 0/1 matrix; one state may be given as a vector."""
        s = np.asarray(states)
        return as_binary_matrix(
            s[None, :] if s.ndim == 1 else s, "binary hidden states", n_features=self.n_hidden
        )

    # ------------------------------------------------------------------ likelihood
    @locked
    def log_A(self, X: Any, states: Any = None) -> np.ndarray:
        """log A(z, x) for every row x of X and every hidden state z, (N, S), in the log domain.

        ``states`` defaults to all one-hot states; binary states are (S, L) bits.
        """
        engine = self._require_fitted()
        X = as_binary_matrix(X, n_features=self.n_visible_, owner=type(self).__name__)
        if states is None:
            if self.hidden != "onehot":
                raise ValueError("give the binary hidden states explicitly")
            states = np.arange(self.n_hidden)
        elif self.hidden == "onehot":
            states = as_onehot_states(states, "states", self.n_hidden)
        else:
            states = self._binary_states(states)
        return engine.log_A(X, states)

    @locked
    def occupancy(
        self, n_steps: int = 100_000, *, seed: int | None = None, n_chains: int = 1, burn_in: int = 1000
    ) -> tuple[np.ndarray, np.ndarray]:
        """Empirical stationary occupancy pbar_e(z) of the hidden chain.

        Returns
        -------
        states : ndarray
            Visited states (one-hot: all L states; binary: visited codes, as (S, L) bits).
        pbar : ndarray of float, (S,)
        """
        if self.hidden == "binary" and self.n_hidden > MAX_CODE_BITS:  # no codes: the bit rows themselves
            bits = self.hidden_trajectory(n_steps, seed=seed, n_chains=n_chains, burn_in=burn_in)
            states, labels = state_labels(bits)
            return states, np.bincount(labels.ravel(), minlength=len(states)) / labels.size
        traj = self.hidden_trajectory(n_steps, seed=seed, n_chains=n_chains, burn_in=burn_in, codes=True)
        if self.hidden == "onehot":
            return np.arange(self.n_hidden), occupancy_from_trajectory(traj, self.n_hidden)
        codes, counts = np.unique(traj.ravel(), return_counts=True)
        return self._codes_to_states(codes.astype(np.uint64)), counts / traj.size

    @locked
    def score_samples(self, X: Any, *, pbar: Any = None, n_steps: int = 100_000) -> np.ndarray:
        """Log-likelihood ln p(x) of every row (appendix A3).

        ``ln p(x) = logsumexp_z [ln pbar(z) + log A(z, x)]``, exact given ``pbar``. By default
        ``pbar`` is the occupancy of a chain of ``n_steps`` steps (computed once and cached).
        Binary machines with many weighted states (up to :data:`ENUMERATION_LIMIT` = 2**16,
        L <= 16) sum over all 2^L states at once in the core (under a second for L = 16 and
        2980 digits). Above L = 16 the sum runs over the visited states only, a rough estimate;
        above 63 units (no codes) over at most :data:`WIDE_SCORE_STEPS` chain steps, with a
        warning (each step is then a new state, weighted 1 / steps).

        Parameters
        ----------
        X : array_like, (N, D)
        pbar : array_like, optional
            Stationary hidden distribution over all states (L, or 2**L for binary).
        n_steps : int
            Length of the chain that estimates ``pbar`` when it is not given.

        Raises
        ------
        FloatingPointError
            If the parameters are beyond what the log-sum-exp can resolve (training stops
            before that; ``from_params`` can give such parameters).
        """
        engine = self._require_resolvable()
        X = as_binary_matrix(X, n_features=self.n_visible_, owner=type(self).__name__)
        wide = self.hidden == "binary" and self.n_hidden > MAX_CODE_BITS
        if pbar is not None and wide:
            raise ValueError(
                f"pbar over all 2**{self.n_hidden} states cannot be given; leave pbar=None for the "
                "occupancy of a chain"
            )
        if pbar is None:
            if wide:
                n_steps = min(int(n_steps), WIDE_SCORE_STEPS)
                warnings.warn(
                    f"ln p of a binary layer of {self.n_hidden} units averages A(z, x) over the "
                    f"{n_steps} states of one chain: a rough estimate, not the likelihood",
                    UserWarning,
                    stacklevel=3,
                )
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

    # ------------------------------------------------------------------ persistence
    def _file_settings(self) -> dict[str, Any]:
        # As given (None: the recipe's choice, which depends only on the recipe and the data size,
        # so a resumed run makes the same choices); the recipe's name is among them.
        settings = self._validate_settings()
        if settings["batch_size"] is not None:
            settings["batch_size"] = list(settings["batch_size"])
        return settings

    @classmethod
    def _settings_from_file(cls, settings: dict[str, Any]) -> dict[str, Any]:
        if settings.get("batch_size") is not None:
            settings["batch_size"] = tuple(settings["batch_size"])
        # Files written before the recipes hold every training setting and were trained by the
        # paper's sampled gradient: they continue so.
        settings.setdefault("recipe", "paper")
        settings.setdefault("gradient", "auto")
        return settings

    def _training_arrays(self, engine: _core.Engine) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The training state of a version-2 file, once training has started.

        Arrays (``train/<name>``): the persistent chains with their random streams (``visible``,
        ``z``, ``rng``, ``lanes``), the RMSprop accumulators (``vw``, ``va``, ``vwbar``, ``vabar``) and
        the minibatch permutation (``perm``). Metadata ``train``: the position in it, the PCG64 state
        that draws the next permutations, and the sha256 and size of the training data (the data
        itself is not stored) and where it came from.
        """
        if not self._training_started():
            return None
        perm, pos, rng_state = self._batches.state()
        arrays = {k: np.asarray(v) for k, v in engine.chain_state().items()}
        arrays.update({k: np.asarray(v) for k, v in engine.optimizer_state().items()})
        arrays["perm"] = np.asarray(perm, dtype=np.int64)
        train = {
            "batch_pos": int(pos),
            "batch_rng": rng_state,
            "n_samples": int(self._batches.n),
            "data_sha256": self._train_data_sha,
            "data_source": self._data_source,
        }
        return arrays, train

    def _restore_training_state(self, npz: Any, train: Any, path: Path | str) -> None:
        """Chains, optimizer and minibatch stream of a version-2 file, back into the engine."""
        n_chains = self._cfg["n_chains"]
        n = train.get("n_samples") if isinstance(train, dict) else None
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            if n_chains is None:
                n_chains = resolve_recipe(self._cfg, n)["n_chains"]  # what the run had chosen
            perm = model_file.declared_shape(npz, "train/perm")[0] if "train/perm" in npz.files else (n,)
            if perm != (n,):  # checked before it is read: one entry per row of the training data
                raise ValueError(f"{path}: train/perm has shape {perm}, but the training data had {n} rows")
        a = model_file.read_training_arrays(npz, train, TRAIN_ARRAYS, path, n_chains=n_chains)
        engine = self._require_fitted()
        try:
            engine.set_chain_state(a["visible"], a["z"], a["rng"], a["lanes"])
            engine.set_optimizer_state(a["vw"], a["va"], a["vwbar"], a["vabar"])
            self._batches = _BatchStream.from_state(a["perm"], train.get("batch_pos"), train.get("batch_rng"))
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: invalid training state: {exc}") from exc
        sha = train.get("data_sha256")
        if not isinstance(sha, str):
            raise ValueError(f"{path}: the training state lacks the data checksum")
        self._train_data_sha = sha
        self._engine_has_data = False  # the data is not in the file: partial_fit(X) brings it back
        source = train.get("data_source")
        self._data_source = source if isinstance(source, dict) else None


register_format(FORMAT_NAME, Machine._from_file)
