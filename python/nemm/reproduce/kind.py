"""The report kind ``"reproduce"`` of a sweep: nemm reproduce's runs, records, table and report.

A sweep with ``[diagnostics] report = "reproduce"`` lists, after every grid point's
seeds (kind nemm), the ``[baselines]`` runs of other kinds (rbm, tied, mixture) once
each; measures every run with :func:`nemm.reproduce.records.run_record`; and writes
the reproduction's table, report and figures (:mod:`nemm.reproduce.report`).
Importing :mod:`nemm.reproduce` registers it with :func:`nemm.sweep.register_report_kind`.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from nemm.reproduce import records
from nemm.reproduce import report as rr
from nemm.sweep import (
    ReportKind,
    RunList,
    RunSpec,
    SweepOutput,
    baseline_values,
    machine_settings,
    register_report_kind,
)

__all__ = ["REPRODUCE"]

# Settings shown in the leading columns of every row, whatever the axes.
_SHOWN = ("normalization", "hidden", "n_hidden", "centered")


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, tuple) else v


def expand(config: Any, checksum: str) -> list[RunSpec]:
    """The runs of kind nemm (grid points x seeds), then those of the ``[baselines]`` kinds of every grid point.

    A baseline that does not depend on an axis (the RBM under a normalization axis) is one
    run, found by its id. The leading columns (``swept``) are ``kind``, ``variant`` (the grid
    point; "shared" for a baseline of several), ``seed`` and the settings the table shows.
    """
    from nemm.rbm import RBM

    axes = [k for k, _ in config.axes]
    grid = config.grid()
    runs = RunList(config, checksum)

    def labels(
        kind: str, variant: str, seed: int, m: Mapping[str, Any], point: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "variant": variant,
            "seed": int(seed),
            "normalization": m["normalization"],
            "hidden": m["hidden"],
            "n_hidden": int(m["n_hidden"]),
            "centered": bool(m["centered"]),
            **{k: _plain(point[k]) for k in axes if k not in _SHOWN},
        }

    names = [
        "/".join(str(_plain(p[k])) for k in axes) or str(machine_settings(p, 0)["normalization"])
        for p in grid
    ]
    for point, name in zip(grid, names):
        for seed in config.seeds:
            m = machine_settings(point, seed)
            runs.add("nemm", m, labels("nemm", name, seed, m, point), seed, config.baselines.as_dict())
    bl = config.baselines
    for point, name in zip(grid, names):
        shared = "shared" if len(grid) > 1 else name
        m0 = machine_settings(point, 0)
        for seed in bl.rbm_seeds:
            rbm = RBM(int(m0["n_hidden"]), hidden=m0["hidden"], random_state=int(seed)).get_params()
            rbm.pop("verbose", None)
            runs.add("rbm", rbm, labels("rbm", shared, seed, m0, point), seed, {})
        # The tied machine samples like an RBM: eq. 19's sigmoid ratio does not apply to it (softmax kernel).
        for seed in bl.tied_seeds:
            m = machine_settings({**point, "normalization": "softmax", "tied": True}, seed)
            runs.add("tied", m, labels("tied", shared, seed, m, point), seed, {})
        if bl.mixture_restarts:
            mix = {"n_components": int(m0["n_hidden"]), "n_init": int(bl.mixture_restarts), "random_state": 0}
            runs.add("mixture", mix, labels("mixture", shared, 0, m0, point), 0, {})
    return runs.specs


def run(spec: RunSpec, X: np.ndarray, y: np.ndarray | None) -> tuple[dict[str, Any], Any]:
    """The record of one run (:func:`nemm.reproduce.records.run_record`), with the baselines of a nemm run."""
    values, model = records.run_record(
        spec.kind, spec.settings, X, y, spec.diagnostics, data_key=spec.data_checksum
    )
    if spec.kind == "nemm":
        values.update(baseline_values(spec, X))
    return values, model


def columns(config: Any) -> list[str]:
    """The reproduction's table columns (:data:`nemm.reproduce.report.CSV_COLUMNS`), the other axes after its settings."""
    cols = rr.CSV_COLUMNS
    return list(cols[:7]) + [k for k, _ in config.axes if k not in cols] + list(cols[7:])


def write(o: SweepOutput) -> dict[str, Any]:
    """The reproduction's results dictionary; its table, report and figures written when the table changed."""
    res = rr.assemble_sweep(
        o.config,
        o.specs,
        o.results,
        o.columns,
        data=o.data_description,
        n_jobs=o.n_jobs,
        seconds=time.perf_counter() - o.started,
        protocol=o.protocol,
    )
    csv_path = o.out / "results.csv"
    old = csv_path.read_text(encoding="utf-8") if csv_path.exists() else None
    if old != rr.csv_of(res) or not (o.out / "report.md").exists():
        draw = o.figures and importlib.util.find_spec("matplotlib") is not None and res["seeds"]
        t_figures = time.perf_counter()
        figures = rr.draw_figures(res, o.out, o.map_fn) if draw else None
        # The report's time is the whole run's: the runs, then the figures (seconds on 2 cores).
        res["figure_seconds"] = time.perf_counter() - t_figures
        res["seconds"] = time.perf_counter() - o.started
        rr.write_tables(res, o.out, figures)
    else:
        res["files"] = {
            "report": str(o.out / "report.md"),
            "results_csv": str(csv_path),
            "results_json": str(o.out / "results.json"),
        }
    return res


REPRODUCE = ReportKind("reproduce", expand=expand, run=run, columns=columns, write=write)
register_report_kind(REPRODUCE)
