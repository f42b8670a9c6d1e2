"""The report of a plain sweep: report.md (mean ± standard deviation per grid point) and summary.png.

A sweep with ``[diagnostics] report = "reproduce"`` writes the reproduction's report
instead (:mod:`nemm.reproduce.report`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nemm._io import atomic_open

if TYPE_CHECKING:
    from nemm.config import SweepConfig
    from nemm.sweep import RunSpec

__all__ = ["report_markdown", "summary_figure"]

# Columns plotted in the summary figure (the error bars and counts are not).
_PLOTTED = (
    "loglik",
    "sigma",
    "tau",
    "trace",
    "class_kl",
    "tau_int_class",
    "cover_time",
    "class_kl_samples",
    "mixture_loglik",
    "rbm_loglik",
)


def _jsonable(v: Any) -> Any:
    return [_jsonable(x) for x in v] if isinstance(v, tuple) else v


def _finite(vals: Sequence[Any]) -> np.ndarray:
    a = np.array(
        [v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in vals], float
    )
    return a[np.isfinite(a)]


def report_markdown(
    config: SweepConfig,
    specs: Sequence[RunSpec],
    rows: Sequence[Mapping[str, Any]],
    results: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str],
    X: np.ndarray,
) -> str:
    axes = [k for k, _ in config.axes]
    shown = [c for c in columns if c in _PLOTTED]
    ok = [r for r in rows if r.get("status") == "ok"]
    train = _finite([results[s.run_id].get("train_seconds") for s in specs])
    lines = [
        "# Sweep report",
        "",
        f"Configuration: `{config.source}`; data: {X.shape[0]} rows of {X.shape[1]} bits "
        f"(sha256 {specs[0].data_checksum[:12] if specs else '-'}).",
        f"{len(rows)} runs ({len(config.grid())} grid points x {len(config.seeds)} seeds): "
        f"{len(ok)} finished, {len(rows) - len(ok)} failed. Training time summed over runs: {train.sum():.1f} s.",
        "",
        "Every run's row is in `results.csv`; `summary.png` plots each measure against each swept axis.",
        "",
        "## Mean ± standard deviation over seeds",
        "",
    ]
    head = (axes or ["(all)"]) + ["runs"] + shown
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    n_seeds = len(config.seeds)
    for g in range(len(config.grid())):
        group = rows[g * n_seeds : (g + 1) * n_seeds]
        cells = [str(group[0][a]) for a in axes] or ["all"]
        good = [r for r in group if r.get("status") == "ok"]
        cells.append(f"{len(good)}/{len(group)}")
        for c in shown:
            v = _finite([r.get(c) for r in good])
            cells.append(
                f"{v.mean():.4g} ± {v.std():.2g}" if v.size > 1 else (f"{v[0]:.4g}" if v.size else "–")
            )
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""]
        for r in failed:
            what = ", ".join(f"{k} = {r[k]}" for k in axes + ["seed"])
            lines.append(f"- `{r['run_id']}` ({what}): {r.get('error')}")
    return "\n".join(lines) + "\n"


def summary_figure(
    config: SweepConfig, rows: Sequence[Mapping[str, Any]], path: Path, table_columns: Sequence[str]
) -> Path | None:
    """Each measure (rows) against each swept axis (columns): one dot per run, the mean as a bar."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn("matplotlib is not installed: no summary.png (pip install 'nemm[plots]')", stacklevel=2)
        return None
    axes = [(k, [_jsonable(v) for v in vals]) for k, vals in config.axes] or [("seed", list(config.seeds))]
    measures = [c for c in table_columns if c in _PLOTTED]
    if not measures:
        return None
    ok = [r for r in rows if r.get("status") == "ok"]
    fig = Figure(figsize=(3.2 * len(axes), 2.4 * len(measures)), layout="constrained")
    grid = fig.subplots(len(measures), len(axes), squeeze=False)
    for i, m in enumerate(measures):
        for j, (key, values) in enumerate(axes):
            ax = grid[i][j]
            labels = [str(v) for v in values]
            for pos, v in enumerate(values):
                vals = _finite([r.get(m) for r in ok if r.get(key) == v])
                if vals.size:
                    offs = np.linspace(-0.15, 0.15, vals.size) if vals.size > 1 else np.zeros(1)
                    ax.plot(pos + offs, vals, "o", ms=3, color="#1f77b4", alpha=0.7)
                    ax.plot([pos - 0.25, pos + 0.25], [vals.mean()] * 2, "-", color="#d62728", lw=2)
            ax.set_xticks(range(len(values)), labels)
            ax.set_xlim(-0.5, len(values) - 0.5)
            if i == len(measures) - 1:
                ax.set_xlabel(key)
            if j == 0:
                ax.set_ylabel(m)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    return path
