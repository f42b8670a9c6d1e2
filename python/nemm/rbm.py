"""The equilibrium RBM, trained by its own learning rule.

Spec section "The equilibrium baseline: an RBM trained as an RBM". The energy is

    E(x, h) = -x . w h - a . x - abar . h,   p(x, h) = exp(-E(x, h)) / Z,

with h one-hot over L states (a Potts hidden unit) or L binary units. Training
ascends the exact gradient of the mean ln p when the hidden layer can be
enumerated (at most 2**16 states), else persistent contrastive divergence with
k Gibbs steps (PCD-k). Everything runs in the C++ core (``_core.RBMEngine``).
Three samplers (``sampler``): the Gibbs chain, which is the engine's chain with
``tied=True`` and ``centered=False`` (``nemm.Machine`` draws x | h ~
Bernoulli(sigmoid(w h + a)) and h | x ~ softmax(w^T x + abar) (one-hot) or
independent sigmoids (binary), this RBM's Gibbs sampler exactly); parallel
tempering over a ladder of such chains; and exact i.i.d. draws where the hidden
layer can be enumerated. (The tied machine trained by eqs. 16-17,
``nemm.Machine(tied=True)``, is a different model: a studied variant.)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from nemm import _core, model_file
from nemm._checks import as_binary_matrix, as_int, as_real_array, as_seed, check_memory
from nemm._estimator import Estimator, locked
from nemm._logdomain import softplus as _softplus
from nemm._seeds import derive_seed, engine_seed
from nemm._settings import RBM_SCORE_MAX_STATES as _SCORE_MAX_STATES
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
# Centering: the offset of h is a running mean of E[h | x] over the minibatches, at this rate.
_CENTER_RATE = 0.01
# PCD's defaults for the settings left at None (docs/training-at-scale.md, "The RBM baseline at
# scale": uncentered PCD at a constant rate gets worse as it trains; centered with this decay, the
# exact ln p climbs): centering on, the rate falling as 1 / (1 + t / 200) over gradient steps t.
_PCD_CENTERED = True
_PCD_LR_DECAY = 200.0
# Parallel tempering's reference: the product-Bernoulli model of the data mean, clipped to
# [_REF_CLIP, 1 - _REF_CLIP] so that its log-odds stay finite for pixels never (or always) on.
_REF_CLIP = 1e-3


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
    states = n_states_of(c["n_hidden"], c["hidden"])
    if c["gradient"] == "exact" and states > EXACT_MAX_STATES:
        raise ValueError(
            f"gradient='exact' enumerates the hidden layer: at most {EXACT_MAX_STATES} states, "
            f"this one has {states}; use gradient='pcd'"
        )
    if c["sampler"] == "exact" and states > EXACT_MAX_STATES:
        raise ValueError(_exact_refusal(states))
    if c["gradient"] == "auto":
        c["gradient_used"] = "exact" if states <= EXACT_MAX_STATES else "pcd"
    else:
        c["gradient_used"] = c["gradient"]
    pcd = c["gradient_used"] == "pcd"
    # The exact gradient keeps its constant, uncentered path; PCD gets the defaults that improve.
    c["centered_used"] = (_PCD_CENTERED and pcd) if c["centered"] is None else c["centered"]
    c["lr_decay_used"] = (_PCD_LR_DECAY if pcd else 0.0) if c["lr_decay"] is None else c["lr_decay"]
    return c


def _exact_refusal(states: int) -> str:
    return (
        f"sampler='exact' draws h from its exact p(h), enumerating the hidden layer: at most "
        f"{EXACT_MAX_STATES} states, this RBM has {states}; use sampler='pt' or 'gibbs'"
    )


def pt_betas(n_temperatures: int, beta_min: float) -> np.ndarray:
    """The geometric ladder of inverse temperatures 1 = beta_0 > ... > beta_{K-1} = beta_min."""
    K = as_int(n_temperatures, "pt_temperatures", minimum=2)
    b = np.geomspace(1.0, float(beta_min), K)
    b[0] = 1.0
    return b


#: Stream of the likelihood monitor's AIS, hashed with the seed and the epoch (apart from training's).
_MONITOR_STREAM = 23


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
    centered : bool or None
        Montavon-Mueller centering: the step is taken in the coordinates of the energy
        -(x - mu).W(h - lambda) - b.(x - mu) - c.(h - lambda), mu the data mean, lambda a
        running mean of E[h | x]. The model family is unchanged; only the path differs.
        None (default): on under PCD, off under the exact gradient.
    gradient : {"auto", "exact", "pcd"}
        ``"auto"``: the exact gradient when the hidden layer has at most 2**16 states
        (one-hot: L; binary: 2**L), else PCD-k.
    lr_decay : float or None
        Gradient steps over which the rate falls: epoch e steps at ``learning_rate / (1 + t /
        lr_decay)``, t = e ceil(N / batch_size) the steps before it (held for the epoch, so
        that resuming between epochs is exact); 0 keeps the rate constant. None (default): 200
        under PCD, 0 under the exact gradient.
    monitor_every : int
        PCD's likelihood monitor: every this many epochs, ``history_["loglik"]`` gets the exact
        mean ln p of the training data at the end of the epoch, where the hidden layer has at most
        2**24 states (the cost: one enumeration of ln Z, about 2**L D L operations for L binary
        units, and one pass over the data). 0: never. Beyond 2**24 states the monitor is the
        forward AIS estimate of :func:`nemm.estimate_loglik` (``monitor_ais_temperatures``
        temperatures, 100 runs; a stochastic upper bound on ln p).
    monitor_ais_temperatures : int
        Temperatures of the monitor's AIS beyond 2**24 hidden states (the cost the user sets:
        about 12 ms per temperature at 784 x 500; the estimate's bias falls as they grow).
        0: no monitor there (NaN).
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
    sampler : {"gibbs", "pt", "exact"}
        The sampler of :meth:`sample` (and so of :func:`nemm.sample_mixing.mixing_of`); ``sample``
        takes it as a keyword too. ``"gibbs"``: the Gibbs chain x -> h -> x. ``"pt"``: parallel
        tempering (below). ``"exact"``: i.i.d. draws, h from its exact p(h) ∝ exp(abar.h +
        sum_i softplus(a_i + (w h)_i)) (log domain), then x | h; only where the hidden layer has at
        most 2**16 states (one-hot, or binary with at most 16 units), refused otherwise. The
        training path does not depend on it.
    pt_temperatures : int
        K, rungs of the parallel-tempering ladder (beta = 1 included).
    pt_beta_min : float
        The smallest inverse temperature of the geometric ladder, in (0, 1).

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

    Parallel tempering. Rung k samples p_k(x, h) ∝ exp(-beta_k E(x, h)) q(x)^(1 - beta_k): the RBM
    tempered *towards the base-rate model* q, the product of Bernoulli(xbar_i) (xbar the data mean,
    clipped to [1e-3, 1 - 1e-3]), which is itself an RBM with parameters (beta w, beta a +
    (1 - beta) logit(xbar), beta abar). (Plain tempering towards uniform noise, q = 1, crosses
    between the digit modes far more rarely at the same cost on these data.) The inverse
    temperatures are geometric from beta_0 = 1 down to ``pt_beta_min``
    (:func:`pt_betas`). A sweep is one Gibbs double step at every rung, then a swap attempt
    between the neighbour rungs (k, k+1) of the sweep's parity (even k, then odd k), accepted with
    probability min(1, exp((beta_k - beta_k+1)(E'_k - E'_k+1))), E' = E + logit(xbar).x. Samples
    are the beta = 1 rung's; ``pt_swap_rates_`` (K - 1 accepted fractions, one per neighbour
    pair) and ``pt_betas_`` are set by every PT ``sample``. ``sample_cost_`` (set by every
    ``sample``) is the cost of one sample in Gibbs sweeps (x | h and h | x): ``thin`` for Gibbs,
    K ``thin`` for PT, and for exact draws a half sweep (x | h) plus the enumeration of p(h)
    (one half sweep per hidden state) shared by the draws.

    PT is the field's standard remedy for a slow Gibbs chain, but not a cure here: on the embedded
    digits the trained one-hot RBM's p(h) changes abruptly just below beta = 1 (the sparse 1s'
    states lose their weight to the 0s' and 2s', at either reference), so PT moves the chain
    between the 0s and the 2s but rarely, if ever, reaches the 1s; the exact sampler does.

    ``history_["loglik"]`` holds, per epoch, the mean over its minibatches of their exact
    mean ln p at the parameters before each step. Under PCD with more than 1024 hidden states,
    where ln Z is not computed during the steps, it holds the likelihood monitor's exact mean ln p
    of the training data at the end of every ``monitor_every``-th epoch, NaN in the others.

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
        "lr_decay",
        "monitor_every",
        "monitor_ais_temperatures",
        "pcd_steps",
        "n_chains",
        "beta1",
        "beta2",
        "rho",
        "eps",
        "random_state",
        "verbose",
        "sampler",
        "pt_temperatures",
        "pt_beta_min",
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
        centered: bool | None = None,
        gradient: str = "auto",
        lr_decay: float | None = None,
        monitor_every: int = 1,
        monitor_ais_temperatures: int = 1000,
        pcd_steps: int = 1,
        n_chains: int = 100,
        beta1: float = 0.9,
        beta2: float = 0.999,
        rho: float = 0.9,
        eps: float = 1e-8,
        random_state: int | None = None,
        verbose: bool = False,
        sampler: str = "gibbs",
        pt_temperatures: int = 16,
        pt_beta_min: float = 0.2,
    ) -> None:
        self.n_hidden = n_hidden
        self.hidden = hidden
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.centered = centered
        self.gradient = gradient
        self.lr_decay = lr_decay
        self.monitor_every = monitor_every
        self.monitor_ais_temperatures = monitor_ais_temperatures
        self.pcd_steps = pcd_steps
        self.n_chains = n_chains
        self.beta1 = beta1
        self.beta2 = beta2
        self.rho = rho
        self.eps = eps
        self.random_state = random_state
        self.verbose = verbose
        self.sampler = sampler
        self.pt_temperatures = pt_temperatures
        self.pt_beta_min = pt_beta_min
        self._lock = threading.RLock()
        self._engine: _core.RBMEngine | None = None
        self._rng: np.random.Generator | None = None
        self._sampler: Any = None
        # Checked settings of the current run, and the structural ones the engine was built with.
        self._cfg: dict[str, Any] = {}
        # The training data, for PCD's likelihood monitor (_epoch_record).
        self._monitor_data: np.ndarray | None = None
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

    def _check_training_memory(self, shape: tuple[int, int], cfg: dict[str, Any]) -> None:
        # Per weight (D * L): w and w^T, the optimizer's two moments, the rollback snapshot's
        # copies of all four, the gradient and the step, and one D x L sum per 256 rows of a
        # minibatch or of the chains, or per block of the exact model term (64 blocks).
        N, D = shape
        L, B = int(cfg["n_hidden"]), min(int(cfg["batch_size"]), N)
        exact = cfg["gradient_used"] == "exact"
        C = 0 if exact else int(cfg["n_chains"])
        blocks = math.ceil(B / 256) + (64 if exact else math.ceil(C / 256))
        per_chain = D * (4 + 4 + 1 + 4) + L * (4 + 8)
        check_memory(
            8 * (10 + blocks) * D * L + C * per_chain + 4 * N * D + 8 * N,
            f"training RBM(n_hidden={L}, n_chains={cfg['n_chains']}, batch_size={cfg['batch_size']}) "
            f"on {N} x {D} data",
            "use a smaller n_hidden" + ("" if exact else " or fewer n_chains"),
        )

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

    def _set_optimizer(self, engine: _core.RBMEngine, steps_before: int = 0) -> None:
        c = self._cfg
        decay = c["lr_decay_used"]
        lr = c["learning_rate"] / (1.0 + steps_before / decay) if decay > 0 else c["learning_rate"]
        engine.set_optimizer(c["optimizer"], lr, c["beta1"], c["beta2"], c["rho"], c["eps"])

    def _start_training(self, X: np.ndarray, rng: np.random.Generator, chain_seed: int) -> None:
        engine = self._require_fitted()
        c = self._cfg
        engine.set_data(X)
        self._monitor_data = X
        self._set_optimizer(engine)
        engine.reset_optimizer()
        if c["gradient_used"] == "pcd":  # chains start at random data points
            init = rng.choice(X.shape[0], size=c["n_chains"], replace=X.shape[0] < c["n_chains"])
            engine.reset_chains(c["n_chains"], chain_seed, X[init])
        self._rng = rng

    def _continue_training(self, X: np.ndarray) -> None:
        engine = self._require_fitted()
        engine.set_data(X)
        self._monitor_data = X
        self._set_optimizer(engine)  # a changed learning rate (set_params) applies from here

    def _epoch_batches(self, X: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """A fresh random order of the rows, cut into minibatches of ``batch_size`` (the last one shorter)."""
        assert self._rng is not None
        N = X.shape[0]
        bs = min(self._cfg["batch_size"], N)
        n_steps = math.ceil(N / bs)
        # The epoch's learning rate (lr_decay) is set with its minibatches: one call per epoch.
        self._set_optimizer(self._require_fitted(), epoch * n_steps)
        sizes = np.full(n_steps, bs, dtype=np.int64)
        sizes[-1] = N - bs * (n_steps - 1)
        return self._rng.permutation(N).astype(np.int64), sizes

    def _step_settings(self) -> tuple[Any, ...]:
        c = self._cfg
        return (c["gradient_used"], c["pcd_steps"], c["centered_used"], _CENTER_RATE)

    def _batch_state(self) -> Any:
        assert self._rng is not None
        return self._rng.bit_generator.state

    def _restore_batches(self, state: Any) -> None:
        assert self._rng is not None
        self._rng.bit_generator.state = state

    def _epoch_record(self, epoch: int, ll: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
        loglik = float(np.average(ll, weights=sizes))
        every = self._cfg["monitor_every"]
        if not (math.isnan(loglik) and every and (epoch + 1) % every == 0):
            return {"epoch": epoch, "loglik": loglik}
        # PCD without a cheap ln Z during the steps: the monitor's ln p after the epoch, exact where
        # the hidden layer can be enumerated, else forward AIS (seeded apart from training's streams).
        if self.n_states <= _SCORE_MAX_STATES:
            loglik = float(self.score_samples(self._monitor_data).mean())
        elif self._cfg["monitor_ais_temperatures"]:
            from nemm.loglik import estimate_loglik

            base = 0 if self.random_state is None else int(self.random_state)
            loglik = estimate_loglik(
                self,
                self._monitor_data,
                method="ais",
                seed=int(cast(int, derive_seed(base, _MONITOR_STREAM, epoch))),
                n_temperatures=self._cfg["monitor_ais_temperatures"],
                bidirectional=False,
            ).mean
        return {"epoch": epoch, "loglik": loglik}

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
        engine = self._require_resolvable()
        self._require_enumerable()
        return float(engine.log_partition())

    @locked
    def score_samples(self, X: Any) -> np.ndarray:
        """Exact ln p(x) of every row: a.x + logsumexp_h [abar.h + x.w h] - ln Z (nats)."""
        engine = self._require_resolvable()
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

        Always the Gibbs chain, whatever ``sampler``: this is the chain whose M the diagnostics measure.

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
        sampler: str | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Visible samples of the RBM by its ``sampler``, with the conventions of :meth:`nemm.Machine.sample`.

        Parameters
        ----------
        n_samples : int
        burn_in, thin : int
            Sweeps before the first sample and between samples of one chain (Gibbs and PT; exact
            draws are independent and ignore them).
        n_chains : int, optional
            Independent chains (default ``min(n_samples, 64)``), chain-major in the output (Gibbs
            and PT).
        seed : int, optional
            Defaults to ``random_state``; the same seed gives the same samples on any thread count.
        return_hidden : bool
            Also return the hidden state of each sample.
        sampler : {"gibbs", "pt", "exact"}, optional
            Overrides the ``sampler`` setting for this call.

        Returns
        -------
        X : ndarray of uint8, (n_samples, D)
        Z : ndarray, the hidden state of each sample, only with ``return_hidden``
        """
        name = setting(RBM_SETTINGS, "sampler").check(self.sampler if sampler is None else sampler)
        if name == "gibbs":
            self.sample_cost_ = float(as_int(thin, "thin", minimum=1))
            return self._gibbs().sample(
                n_samples,
                burn_in=burn_in,
                thin=thin,
                n_chains=n_chains,
                seed=seed,
                return_hidden=return_hidden,
            )
        engine = self._require_fitted()
        n_samples = as_int(n_samples, "n_samples", minimum=1)
        seed_ = engine_seed(
            np.random.SeedSequence(as_seed(self.random_state if seed is None else seed, "seed"))
        )
        row_bytes = int(engine.n_visible) + 8 + self.n_hidden
        check_memory(n_samples * row_bytes, f"{n_samples} samples", "ask for fewer samples at a time")
        if name == "exact":
            if self.n_states > EXACT_MAX_STATES:
                raise ValueError(_exact_refusal(self.n_states))
            X, Z = engine.exact_sample(n_samples, seed_)
            self.sample_cost_ = 0.5 + 0.5 * self.n_states / n_samples
        else:
            X, Z = self._pt_sample(engine, n_samples, burn_in, thin, n_chains, seed_)
        return (X, Z) if return_hidden else X

    def _pt_sample(
        self, engine: _core.RBMEngine, n: int, burn_in: int, thin: int, n_chains: int | None, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Parallel tempering (class notes): n samples of the beta = 1 rung; sets the swap rates and the cost."""
        cfg = check_settings(
            [setting(RBM_SETTINGS, k) for k in ("pt_temperatures", "pt_beta_min")], self.get_params()
        )
        betas = pt_betas(cfg["pt_temperatures"], cfg["pt_beta_min"])
        C = min(n, 64) if n_chains is None else as_int(n_chains, "n_chains", minimum=1, maximum=2**31 - 1)
        thin = as_int(thin, "thin", minimum=1)
        xbar = np.clip(self.xbar_, _REF_CLIP, 1.0 - _REF_CLIP)
        X, Z, accepted, attempted = engine.pt_sample(
            list(betas),
            np.log(xbar / (1.0 - xbar)),
            C,
            math.ceil(n / C),
            as_int(burn_in, "burn_in", minimum=0),
            thin,
            seed,
        )
        self.pt_betas_ = betas
        self.pt_swap_rates_ = np.asarray(accepted, dtype=float) / np.maximum(
            np.asarray(attempted, dtype=float), 1
        )
        self.sample_cost_ = float(len(betas) * thin)
        return X[:n], Z[:n]

    # ------------------------------------------------------------------ persistence
    def _file_settings(self) -> dict[str, Any]:
        settings = validate_settings(self.get_params())
        for derived in ("gradient_used", "centered_used", "lr_decay_used"):
            del settings[derived]
        return settings

    @classmethod
    def _settings_from_file(cls, settings: dict[str, Any]) -> dict[str, Any]:
        # Files written before PCD's decaying rate trained at a constant one: they continue so.
        settings.setdefault("lr_decay", 0.0)
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
            npz,
            train,
            _OPTIMIZER_ARRAYS + (CHAIN_ARRAYS if chains else ()),
            path,
            n_chains=self._cfg["n_chains"] if chains else None,
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
