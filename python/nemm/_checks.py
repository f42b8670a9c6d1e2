"""Input validation shared by every public entry point.

Each check raises a ``TypeError`` or ``ValueError`` whose message names the
argument and the problem, so that bad input never reaches the C++ core.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_binary_matrix", "as_real_array"]


def as_binary_matrix(X: object, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a C-contiguous ``uint8`` matrix of 0/1 values.

    Parameters
    ----------
    X : array_like
        Two-dimensional array of zeros and ones (bool, integer or float).
    name : str
        Name used in error messages.
    n_features : int, optional
        Required number of columns.

    Raises
    ------
    TypeError
        If ``X`` is not numeric or boolean.
    ValueError
        If ``X`` is not two-dimensional, is empty, has the wrong number of
        columns, contains NaN or values other than 0 and 1.
    """
    arr = np.asarray(X)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric or boolean array of 0/1 values, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per row, expected {n_features}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if arr.dtype == np.uint8:  # the common case: one cheap pass, the full scan only to report
        if arr.size and arr.max() > 1:
            idx = tuple(int(i) for i in np.argwhere(arr > 1)[0])
            raise ValueError(f"{name} must contain only 0 and 1, found {arr[idx]!r} at index {idx}")
    elif arr.dtype != np.bool_:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} must contain only 0 and 1, found {arr[idx]!r} at index {idx}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def as_real_array(x: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``x`` as a finite C-contiguous ``float64`` array of the given shape."""
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
