"""Input validation shared by every public entry point.

Each check raises a ``TypeError`` or ``ValueError`` whose message names the
argument and the problem, so that bad input never reaches the C++ core.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = [
    "as_binary_matrix",
    "as_real_array",
    "as_int",
    "as_float",
    "as_bool",
    "as_seed",
    "as_onehot_states",
    "check_memory",
    "memory_limit",
    "INT32_MAX",
]


def as_binary_matrix(
    X: object, name: str = "X", n_features: int | None = None, *, owner: str = "the model"
) -> np.ndarray:
    """Return ``X`` as a C-contiguous ``uint8`` matrix of 0/1 values.

    Parameters
    ----------
    X : array_like or scipy sparse matrix/array
        Two-dimensional array of zeros and ones (bool, integer or float). Sparse input is
        checked on its stored values and then made dense (nemm's core stores active pixels
        itself).
    name : str
        Name used in error messages.
    n_features : int, optional
        Required number of columns.
    owner : str
        What expects ``n_features`` (e.g. the estimator's class name), for the message.

    Raises
    ------
    TypeError
        If ``X`` is not numeric or boolean.
    ValueError
        If ``X`` is complex, not two-dimensional, empty, has the wrong number of
        columns, contains NaN or values other than 0 and 1.
    """
    if _is_sparse(X):
        X = _sparse_to_dense(X, name)
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric or boolean array of 0/1 values, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be two-dimensional (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        what = "0 sample(s)" if arr.shape[0] == 0 else "0 feature(s)"  # scikit-learn's wording
        raise ValueError(
            f"{name} must not be empty: found {what} (shape={arr.shape}) while a minimum of 1 is required."
        )
    if n_features is not None and arr.shape[1] != n_features:
        # scikit-learn's wording, so that its checks recognize the message
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but {owner} is expecting {n_features} features as input"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} must be real 0/1 values, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if arr.dtype == np.uint8:  # the common case: one cheap pass, the full scan only to report
        if arr.size and arr.max() > 1:
            idx = tuple(int(i) for i in np.argwhere(arr > 1)[0])
            raise ValueError(f"{name} must contain only 0 and 1, found {shown(arr[idx])} at index {idx}")
    elif arr.dtype != np.bool_:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} must contain only 0 and 1, found {shown(arr[idx])} at index {idx}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _is_sparse(X: object) -> bool:
    # Duck-typed so that scipy stays optional: scipy.sparse matrices and arrays.
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "toarray")


def _sparse_to_dense(X: object, name: str) -> np.ndarray:
    shape = tuple(getattr(X, "shape", ()))
    if len(shape) != 2:
        raise ValueError(f"{name} must be two-dimensional (n_samples, n_features), got shape {shape}")
    data = np.asarray(X.data)  # type: ignore[attr-defined]
    if data.dtype == object or not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise TypeError(
            f"{name} must be a numeric or boolean sparse matrix of 0/1 values, got dtype {data.dtype}"
        )
    if np.issubdtype(data.dtype, np.complexfloating):
        raise ValueError(
            f"Complex data not supported: {name} must be real 0/1 values, got dtype {data.dtype}"
        )
    if np.issubdtype(data.dtype, np.floating) and np.isnan(data).any():
        raise ValueError(f"{name} contains NaN")
    if data.dtype != np.bool_ and ((data != 0) & (data != 1)).any():
        bad = data[(data != 0) & (data != 1)][0]
        raise ValueError(f"{name} must contain only 0 and 1, found {shown(bad)} among its stored values")
    return np.asarray(X.astype(np.uint8).toarray())  # type: ignore[attr-defined]


def as_real_array(x: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``x`` as a finite C-contiguous ``float64`` array of the given shape."""
    arr = np.asarray(x)
    if (
        arr.dtype == object
        or not np.issubdtype(arr.dtype, np.number)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


# ----------------------------------------------------------------------------- scalar settings
# Settings arrive as Python or numpy scalars (np.arange grids, np.float32 learning rates); each
# check returns the plain Python value, so that JSON metadata and the C++ core accept it.

INT32_MAX = 2**31 - 1  # the core takes these as C++ int


def _type_name(value: object) -> str:
    return type(value).__name__


def shown(value: object) -> str:
    """``repr`` of a value for a message, with numpy scalars and arrays as plain numbers and lists.

    A message says ``got 0.48``, not ``got np.float64(0.48)`` (numpy 2's repr of its scalars).
    """
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    return repr(value)


def as_int(
    value: object, name: str, *, minimum: int | None = None, maximum: int | None = None, why_max: str = ""
) -> int:
    """``value`` as a Python int, rejecting bools, floats (2.5 and 3.0 alike) and strings.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it lies outside ``[minimum, maximum]``; ``why_max`` explains the upper bound.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {shown(value)} of type {_type_name(value)}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be at most {maximum}{why_max}, got {v}")
    return v


def as_float(
    value: object,
    name: str,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = True,
    upper_open: bool = True,
) -> float:
    """``value`` as a finite Python float within the given bounds (open unless told).

    Raises
    ------
    TypeError
        If ``value`` is not a real number (a string such as ``'0.1'``, a bool, None, ...).
    ValueError
        If it is NaN, infinite or out of bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {shown(value)} of type {_type_name(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if lower is not None and (v < lower or (lower_open and v == lower)):
        raise ValueError(f"{name} must be {'>' if lower_open else '>='} {lower}, got {v}")
    if upper is not None and (v > upper or (upper_open and v == upper)):
        raise ValueError(f"{name} must be {'<' if upper_open else '<='} {upper}, got {v}")
    return v


def as_bool(value: object, name: str) -> bool:
    """``value`` as a Python bool; only ``bool`` and ``numpy.bool_`` are booleans (not "no", not 1)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {shown(value)} of type {_type_name(value)}")
    return bool(value)


def as_seed(value: object, name: str) -> int | None:
    """A seed: None or a non-negative integer of any size (hashed by ``numpy.random.SeedSequence``)."""
    if value is None:
        return None
    return as_int(value, name, minimum=0)


def as_onehot_states(states: object, name: str, n_states: int) -> np.ndarray:
    """One-hot hidden states as int64 indices in ``[0, n_states)``; any shape.

    Raises
    ------
    TypeError
        If the states are not integers (1.7 is no state).
    ValueError
        If one lies outside ``[0, n_states)`` (negative indices are not states either).
    """
    s = np.asarray(states)
    if s.dtype == np.bool_ or not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"{name} must be integer hidden states in [0, {n_states}), got dtype {s.dtype}")
    if s.size and (s.min() < 0 or s.max() >= n_states):
        bad = s[(s < 0) | (s >= n_states)].ravel()[0]
        raise ValueError(f"{name} must be one-hot hidden states in the range [0, {n_states}), found {bad}")
    return s.astype(np.int64)


# ----------------------------------------------------------------------------- memory
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit() -> int | None:
    """Bytes this process may still use at most (None if unknown).

    The smallest of: physical memory, the cgroup's limit (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``), and the address space that ``RLIMIT_AS`` (``ulimit -v``) leaves
    beside what the process has already mapped (that limit counts mappings, not pages in use).
    """
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    for f in _CGROUP_LIMITS:
        try:
            with open(f) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    address_space = _address_space_left()
    if address_space is not None:
        limits.append(max(address_space, 1))
    limits = [x for x in limits if x > 0]
    return min(limits) if limits else None


def _address_space_left() -> int | None:
    """``RLIMIT_AS`` minus the process's mapped size (``/proc/self/statm``), or None without a limit."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    try:
        with open("/proc/self/statm") as fh:
            mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return soft - mapped


def format_bytes(n: float) -> str:
    """Bytes in human units (powers of 1024)."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(needed: int, what: str, advice: str) -> None:
    """Refuse at once, before allocating, a job that needs more memory than this process may use.

    The limit is :func:`memory_limit`: physical memory, the cgroup's limit and ``RLIMIT_AS``.

    Raises
    ------
    MemoryError
        Saying how much ``what`` would take, how much there is, and what to change.
    """
    limit = memory_limit()
    if limit is not None and needed > limit:
        raise MemoryError(
            f"{what} would need about {format_bytes(needed)} of memory, more than the "
            f"{format_bytes(limit)} this process may use; {advice}"
        )
