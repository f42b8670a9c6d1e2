"""nemm.results: the one JSON/CSV serializer."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemm.results import as_float, csv_text, csv_value, to_json, to_jsonable, write_csv, write_json


@dataclass
class _Rec:
    name: str
    value: float
    arr: np.ndarray
    hidden: list = field(default_factory=list, metadata={"json": False})


class _Pair(NamedTuple):
    a: int
    b: float


def test_to_jsonable_types() -> None:
    rec = _Rec("x", np.float32(1.5), np.arange(3, dtype=np.int16), [1, 2])
    out = to_jsonable(
        {
            "r": rec,
            "p": _Pair(np.int64(2), math.inf),
            "n": None,
            "t": (np.bool_(True), -math.inf),
            "path": Path("a/b"),
        }
    )
    assert out == {
        "r": {"name": "x", "value": 1.5, "arr": [0, 1, 2]},
        "p": {"a": 2, "b": "inf"},
        "n": None,
        "t": [True, "-inf"],
        "path": "a/b",
    }
    assert type(out["r"]["arr"][0]) is int
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())


def test_json_is_strict_and_round_trips(tmp_path: Path) -> None:
    obj = {"nan": math.nan, "x": [1.25, np.float64(-3.0)]}
    text = to_json(obj)
    back = json.loads(text, parse_constant=lambda c: pytest.fail(c))
    assert back == {"nan": "nan", "x": [1.25, -3.0]}
    path = write_json(tmp_path / "o.json", obj)
    assert json.loads(path.read_text()) == back
    assert not list(tmp_path.glob(".*.tmp"))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_cells_read_back_exactly(x: float) -> None:
    y = as_float(csv_value(x))
    assert (math.isnan(x) and math.isnan(y)) or y == x
    y = as_float(to_jsonable(x))
    assert (math.isnan(x) and math.isnan(y)) or y == x


def test_csv_from_dataclasses_and_mappings(tmp_path: Path) -> None:
    rows = [_Rec("a", 0.1, np.array([1.0, 2.5])), {"name": "b", "value": None, "arr": [3]}]
    text = csv_text(rows, ("name", "value", "arr", "missing"))
    assert text.splitlines() == ["name,value,arr,missing", "a,0.1,1.0 2.5,", "b,,3,"]
    path = write_csv(tmp_path / "t.csv", rows, ("name", "value"))
    with open(path, newline="") as fh:
        got = list(csv.DictReader(fh))
    assert got == [{"name": "a", "value": "0.1"}, {"name": "b", "value": ""}]
    assert math.isnan(as_float(got[1]["value"])) and as_float(None) != as_float(None)
