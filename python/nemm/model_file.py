"""The nemm model file: npz arrays with a JSON ``metadata`` string, never a pickle.

One module owns the format for every model of the family (the machine, "nemm-machine", and
the equilibrium RBM, "nemm-rbm"): the path suffix, the metadata header, the history arrays,
the atomic write, the checks on reading (zip magic, object arrays, metadata, versions,
settings, the ``train/*`` arrays of the training state, the persistent chains' dtypes), and the
bytes used for pickling. What each model's file holds (its format name and version, its
arrays) is the model module's (``nemm.machine``, ``nemm.rbm``, through ``nemm._estimator``);
each registers a reader for its ``format`` with :func:`register_format`. This module imports
none of them, so :func:`load` dispatches without an import cycle.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from nemm import _core
from nemm._checks import check_memory, format_bytes
from nemm._io import atomic_open, check_readable

__all__ = ["register_format", "load"]

#: The persistent chains' arrays of a version-2 training state (``train/<name>``), as the engines'
#: ``chain_state()`` gives them: both models hold them (the RBM under PCD only).
CHAIN_ARRAYS = ("visible", "z", "rng", "lanes")
CHAIN_DTYPES = {"visible": np.uint8, "z": np.uint64, "rng": np.uint64, "lanes": np.uint32}

Reader = Callable[[Any, dict[str, Any], "Path | str"], Any]

#: Readers by metadata ``format``; the model modules register here (``nemm.machine`` adds
#: "nemm-machine", ``nemm.rbm`` adds "nemm-rbm").
_FORMATS: dict[str, Reader] = {}


def register_format(name: str, reader: Reader) -> None:
    """Let :func:`load` read files whose metadata ``format`` is ``name`` with ``reader(npz, meta, path)``."""
    _FORMATS[name] = reader


# ---------------------------------------------------------------------------- writing
def npz_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.npz`` appended if it had another suffix (or none)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    return path


def metadata(
    fmt: str, version: int, settings: dict[str, Any], epochs_done: int, history: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON header every model file starts from."""
    return {
        "format": fmt,
        "format_version": version,
        "nemm_version": _core.__version__,
        "settings": settings,
        "epochs_done": int(epochs_done),
        "history_keys": sorted(history),
    }


def history_arrays(history: Mapping[str, Any], *, keep_integers: bool) -> dict[str, np.ndarray]:
    """``history/<key>`` arrays; with ``keep_integers``, integer series (epoch, batch_size) stay int64."""
    arrays = {}
    for k, v in history.items():
        is_int = keep_integers and all(
            isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) for x in v
        )
        arrays[f"history/{k}"] = np.asarray(v, dtype=np.int64 if is_int and len(v) else float)
    return arrays


