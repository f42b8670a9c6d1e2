"""What Machine and RBM share as estimators: one lock per instance, and the structural-setting check."""

from __future__ import annotations

import functools
from typing import Any, Callable


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
    """The scikit-learn protocol, pickling and fitted-state checks that Machine and RBM share.

    A subclass has ``_SETTINGS`` (its constructor keywords), ``_engine`` (None until fitted),
    ``_lock``, ``_structure`` (the settings its engine was built with) and ``_model_arrays()``
    (the arrays of its model file, see :mod:`nemm.model_file`).
    """

    _SETTINGS: tuple[str, ...] = ()
    _engine: Any
    _lock: Any
    _structure: dict[str, Any]

    def _model_arrays(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

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

    def _require_fitted(self) -> Any:
        """The engine, once fitted and while the structural settings are those it was built with."""
        name = type(self).__name__
        if self._engine is None:
            raise RuntimeError(f"this {name} has no parameters yet: call fit(X) or use {name}.from_params")
        changed = [k for k, v in self._structure.items() if not same_setting(getattr(self, k), v)]
        if changed:
            raise RuntimeError(f"the settings {', '.join(changed)} were changed (set_params) after the parameters "
                               "were made; call fit again, or set them back")
        return self._engine

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: a density estimator (like ``DensityMixin``) that must be fitted.

        scikit-learn is imported here, only when it asks, so that it stays optional.
        """
        try:
            from sklearn.utils import InputTags, Tags, TargetTags
        except ImportError as exc:  # scikit-learn < 1.6 or absent: no tags protocol
            raise AttributeError("__sklearn_tags__ needs scikit-learn >= 1.6") from exc
        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False),
                    transformer_tags=None, classifier_tags=None, regressor_tags=None, requires_fit=True,
                    input_tags=InputTags(sparse=True))  # sparse 0/1 input is checked, then made dense

    def __sklearn_is_fitted__(self) -> bool:
        return self._engine is not None

    @locked
    def _file_bytes(self) -> bytes:
        """The bytes of the model file ``save`` would write (fitted models only)."""
        from nemm import model_file

        return model_file.to_bytes(self._model_arrays())

    def __getstate__(self) -> dict[str, Any]:
        """The model file's bytes (as ``save`` writes them) or, unfitted, the settings as given."""
        with self._lock:
            if self._engine is None:
                return {"settings": self.get_params()}
            return {"model_npz": self._file_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from nemm import model_file

        if "model_npz" in state:
            m = model_file.from_bytes(state["model_npz"], f"pickled {type(self).__name__}")
            self.__dict__.update(m.__dict__)  # with m's own, fresh lock
        else:
            self.__init__(**state["settings"])  # type: ignore[misc]
