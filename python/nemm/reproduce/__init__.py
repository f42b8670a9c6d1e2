"""Reproduce the paper's section IV: many seeds, diagnostics, baselines, figures and a report.

* :mod:`nemm.reproduce.driver`: :func:`reproduce`, a built-in sweep (:func:`reproduce_config` is its TOML)
  of every model (kinds nemm, rbm, tied, mixture), run by :func:`nemm.sweep.run_sweep`;
* :mod:`nemm.reproduce.kind`: the sweep's report kind ``"reproduce"`` (registered on import of this package:
  the sweep runs it, it is not imported by the sweep);
* :mod:`nemm.reproduce.records`: :func:`~nemm.reproduce.records.run_record`, one model trained and measured;
* :mod:`nemm.reproduce.report`: the report, tables and figures, written from the results table alone
  (:func:`write_report`, :func:`rebuild_report`);
* :mod:`nemm.reproduce.regimes`: :func:`classify_regime` and its thresholds.

The command line is ``nemm reproduce [--quick] [--out DIR] [--compare normalization] ...`` (:mod:`nemm.cli`).
"""

from __future__ import annotations

from nemm.reproduce import kind as _kind  # noqa: F401  (registers the report kind "reproduce" with the sweep)
from nemm.reproduce.driver import (
    KINDS,
    MIXING_STEPS,
    QUICK_EPOCHS,
    QUICK_SEEDS,
    ReproduceOptions,
    reproduce,
    reproduce_config,
)
from nemm.reproduce.regimes import CYCLE_SIGMA, NEAR_EQ_SIGMA, REGIMES, classify_regime, regime_rules
from nemm.reproduce.report import rebuild_report, write_report

__all__ = [
    "CYCLE_SIGMA",
    "KINDS",
    "MIXING_STEPS",
    "NEAR_EQ_SIGMA",
    "QUICK_EPOCHS",
    "QUICK_SEEDS",
    "REGIMES",
    "ReproduceOptions",
    "classify_regime",
    "rebuild_report",
    "regime_rules",
    "reproduce",
    "reproduce_config",
    "write_report",
]
