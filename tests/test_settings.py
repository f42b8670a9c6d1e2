"""nemm._settings: every setting declared once, and what is derived from it (validation, options, docs)."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np
import pytest

import nemm
from nemm import _settings
from nemm._settings import DIAGNOSTICS_SETTINGS, MACHINE_SETTINGS, RBM_SETTINGS, Setting
from nemm.cli import _REPRODUCE_SETTINGS, build_parser
from nemm.config import DiagnosticsConfig
from nemm.reproduce import ReproduceOptions

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("cls, table", [(nemm.Machine, MACHINE_SETTINGS), (nemm.RBM, RBM_SETTINGS)])
def test_the_constructors_take_the_tables_settings_with_their_defaults(
    cls: type, table: tuple[Setting, ...]
) -> None:
    # The explicit signatures (scikit-learn reads them) and the table say the same.
    params = inspect.signature(cls.__init__).parameters
    assert [n for n in params if n != "self"] == [s.name for s in table]
    assert {n: p.default for n, p in params.items() if n != "self"} == _settings.defaults(table)
    assert list(cls().get_params()) == [s.name for s in table]


def test_the_defaults_pass_their_own_checks() -> None:
    for table in (MACHINE_SETTINGS, RBM_SETTINGS, DIAGNOSTICS_SETTINGS):
        for s in table:
            assert s.accepts(s.default), s.name
            assert s.describe()


@pytest.mark.parametrize(
    "s, bad",
    [
        (_settings.setting(MACHINE_SETTINGS, "n_hidden"), 0),
        (_settings.setting(MACHINE_SETTINGS, "n_hidden"), 2.0),
        (_settings.setting(MACHINE_SETTINGS, "hidden"), "potts"),
        (_settings.setting(MACHINE_SETTINGS, "rho"), 1.0),
        (_settings.setting(MACHINE_SETTINGS, "learning_rate"), 0),
        (_settings.setting(MACHINE_SETTINGS, "batch_size"), (8, 0)),
        (_settings.setting(MACHINE_SETTINGS, "centered"), 1),
        (_settings.setting(MACHINE_SETTINGS, "random_state"), -1),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(s: Setting, bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match=s.name.split("[")[0]):
        s.check(bad)
    assert not s.accepts(bad)


def test_checks_return_plain_python_values() -> None:
    got = _settings.check_settings(
        MACHINE_SETTINGS,
        {
            **_settings.defaults(MACHINE_SETTINGS),
            "n_hidden": np.int64(3),
            "batch_size": np.int32(8),
            "learning_rate": np.float32(0.5),
        },
    )
    assert (
        type(got["n_hidden"]) is int and got["batch_size"] == (8, 8) and type(got["learning_rate"]) is float
    )


def test_the_documentation_table_is_the_tables() -> None:
    assert (DOCS / "settings.md").read_text(encoding="utf-8") == _settings.settings_document()
    for s in MACHINE_SETTINGS:
        assert f"| `{s.name}` | `{s.default!r}` |" in _settings.markdown_table(MACHINE_SETTINGS)


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]  # type: ignore[no-any-return]


def test_train_options_are_the_tables_flags_and_absent_unless_given() -> None:
    p = _subparser("train")
    flags = {o for a in p._actions for o in a.option_strings}
    assert {s.flag for s in MACHINE_SETTINGS if s.flag} <= flags
    args = p.parse_args([])
    assert _settings.given_settings(args, MACHINE_SETTINGS) == {}  # the Machine's own defaults then apply
    args = p.parse_args(
        ["--hidden", "4", "--no-centering", "--tied", "--batch-size", "8", "32", "--lr", "0.05"]
    )
    assert _settings.given_settings(args, MACHINE_SETTINGS) == {
        "n_hidden": 4,
        "centered": False,
        "tied": True,
        "batch_size": (8, 32),
        "learning_rate": 0.05,
    }


def test_reproduce_options_default_to_the_machines_settings() -> None:
    o = ReproduceOptions()
    machine = _settings.defaults(MACHINE_SETTINGS)
    for name in _REPRODUCE_SETTINGS:
        assert getattr(o, name) == machine[name]
    assert o.track_steps == _settings.TRACK_STEPS and o.diag_steps == _settings.DIAGNOSTIC_STEPS
    args = _subparser("reproduce").parse_args(["--hidden", "3", "--no-centering", "--epochs", "4"])
    from nemm.cli import _reproduce_options

    assert _reproduce_options(args) == ReproduceOptions(n_hidden=3, centered=False, n_epochs=4)
    with pytest.raises(TypeError, match="unknown reproduce option"):
        ReproduceOptions.of(None, {"n_hiden": 3})


def test_the_diagnostics_config_defaults_are_the_table() -> None:
    d = DiagnosticsConfig()
    assert {s.name: getattr(d, s.name) for s in DIAGNOSTICS_SETTINGS} == _settings.defaults(
        DIAGNOSTICS_SETTINGS
    )
