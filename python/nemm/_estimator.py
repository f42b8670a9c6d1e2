"""What Machine and RBM share as estimators: the training skeleton, the model file, the fitted
parameters and the scikit-learn protocol, with hooks for what differs (as scikit-learn's
``BaseMixture`` does for its mixtures).
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nemm import model_file
from nemm._checks import as_binary_matrix, as_int
from nemm._seeds import engine_seed


def locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` holding the instance's ``_lock``: one engine call at a time per model."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def same_setting(a: Any, b: Any) -> bool:
    """``a == b`` for settings, False where the comparison itself fails (an array against a number)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class Estimator:
    """The skeleton Machine and RBM share; each fills in the hooks below.

    Shared here: ``fit`` and ``partial_fit`` (checks, seeding, initialization, the epoch loop with
    its rollback on Ctrl-C or divergence and its booking of history rows), ``from_params``'s body,
    the fitted parameters ``w_``, ``a_``, ``abar_``, ``xbar_``, ``n_visible_``, ``save`` and the
    reader of the model file (version check, the version-1 warning, settings, history), pickling
    through the model file's bytes, and the scikit-learn protocol (params, tags, fitted check).

    A subclass declares its constructor keywords ``_SETTINGS``, its parameter arrays ``_PARAMS``
    (besides ``xbar``, in the order of ``from_params``), its history columns ``_HISTORY_KEYS``,
    its file format (``_FORMAT_NAME``, ``_FORMAT_VERSION``, ``_READABLE_VERSIONS``, ``_FILE_NOUN``,
    ``_HISTORY_INTEGERS``) and the settings ``__repr__`` shows (``_REPR``), and defines the hooks:

    - ``_validate_settings()``: the checked settings (then kept as ``_cfg`` for the run);
    - ``_resolve_settings(cfg, X)``: those settings as a run on ``X`` uses them (the Machine's
      training recipe fills in what was left at None);
    - ``_set_params(**params, xbar=...)``: parameters into the engine, made anew if D changed;
    - ``_initial_params(X, rng)``: the starting parameters of ``fit``;
    - ``_start_training(X, rng, chain_seed)`` and ``_continue_training(X)``: data, chains,
      optimizer and minibatch stream, fresh or carried over; ``_training_started()`` tells which;
    - ``_epoch_batches(X, epoch)``, ``_step_settings()``, ``_batch_state()``,
      ``_restore_batches(state)`` and ``_epoch_record(epoch, ll, sizes)``: one epoch's minibatches,
      the engine's ``train_steps`` arguments, the stream's state for a rollback, the history row;
    - ``_training_arrays(engine)`` and ``_restore_training_state(npz, train, path)``: the training
      state in the model file and back;
    - optionally ``_check_training_memory(shape, cfg)``, ``_file_settings()``,
      ``_settings_from_file(settings)`` and ``_forget_derived()`` (caches of the parameters).
    """

    _SETTINGS: tuple[str, ...] = ()
    _PARAMS: tuple[str, ...] = ()
    _HISTORY_KEYS: tuple[str, ...] = ()
    _FORMAT_NAME: str = ""
    _FORMAT_VERSION: int = 0
    _READABLE_VERSIONS: tuple[int, ...] = ()
    _FILE_NOUN = "model"
    _HISTORY_INTEGERS = False
    _REPR: tuple[str, ...] = ()
    _engine: Any
    _lock: Any
    _cfg: dict[str, Any]
    _structure: dict[str, Any]
    history_: dict[str, list[Any]]
    epochs_done_: int
    # Each model names its own parameters as keywords: _set_params(w=..., a=..., ..., xbar=...).
    _set_params: Callable[..., None]

    # ------------------------------------------------------------------ hooks
    def _validate_settings(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines the hooks
        raise NotImplementedError

    def _initial_params(
        self, X: np.ndarray, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _start_training(
        self, X: np.ndarray, rng: np.random.Generator, chain_seed: int
    ) -> None:  # pragma: no cover
        raise NotImplementedError

    def _continue_training(self, X: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _training_started(self) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _epoch_batches(self, X: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _step_settings(self) -> tuple[Any, ...]:  # pragma: no cover
        raise NotImplementedError

    def _batch_state(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _restore_batches(self, state: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def _epoch_record(
        self, epoch: int, ll: np.ndarray, sizes: np.ndarray
    ) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def _training_arrays(
        self, engine: Any
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:  # pragma: no cover
        raise NotImplementedError

    def _restore_training_state(self, npz: Any, train: Any, path: Path | str) -> None:  # pragma: no cover
        raise NotImplementedError

    def _resolve_settings(self, cfg: dict[str, Any], X: np.ndarray) -> dict[str, Any]:
        """The checked settings as a run on ``X`` uses them (a training recipe fills in its choices)."""
        return cfg

    def _check_training_memory(self, shape: tuple[int, int], cfg: dict[str, Any]) -> None:
        """Refuse, before anything is allocated, a run that needs more memory than there is."""

    def _file_settings(self) -> dict[str, Any]:
        """The settings as the model file holds them: checked, plain Python values."""
        return self._validate_settings()

    @classmethod
    def _settings_from_file(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings of a model file as the constructor takes them."""
        return settings

    def _forget_derived(self) -> None:
        """Drop what was computed from the parameters (they have changed)."""

    # ------------------------------------------------------------------ parameters
    @property
    @locked
    def n_visible_(self) -> int:
        """D, the number of visible bits."""
        return int(self._require_fitted().n_visible)

    @property
    @locked
    def w_(self) -> np.ndarray:
        """Weights w, (D, L): the field ``w z + a`` of the visible bits given the hidden state (eq. 10)."""
        return self._require_fitted().w

    @property
    @locked
    def a_(self) -> np.ndarray:
        """Visible bias a, (D,)."""
        return self._require_fitted().a

    @property
    @locked
    def abar_(self) -> np.ndarray:
        """Hidden bias abar, (L,)."""
        return self._require_fitted().abar

    @property
    @locked
    def xbar_(self) -> np.ndarray:
        """Data mean, (D,): the centering offset and the start of fresh chains."""
        return self._require_fitted().xbar

    @classmethod
    def _build(cls, params: dict[str, Any], xbar: Any | None, settings: dict[str, Any]) -> Any:
        """The body of ``from_params``: a model with the given parameters (``params`` by ``_PARAMS``)."""
        w_arr = np.asarray(params["w"])
        if w_arr.ndim != 2:
            raise ValueError(f"w must be two-dimensional (D, L), got shape {w_arr.shape}")
        settings.setdefault("n_hidden", int(w_arr.shape[1]))
        m = cls(**settings)
        m._cfg = m._validate_settings()
        m.history_, m.epochs_done_ = {}, 0
        m._set_params(**dict(params, w=w_arr), xbar=np.full(w_arr.shape[0], 0.5) if xbar is None else xbar)
        return m

    # ------------------------------------------------------------------ training
    @locked
    def fit(self, X: Any, y: Any = None, *, callback: Callable[[Any, int], None] | None = None) -> Any:
        """Train on binary data for ``n_epochs`` epochs, from fresh parameters.

        Parameters
        ----------
        X : array_like, (N, D)
            Rows of 0/1 values.
        y : ignored
        callback : callable, optional
            Called as ``callback(model, epoch)`` after every epoch (e.g. diagnostics).

        Returns
        -------
        self
        """
        cfg = self._validate_settings()
        X = as_binary_matrix(X)
        cfg = self._resolve_settings(cfg, X)
        self._check_training_memory(X.shape, cfg)
        self._cfg = cfg
        self._engine = None
        self.history_ = {k: [] for k in self._HISTORY_KEYS}
        self.epochs_done_ = 0
        self._initialize(X)
        return self._train_epochs(X, cfg["n_epochs"], callback)

    @locked
    def partial_fit(self, X: Any, y: Any = None, *, n_epochs: int = 1) -> Any:
        """Continue training for ``n_epochs`` epochs (initializing first if needed).

        The persistent chains, the optimizer state and the minibatch stream carry over from the
        previous call, also through ``save``/``load`` and pickling: given the same data, 2 epochs,
        a round trip, then 2 more give the same bits as 4 epochs in one run.
        """
        n_epochs = as_int(n_epochs, "n_epochs", minimum=1)
        cfg = self._validate_settings()
        X = as_binary_matrix(
            X, n_features=self.n_visible_ if self._engine is not None else None, owner=type(self).__name__
        )
        cfg = self._resolve_settings(cfg, X)
        self._check_training_memory(X.shape, cfg)
        self._cfg = cfg
        if self._engine is None or not self._training_started():
            old = getattr(self, "history_", None) or {}  # from_params or a version-1 file: kept
            self.history_ = {k: list(v) for k, v in old.items()}
            for k in self._HISTORY_KEYS:
                self.history_.setdefault(k, [])
            if not old:
                self.epochs_done_ = 0
            self._initialize(X)
        else:
            self._continue_training(X)
        return self._train_epochs(X, n_epochs, None)

    def _initialize(self, X: np.ndarray) -> None:
        """Initial parameters (unless the engine has some) and a fresh training state, from ``random_state``."""
        seeds = np.random.SeedSequence(self._cfg["random_state"]).spawn(3)
        if self._engine is None:
            self._set_params(**self._initial_params(X, np.random.default_rng(seeds[0])))
        self._start_training(X, np.random.default_rng(seeds[1]), engine_seed(seeds[2]))

    def _train_epochs(self, X: np.ndarray, n_epochs: int, callback: Callable[[Any, int], None] | None) -> Any:
        engine = self._require_fitted()
        step_settings = self._step_settings()
        progress = tqdm(total=n_epochs, desc="training", disable=not self._cfg["verbose"])
        t0 = time.perf_counter()
        try:
            for _ in range(n_epochs):
                e = self.epochs_done_
                before = self._batch_state()
                rows_before = {k: len(v) for k, v in self.history_.items()}
                ll = None
                try:
                    rows, sizes = self._epoch_batches(X, e)
                    # The core checks every step for divergence (FloatingPointError naming epoch e
                    # and the step) and for Ctrl-C (also once after the last step), and rolls the
                    # whole epoch back on either.
                    ll = engine.train_steps(rows, sizes, *step_settings, e)
                finally:
                    if ll is None:  # the engine went back: so does the minibatch stream
                        self._restore_batches(before)
                # The core kept this epoch: book it even if Ctrl-C lands meanwhile (no call or
                # backward jump between the engine's return and this try), then raise it.
                interrupted = False
                while True:
                    try:
                        record = self._epoch_record(e, ll, sizes)
                        record["seconds"] = time.perf_counter() - t0
                        self._record_epoch(record, rows_before)
                        break
                    except KeyboardInterrupt:
                        interrupted = True
                if interrupted:
                    raise KeyboardInterrupt
                if callback is not None:
                    callback(self, e)
                progress.set_postfix_str(f"LL {record['loglik']:.2f}", refresh=False)
                progress.update(1)
        finally:
            progress.close()
        return self

    def _record_epoch(self, record: dict[str, Any], rows_before: dict[str, int]) -> None:
        """Book one epoch the core has completed: its history rows, then the epoch counter.

        Idempotent (a row is added only while its list still has the length it had before the
        epoch), so that a booking cut short by Ctrl-C can simply be done again.
        """
        for key, value in record.items():
            rows = self.history_.setdefault(key, [])
            if len(rows) == rows_before.get(key, 0):
                rows.append(value)
        self.epochs_done_ = int(record["epoch"]) + 1
        self._forget_derived()

    @locked
    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per data point (nats): the mean of ``score_samples(X)``."""
        return float(self.score_samples(X).mean())  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ persistence
    @locked
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to ``path`` (npz with JSON metadata; no pickle), atomically; ``nemm.load`` reads it back.

        The file holds the parameter arrays, the history (``history/<key>``) and ``metadata``: a
        JSON string with ``format`` ("nemm-machine" or "nemm-rbm"), ``format_version``, the nemm
        version, the checked settings and ``epochs_done``. Once training has started it also holds
        the whole training state (``train/*`` arrays and the metadata ``train``), so that ``load`` +
        ``partial_fit`` on the same data continues bit for bit like a run that never stopped; the
        model's ``_model_arrays`` lists what exactly. Version-1 files (no training state) load with
        a warning.

        The file is written to ``path``: a symlink is followed (the link is kept and its target
        replaced), an existing file keeps its permissions, and anything but a regular file (a
        directory, FIFO, device, socket) is refused with ``OSError``. Readers see the old file or
        the new one, and a killed save leaves no temporary file behind (see ``nemm._io``). Hard
        links to the old file are not updated: the path gets a new file.

        Returns
        -------
        Path
            ``path``, with ``.npz`` appended if it had another suffix.
        """
        return model_file.write(path, self._model_arrays())

    def _model_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the model file (``save``, pickling); ``_from_file`` reads them back.

        The one place that decides what a model file holds: the ``_PARAMS`` and ``xbar``, the
        history, and once training has started the ``train/*`` arrays and the metadata ``train``
        of the model's ``_training_arrays``.
        """
        engine = self._require_fitted()
        meta = model_file.metadata(
            self._FORMAT_NAME, self._FORMAT_VERSION, self._file_settings(), self.epochs_done_, self.history_
        )
        arrays = {k: getattr(engine, k) for k in self._PARAMS + ("xbar",)}
        arrays.update(model_file.history_arrays(self.history_, keep_integers=self._HISTORY_INTEGERS))
        state = self._training_arrays(engine)
        if state is not None:  # training has started: everything an exact resume needs
            train_arrays, meta["train"] = state
            arrays.update({f"train/{k}": v for k, v in train_arrays.items()})
        arrays["metadata"] = np.array(json.dumps(meta))
        return arrays

    @classmethod
    def _from_file(cls, npz: Any, meta: dict[str, Any], path: Path | str) -> Any:
        """The reader of this model's files (registered with :func:`nemm.model_file.register_format`)."""
        version = model_file.check_version(meta, path, cls._READABLE_VERSIONS, cls._FILE_NOUN)
        if version == 1:
            warnings.warn(
                f"{path} is a version-1 {cls._FILE_NOUN} file: it holds the parameters but no training "
                "state, so training continued from it starts fresh chains, optimizer and minibatches "
                "and cannot resume exactly",
                UserWarning,
                stacklevel=4,
            )
        model_file.require_arrays(npz, cls._PARAMS + ("xbar",), path)
        settings = cls._settings_from_file(model_file.read_settings(meta, cls._SETTINGS, path))
        try:
            m = cls._build({k: npz[k] for k in cls._PARAMS}, npz["xbar"], settings)
        except (TypeError, ValueError) as exc:  # a setting or an array the checks refuse: name the file
            raise ValueError(f"{path}: {exc}") from exc
        m.history_, m.epochs_done_ = model_file.read_history(npz, meta, path)
        if version >= 2 and "train" in meta:
            m._restore_training_state(npz, meta["train"], path)
        return m

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._REPR)
        return f"{type(self).__name__}({shown})"

    # ------------------------------------------------------------------ scikit-learn protocol
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Settings as a dict (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._SETTINGS}

    @locked
    def set_params(self, **params: Any) -> Any:
        """Change settings (scikit-learn convention); they are checked and take effect at the next ``fit``."""
        for k, v in params.items():
            if k not in self._SETTINGS:
                raise ValueError(f"unknown setting {k!r}; valid settings: {', '.join(self._SETTINGS)}")
            setattr(self, k, v)
        return self

    def _require_resolvable(self) -> Any:
        """The engine, once its parameters are within what ln Z can resolve (for ln p and ln Z).

        Training stops before it drives them beyond (the same check in the core); parameters
        given by hand (``from_params``) can still be.
        """
        engine = self._require_fitted()
        why = engine.unresolvable_params()
        if why:
            raise FloatingPointError(f"{why}; ln p and ln Z of these parameters would be rounding noise")
        return engine

    def _require_fitted(self) -> Any:
        """The engine, once fitted and while the structural settings are those it was built with."""
        name = type(self).__name__
        if self._engine is None:
            raise RuntimeError(f"this {name} has no parameters yet: call fit(X) or use {name}.from_params")
        changed = [k for k, v in self._structure.items() if not same_setting(getattr(self, k), v)]
        if changed:
            raise RuntimeError(
                f"the settings {', '.join(changed)} were changed (set_params) after the parameters "
                "were made; call fit again, or set them back"
            )
        return self._engine

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: a density estimator (like ``DensityMixin``) that must be fitted.

        scikit-learn is imported here, only when it asks, so that it stays optional.
        """
        try:
            from sklearn.utils import InputTags, Tags, TargetTags
        except ImportError as exc:  # scikit-learn < 1.6 or absent: no tags protocol
            raise AttributeError("__sklearn_tags__ needs scikit-learn >= 1.6") from exc
        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            classifier_tags=None,
            regressor_tags=None,
            requires_fit=True,
            input_tags=InputTags(sparse=True),
        )  # sparse 0/1 input is checked, then made dense

    def __sklearn_is_fitted__(self) -> bool:
        return self._engine is not None

    @locked
    def _file_bytes(self) -> bytes:
        """The bytes of the model file ``save`` would write (fitted models only)."""
        return model_file.to_bytes(self._model_arrays())

    def __getstate__(self) -> dict[str, Any]:
        """The model file's bytes (as ``save`` writes them) or, unfitted, the settings as given."""
        with self._lock:
            if self._engine is None:
                return {"settings": self.get_params()}
            return {"model_npz": self._file_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "model_npz" in state:
            m = model_file.from_bytes(state["model_npz"], f"pickled {type(self).__name__}")
            self.__dict__.update(m.__dict__)  # with m's own, fresh lock
        else:
            self.__init__(**state["settings"])  # type: ignore[misc]