def write(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` to ``npz_path(path)`` atomically (see ``nemm._io.atomic_open``); return that path."""
    path = npz_path(path)
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)
    return path


def to_bytes(arrays: Mapping[str, Any]) -> bytes:
    """The bytes of the model file holding ``arrays`` (what pickling carries)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def from_bytes(data: bytes, what: str) -> Any:
    """The model whose file bytes are ``data`` (``to_bytes``); ``what`` names it in errors."""
    return _read_archive(io.BytesIO(data), what)


# ---------------------------------------------------------------------------- reading
def load(path: str | os.PathLike[str]) -> Any:
    """Load a model saved by :meth:`nemm.Machine.save` or :meth:`nemm.RBM.save` (never unpickles).

    The metadata ``format`` picks the class: "nemm-machine" gives a :class:`nemm.Machine`,
    "nemm-rbm" a :class:`nemm.RBM`.

    Raises
    ------
    ValueError
        If the file is not a nemm model, has an unsupported format version, or its
        arrays are malformed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    check_readable(path)
    with open(path, "rb") as fh:  # our own handle: numpy leaks its own on a corrupt archive
        return _read_archive(fh, path)


def _read_archive(fh: IO[bytes], path: Path | str) -> Any:
    """The model in the npz archive open as ``fh``; ``path`` names it in every error."""
    head = fh.read(6)
    fh.seek(0)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # Judged before numpy, which takes any other bytes for a pickle and advises allow_pickle=.
        what = "it is a .npy array" if head == b"\x93NUMPY" else "it is not an npz (zip) archive"
        raise ValueError(f"{path} is not a readable nemm model file: {what}")
    try:
        npz = np.load(fh, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("not an npz archive")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable nemm model file (npz): {exc}") from exc
    try:
        return read(npz, path)
    except (KeyError, TypeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path} is a corrupt nemm model file: {exc}") from exc
    except ValueError as exc:
        if "allow_pickle" not in str(exc):  # numpy's advice for object arrays is not ours to give
            raise
        raise ValueError(
            f"{path} is not a readable nemm model file: it holds Python objects (an object "
            "array), which nemm never unpickles"
        ) from exc
    finally:
        npz.close()


#: Bytes of memory per byte of arrays in a model file, at most, while it loads: the engines keep
#: each parameter array several times (optimizer state, rollback snapshots) and the history
#: becomes Python lists (32 bytes per 8-byte number).
LOAD_AMPLIFICATION = 8


def declared_shape(npz: Any, name: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """The shape and dtype array ``name`` declares in its .npy header, and its bytes in the archive.

    Read from the header alone: nothing of the array is allocated.
    """
    members = set(npz.zip.namelist())
    member = f"{name}.npy" if f"{name}.npy" in members else name
    with npz.zip.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"array {name!r} has .npy format version {version}, which nemm does not write")
    return tuple(int(n) for n in shape), dtype, int(npz.zip.getinfo(member).file_size)


def check_declared_sizes(npz: Any, path: Path | str) -> None:
    """Refuse, before reading any array, a file whose arrays declare more than they hold or than memory allows.

    A few compressed bytes can declare gigabytes: every array's declared size must fit in the
    bytes stored for it, and all of them, times :data:`LOAD_AMPLIFICATION`, in the memory
    this process may use.
    """
    total = 0
    for name in npz.files:
        shape, dtype, stored = declared_shape(npz, name)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > stored:
            raise ValueError(
                f"{path}: array {name!r} declares shape {shape} of {dtype} ({nbytes} bytes), but the "
                f"file holds only {stored} bytes of it"
            )
        total += nbytes
    check_memory(
        total * LOAD_AMPLIFICATION,
        f"loading {path} ({format_bytes(total)} of arrays)",
        "the model is too large for this process",
    )


def read(npz: Any, path: Path | str) -> Any:
    """The model in an opened npz, by the reader registered for its metadata ``format``."""
    if "metadata" not in npz.files:
        raise ValueError(f"{path} is not a nemm model file (no metadata)")
    check_declared_sizes(npz, path)
    try:
        meta = json.loads(str(npz["metadata"][()]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt metadata: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: corrupt metadata: nested too deeply to be nemm's") from exc
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if not isinstance(fmt, str) or fmt not in _FORMATS:
        raise ValueError(
            f"{path} is not a nemm model file (metadata format {fmt!r} is not one of "
            f"{', '.join(map(repr, sorted(_FORMATS)))})"
        )
    return _FORMATS[fmt](npz, meta, path)


def check_version(
    meta: dict[str, Any], path: Path | str, readable: Iterable[int], what: str = "model"
) -> int:
    """The metadata's ``format_version``, or a ValueError naming the versions this nemm reads."""
    readable = tuple(readable)
    version = meta.get("format_version")
    if version not in readable or isinstance(version, bool):
        plural = "versions" if len(readable) > 1 else "version"
        raise ValueError(
            f"{path} has {what} format version {version!r}; this nemm reads {plural} "
            f"{', '.join(map(str, readable))}"
        )
    return int(version)


def require_arrays(npz: Any, names: Iterable[str], path: Path | str) -> None:
    """A ValueError listing the arrays of ``names`` that the file lacks."""
    missing = [k for k in names if k not in npz.files]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}")


def read_settings(meta: dict[str, Any], known: Iterable[str], path: Path | str) -> dict[str, Any]:
    """The metadata's settings (a copy), refusing any the reading class does not know."""
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: metadata has no settings")
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown} (written by a newer nemm?)")
    return dict(settings)


def read_history(npz: Any, meta: dict[str, Any], path: Path | str) -> tuple[dict[str, list[Any]], int]:
    """The history lists and the number of epochs done (at most one history row per epoch)."""
    epochs = meta.get("epochs_done", 0)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"{path}: epochs_done must be a non-negative integer, got {epochs!r}")
    keys = meta.get("history_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{path}: history_keys must be a list of names, got {keys!r}")
    history = {}
    for k in keys:
        name = f"history/{k}"
        if name not in npz.files:
            continue
        shape = declared_shape(npz, name)[0]
        if not shape or shape[0] > epochs:  # rows may be vectors (diagnostics' occupancy)
            raise ValueError(
                f"{path}: {name} has shape {shape}; the history holds at most one row per epoch, "
                f"and {epochs} epochs are done"
            )
        history[k] = npz[name].tolist()
    return history, epochs


def read_training_arrays(
    npz: Any, train: Any, names: Iterable[str], path: Path | str, n_chains: int | None = None
) -> dict[str, np.ndarray]:
    """The ``train/<name>`` arrays of a version-2 file: all there, and the chains' of the engines' dtypes.

    ``train`` is the metadata's ``train`` entry, which must be a dict. With ``n_chains`` (the
    settings' number of persistent chains), the chains' arrays must hold that many.
    """
    names = tuple(names)
    missing = [k for k in names if f"train/{k}" not in npz.files]
    if not isinstance(train, dict) or missing:
        raise ValueError(f"{path}: incomplete training state (missing {missing or 'metadata'})")
    if n_chains is not None:  # checked before the chains are read: a few bytes can declare millions
        for k in CHAIN_ARRAYS:
            shape = declared_shape(npz, f"train/{k}")[0] if k in names else (n_chains,)
            if not shape or shape[0] != n_chains:
                raise ValueError(
                    f"{path}: train/{k} has shape {shape}, but the settings say n_chains={n_chains}"
                )
    a = {k: npz[f"train/{k}"] for k in names}
    for k, dt in CHAIN_DTYPES.items():
        if k in a and a[k].dtype != dt:
            raise ValueError(f"{path}: train/{k} must be {np.dtype(dt).name}, got {a[k].dtype}")
    return a
