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

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nemm import _core, model_file
from nemm._checks import as_binary_matrix, as_int, as_real_array, as_seed
from nemm._estimator import Estimator, locked
from nemm._settings import RBM_SETTINGS, check_settings, setting
from nemm.machine import Machine
from nemm.model_file import CHAIN_ARRAYS, register_format
from nemm.training import initial_weights

__all__ = ["RBM", "FORMAT_NAME", "FORMAT_VERSION", "EXACT_MAX_STATES"]

FORMAT_NAME = "nemm-rbm"
FORMAT_VERSION = 2
#: Versions ``nemm.load`` reads; version 1 files hold no training state.
READABLE_VERSIONS = (1, 2)
#: ``gradient="auto"`` uses the exact gradient up to this many hidden states, PCD-k beyond.
EXACT_MAX_STATES = 2**16
# The exact ln Z of score_samples enumerates at most this many hidden states.
_SCORE_MAX_STATES = 2**24
# Centering: the offset of h is a running mean of E[h | x] over the minibatches, at this rate.
_CENTER_RATE = 0.01


# Settings fixed by the engine's shape: changing them needs a new fit.
_STRUCTURE = ("n_hidden", "hidden")
# Training-state arrays of a version-2 file: optimizer (always) and persistent chains
# (``model_file.CHAIN_ARRAYS``, PCD only).
_OPTIMIZER_ARRAYS = ("mw", "vw", "ma", "va", "mh", "vh", "lambda")


def n_states_of(n_hidden: int, hidden: str) -> int:
    """Number of hidden states: L (one-hot) or 2**L (binary)."""
    return int(n_hidden) if hidden == "onehot" else 2 ** int(n_hidden)


