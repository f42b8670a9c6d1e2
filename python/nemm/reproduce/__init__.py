"""Reproduce the paper's section IV: many seeds, diagnostics, baselines, figures and a report.

* :mod:`nemm.reproduce.driver`: :func:`reproduce`, training and measuring every model (kinds nemm, rbm,
  tied, mixture) in worker processes;
* :mod:`nemm.reproduce.report`: the report, tables and figures, written from the results table alone
  (:func:`write_report`, :func:`rebuild_report`);
* :mod:`nemm.reproduce.regimes`: :func:`classify_regime` and its thresholds.

The command line is ``nemm reproduce [--quick] [--out DIR] [--compare normalization] ...`` (:mod:`nemm.cli`).
"""

from __future__ import annotations

from nemm.reproduce.driver import KINDS, MIXING_STEPS, QUICK_EPOCHS, QUICK_SEEDS, reproduce
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
    "classify_regime",
    "rebuild_report",
    "regime_rules",
    "reproduce",
    "write_report",
]
