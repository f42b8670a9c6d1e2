"""One serializer for every result nemm writes: dataclasses (and dicts of them) to JSON and CSV.

Diagnostics return dataclasses; reproduce, the benchmarks and the figures write
their tables through :func:`write_json` and :func:`write_csv`. Non-finite floats
are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` in JSON (strict
JSON has no infinities) and as ``inf``/``-inf``/``nan`` in CSV; :func:`as_float`
reads them back.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nemm._io import atomic_open

__all__ = [
    "as_float",
    "csv_text",
    "csv_value",
    "to_json",
    "to_jsonable",
    "write_csv",
    "write_json",
    "write_text",
]


def to_jsonable(obj: Any) -> Any:
    """Recursively convert to JSON-safe Python types.

    Dataclasses and NamedTuples become dicts (field order kept; dataclass fields
    with ``metadata={"json": False}`` are left out), numpy scalars and
    arrays become ints, floats and lists, non-finite floats the strings
    ``"inf"``, ``"-inf"`` and ``"nan"``, paths strings.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("json", True)
        }
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "_asdict"):
        return to_jsonable(obj._asdict())
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def to_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`; infinities as ``"inf"``)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, **kwargs)


def as_float(v: Any) -> float:
    """A float from a number, ``None`` (NaN) or a JSON/CSV string such as ``"inf"``."""
    if v is None or v == "":
        return float("nan")
    return float(v)


def csv_value(v: Any) -> str:
    """One CSV cell: ``""`` for None, space-separated lists, ``repr`` of floats (all digits)."""
    if v is None:
        return ""
    if isinstance(v, (list, tuple, np.ndarray)):
        return " ".join(csv_value(x) for x in v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)
    return str(v)


def _row(record: Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return record


def csv_text(rows: Iterable[Any], columns: Sequence[str]) -> str:
    """CSV text with a header of ``columns`` and one line per record (a dataclass or a mapping)."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(columns)
    for r in rows:
        row = _row(r)
        wr.writerow([csv_value(row.get(c)) for c in columns])
    return buf.getvalue()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) through a temporary file and a rename; return the path."""
    path = Path(path)
    with atomic_open(path) as fh:
        fh.write(text.encode("utf-8"))
    return path


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON (:func:`to_json`) atomically; return the path."""
    return write_text(path, to_json(obj, indent=indent))


def write_csv(path: str | os.PathLike[str], rows: Iterable[Any], columns: Sequence[str]) -> Path:
    """Write records as CSV (:func:`csv_text`) atomically; return the path."""
    return write_text(path, csv_text(rows, columns))