def validate_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every RBM setting checked and converted to a plain Python value: the one place that does it.

    Each setting is checked against its entry of :data:`nemm._settings.RBM_SETTINGS`, then the
    combinations. numpy scalars are accepted (a ``GridSearchCV`` grid from ``np.arange`` gives
    them); a wrong type raises ``TypeError`` and a wrong value ``ValueError``, both naming the setting.
    """
    c = check_settings(RBM_SETTINGS, params)
    if c["hidden"] == "onehot":
        as_int(c["n_hidden"], "n_hidden", minimum=2)
    else:
        as_int(
            c["n_hidden"], "n_hidden", maximum=63, why_max=" for a binary hidden layer (2**n_hidden states)"
        )
    states = n_states_of(c["n_hidden"], c["hidden"])
    if c["gradient"] == "exact" and states > EXACT_MAX_STATES:
        raise ValueError(
            f"gradient='exact' enumerates the hidden layer: at most {EXACT_MAX_STATES} states, "
            f"this one has {states}; use gradient='pcd'"
        )
    if c["gradient"] == "auto":
        c["gradient_used"] = "exact" if states <= EXACT_MAX_STATES else "pcd"
    else:
        c["gradient_used"] = c["gradient"]
    return c


def _softplus(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0.0) + np.log1p(np.exp(-np.abs(h)))


class RBM(Estimator):
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

    Settings are stored as given (scikit-learn convention) and checked, as plain Python values,
    at the start of ``fit``, ``partial_fit`` and ``from_params`` (:func:`validate_settings`): a
    wrong type raises ``TypeError``, a wrong value ``ValueError``, naming the setting. numpy
    scalars are accepted. ``fit`` never rewrites a setting.

    With scikit-learn installed, an RBM is a density estimator (``Pipeline``, ``GridSearchCV``,
    ``cross_val_score``, ``check_is_fitted``): ``score`` is the mean exact ln p(x), fitted
    attributes end in ``_`` and exist only after ``fit``, ``n_features_in_`` is D.

    Thread safety: every method takes a per-RBM lock, so calls on one RBM from several threads
    run one after the other. Pickling (and ``copy.deepcopy``) goes through the bytes of the model
    file that ``save`` writes, with the whole training state: an unpickled RBM continues
    ``partial_fit`` bit for bit like the original.

    ``history_["loglik"]`` holds, per epoch, the mean over its minibatches of their exact
    mean ln p at the parameters before each step (NaN under PCD with more than 1024 hidden
    states, where ln Z is not computed during training).

    Ctrl-C and divergence, as for the machine: training checks for signals between gradient
    steps, and Ctrl-C raises ``KeyboardInterrupt``; a parameter that turns non-finite raises
    ``FloatingPointError`` naming the epoch and step. Either way an interrupted ``fit`` or
    ``partial_fit`` leaves the RBM at the end of its last complete epoch (parameters, optimizer,
    centering offset, chains and minibatch order together), so it can be saved and resumed
    exactly.
    """

    _SETTINGS = (
        "n_hidden",
        "hidden",
        "optimizer",
        "learning_rate",
        "n_epochs",
        "batch_size",
        "centered",
        "gradient",
        "pcd_steps",
        "n_chains",
        "beta1",
        "beta2",
        "rho",
        "eps",
        "random_state",
        "verbose",
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
        self._lock = threading.RLock()
        self._engine: _core.RBMEngine | None = None
        self._rng: np.random.Generator | None = None
        self._sampler: Any = None
        # Checked settings of the current run, and the structural ones the engine was built with.
        self._cfg: dict[str, Any] = {}
        self._structure: dict[str, Any] = {}

    # ------------------------------------------------------------------ settings
    def _validate_settings(self) -> dict[str, Any]:
        """The checked settings (:func:`validate_settings`), kept as ``self._cfg`` for this run."""
        self._cfg = validate_settings(self.get_params())
        return self._cfg

    @property
    def n_states(self) -> int:
        """Number of hidden states: L (one-hot) or 2**L (binary)."""
        return n_states_of(
            as_int(self.n_hidden, "n_hidden"), setting(RBM_SETTINGS, "hidden").check(self.hidden)
        )

    @property
    def gradient_(self) -> str:
        """The gradient actually used: ``"exact"`` or ``"pcd"`` (``"auto"`` resolved)."""
        return str(validate_settings(self.get_params())["gradient_used"])

    # ------------------------------------------------------------------ parameters
    # The estimator base's declarations (nemm._estimator): parameters, history, file, repr.
    _PARAMS = ("w", "a", "abar")
    _HISTORY_KEYS = ("epoch", "loglik", "seconds")
    _FORMAT_NAME = FORMAT_NAME
    _FORMAT_VERSION = FORMAT_VERSION
    _READABLE_VERSIONS = READABLE_VERSIONS
    _FILE_NOUN = "RBM"
    _REPR = ("n_hidden", "hidden", "optimizer", "gradient", "centered", "random_state")

    def _set_params(self, w: Any, a: Any, abar: Any, xbar: Any) -> None:
        """Load parameters into the engine (made anew if D changed); needs the checked ``self._cfg``."""
        n_hidden, hidden = self._cfg["n_hidden"], self._cfg["hidden"]
        if np.ndim(w) != 2 or np.shape(w)[1] != n_hidden:
            raise ValueError(f"w must have shape (D, {n_hidden}), got {np.shape(w)}")
        D, L = np.shape(w)
        w = as_real_array(w, "w", (D, L))
        a = as_real_array(a, "a", (D,))
        abar = as_real_array(abar, "abar", (L,))
        xbar = as_real_array(xbar, "xbar", (D,))
        if ((xbar < 0) | (xbar > 1)).any():
            raise ValueError("xbar is a data mean and must lie in [0, 1]")
        if self._engine is None or self._engine.n_visible != D:
            self._engine = _core.RBMEngine(int(D), int(L), hidden)
            self._structure = {k: self._cfg[k] for k in _STRUCTURE}
            self.n_features_in_ = int(D)
            self._rng = None
        self._engine.set_params(w, a, abar, xbar)
        self._forget_derived()

    def _forget_derived(self) -> None:
        self._sampler = None

    @classmethod
    def from_params(cls, w: Any, a: Any, abar: Any, xbar: Any | None = None, **settings: Any) -> RBM:
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
        return cls._build({"w": w, "a": a, "abar": abar}, xbar, settings)

    def _initial_params(self, X: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        c = self._cfg
        w, a, xbar = initial_weights(X, c["n_hidden"], c["hidden"], rng)
        # One-hot: equal mixture weights, lw(alpha) = 0 for every alpha.
        abar = -_softplus(w).sum(axis=0) if c["hidden"] == "onehot" else np.zeros(c["n_hidden"])
        return dict(w=w, a=a, abar=abar, xbar=xbar)

    # ------------------------------------------------------------------ training
    def _training_started(self) -> bool:
        return self._rng is not None

    def _set_optimizer(self, engine: _core.RBMEngine) -> None:
        c = self._cfg
        engine.set_optimizer(c["optimizer"], c["learning_rate"], c["beta1"], c["beta2"], c["rho"], c["eps"])

    def _start_training(self, X: np.ndarray, rng: np.random.Generator, chain_seed: int) -> None:
        engine = self._require_fitted()
        c = self._cfg
        engine.set_data(X)
        self._set_optimizer(engine)
        engine.reset_optimizer()
        if c["gradient_used"] == "pcd":  # chains start at random data points
            init = rng.choice(X.shape[0], size=c["n_chains"], replace=X.shape[0] < c["n_chains"])
            engine.reset_chains(c["n_chains"], chain_seed, X[init])
        self._rng = rng

    def _continue_training(self, X: np.ndarray) -> None:
        engine = self._require_fitted()
        engine.set_data(X)
        self._set_optimizer(engine)  # a changed learning rate (set_params) applies from here

    def _epoch_batches(self, X: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """A fresh random order of the rows, cut into minibatches of ``batch_size`` (the last one shorter)."""
        assert self._rng is not None
        N = X.shape[0]
        bs = min(self._cfg["batch_size"], N)
        n_steps = math.ceil(N / bs)
        sizes = np.full(n_steps, bs, dtype=np.int64)
        sizes[-1] = N - bs * (n_steps - 1)
        return self._rng.permutation(N).astype(np.int64), sizes

    def _step_settings(self) -> tuple[Any, ...]:
        c = self._cfg
        return (c["gradient_used"], c["pcd_steps"], c["centered"], _CENTER_RATE)

    def _batch_state(self) -> Any:
        assert self._rng is not None
        return self._rng.bit_generator.state

    def _restore_batches(self, state: Any) -> None:
        assert self._rng is not None
        self._rng.bit_generator.state = state

    def _epoch_record(self, epoch: int, ll: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
        return {"epoch": epoch, "loglik": float(np.average(ll, weights=sizes))}

    # ------------------------------------------------------------------ likelihood
    def _require_enumerable(self) -> None:
        if self.n_states > _SCORE_MAX_STATES:
            raise ValueError(
                f"the exact ln Z enumerates the hidden layer: at most {_SCORE_MAX_STATES} states, "
                f"this RBM has {self.n_states}; nemm.estimate_loglik(model, X) estimates ln p by AIS "
                "with an error bar"
            )

    @locked
    def log_partition(self) -> float:
        """ln Z = logsumexp_h [abar.h + sum_i softplus(a_i + (w h)_i)], by enumerating h."""
        engine = self._require_fitted()
        self._require_enumerable()
        return float(engine.log_partition())

    @locked
    def score_samples(self, X: Any) -> np.ndarray:
        """Exact ln p(x) of every row: a.x + logsumexp_h [abar.h + x.w h] - ln Z (nats)."""
        engine = self._require_fitted()
        self._require_enumerable()
        X = as_binary_matrix(X, n_features=self.n_visible_, owner=type(self).__name__)
        return np.asarray(engine.log_likelihood(X))

    @locked
    def gradient_of(self, X: Any) -> dict[str, np.ndarray]:
        """Exact gradient of the mean ln p over the rows of X: ``w`` (D, L), ``a`` (D,), ``abar`` (L,).

        Data term E_{h|x}[x h^T, x, h] minus the model term sum_h p(h) [sigmoid(w h + a) h^T,
        sigmoid(w h + a), h], the same C++ code as training.
        """
        engine = self._require_fitted()
        self._require_enumerable()
        X = as_binary_matrix(X, n_features=self.n_visible_, owner=type(self).__name__)
        g = engine.exact_gradient(X)
        return {k: np.asarray(g[k]) for k in ("w", "a", "abar")}

    # ------------------------------------------------------------------ sampling
    def _gibbs(self) -> Any:
        """The engine's chain with tied weights and no centering: this RBM's Gibbs sampler."""

        if self._sampler is None:
            self._sampler = Machine.from_params(
                self.w_,
                self.a_,
                None,
                self.abar_,
                self.xbar_,
                hidden=self._structure["hidden"],
                centered=False,
                tied=True,
                random_state=as_seed(self.random_state, "random_state"),
            )
        return self._sampler

    @locked
    def hidden_trajectory(
        self, T: int, *, seed: int | None = None, n_chains: int = 1, burn_in: int = 1000, codes: bool = False
    ) -> np.ndarray:
        """Hidden states h(0..T-1) of the Gibbs chain x -> h -> x -> ..., fresh chains from the data mean.

        Same conventions as :meth:`nemm.Machine.hidden_trajectory`: one-hot int64 (T,);
        binary uint8 (T, L) bits, or int codes sum_b h_b 2**b with ``codes=True``; a leading
        chain axis when ``n_chains > 1``. ``seed`` defaults to ``random_state``.
        """
        return self._gibbs().hidden_trajectory(T, seed=seed, n_chains=n_chains, burn_in=burn_in, codes=codes)

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
        """Visible samples of the Gibbs chain, as :meth:`nemm.Machine.sample`.

        Returns
        -------
        X : ndarray of uint8, (n_samples, D)
        Z : ndarray, the hidden state that generated each sample, only with ``return_hidden``
        """
        return self._gibbs().sample(
            n_samples, burn_in=burn_in, thin=thin, n_chains=n_chains, seed=seed, return_hidden=return_hidden
        )

    # ------------------------------------------------------------------ persistence
    def _file_settings(self) -> dict[str, Any]:
        settings = validate_settings(self.get_params())
        del settings["gradient_used"]
        return settings

    def _training_arrays(self, engine: _core.RBMEngine) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The training state of a version-2 file, once training has started.

        Arrays (``train/<name>``): the Adam moments or RMSprop accumulators (``mw``, ``vw``, ``ma``,
        ``va``, ``mh``, ``vh``), the centering offset ``lambda`` and, under PCD, the persistent chains
        with their random streams (``visible``, ``z``, ``rng``, ``lanes``). Metadata ``train``: the
        step count ``t``, the PCG64 state ``order_rng`` that draws the next epochs' minibatch orders,
        and whether there are chains.
        """
        if self._rng is None:
            return None
        opt = engine.optimizer_state()
        arrays = {k: np.asarray(opt[k], dtype=float) for k in _OPTIMIZER_ARRAYS}
        chains = engine.n_chains > 0
        if chains:
            arrays.update({k: np.asarray(v) for k, v in engine.chain_state().items()})
        return arrays, {"t": int(opt["t"]), "order_rng": self._rng.bit_generator.state, "chains": chains}

    def _restore_training_state(self, npz: Any, train: Any, path: Path | str) -> None:
        """Optimizer, centering offset, chains and minibatch-order stream of a version-2 file, back in."""
        chains = isinstance(train, dict) and bool(train.get("chains"))
        a = model_file.read_training_arrays(
            npz, train, _OPTIMIZER_ARRAYS + (CHAIN_ARRAYS if chains else ()), path
        )
        engine = self._require_fitted()
        try:
            t = as_int(train.get("t"), "train.t", minimum=0)
            opt = {k: np.asarray(a[k], dtype=float) for k in _OPTIMIZER_ARRAYS}
            self._set_optimizer(engine)
            engine.set_optimizer_state(
                t, opt["mw"], opt["vw"], opt["ma"], opt["va"], opt["mh"], opt["vh"], opt["lambda"]
            )
            if chains:
                engine.set_chain_state(a["visible"], a["z"], a["rng"], a["lanes"])
            order = train.get("order_rng")
            if not isinstance(order, dict):
                raise ValueError("the metadata lacks the state of the minibatch-order generator (order_rng)")
            rng = np.random.default_rng(0)
            rng.bit_generator.state = order  # numpy checks its keys and types
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: invalid training state: {exc}") from exc
        self._rng = rng


register_format(FORMAT_NAME, RBM._from_file)
