"""Figures of the paper's section IV (Figs. 2, 3 and 4) and of the reproduction (mixing, sigma), drawn with matplotlib.

matplotlib is an optional dependency (``pip install "nemm[plots]"``); it is
imported only when a figure is drawn. The figures are ``matplotlib.figure.Figure``
objects, never pyplot, so the user's backend and open windows are left alone.
Every ``draw_*`` function returns a ``Figure``; every ``fig*`` function saves
one as PNG (atomically: a temporary file, then a rename, :func:`save_png`) and
returns its path.

The figure functions take plain data (the per-seed records written by
:func:`nemm.reproduce.reproduce`) or a :class:`~nemm.Machine`, so that they can
be redrawn from ``results.json`` without retraining.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nemm._io import atomic_open
from nemm.results import as_float as _num

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.machine import Machine

__all__ = [
    "KIND_STYLE",
    "REGIME_COLORS",
    "TRAINING_SIGMA_LABEL",
    "draw_fig2",
    "draw_fig3",
    "draw_fig4",
    "draw_mixing",
    "draw_sigma",
    "headline_sigma_label",
    "fig2",
    "fig3",
    "fig4",
    "fig_mixing",
    "fig_sigma",
    "image_shape",
    "save_png",
    "sigma_method_of",
]

#: Colours of the three regimes of :func:`nemm.reproduce.classify_regime`.
REGIME_COLORS = {"near-equilibrium": "#1b9e77", "intermediate": "#7570b3", "cycling": "#d95f02"}
_DPI = 110


def _figure(**kwargs: Any) -> Any:
    """A new ``matplotlib.figure.Figure`` (no pyplot, no backend change), or a clear error."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "nemm's figures need matplotlib, an optional dependency: pip install 'nemm[plots]' "
            "(or pip install matplotlib)"
        ) from exc
    return Figure(**kwargs)


def save_png(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically (Figure.savefig renders with Agg, whatever the backend)."""
    path = Path(path)
    with atomic_open(path) as fh:
        fig.savefig(fh, format="png", dpi=_DPI)
    return path


def _err(v: Any) -> float | None:
    """An error bar for matplotlib: None unless finite and non-negative."""
    e = _num(v)
    return e if np.isfinite(e) and e >= 0 else None


def image_shape(D: int) -> tuple[int, int]:
    """Display shape of a D-pixel image: square when D is a perfect square, else one row."""
    s = int(math.isqrt(int(D)))
    return (s, s) if s * s == D else (1, int(D))


def sigma_method_of(records: Sequence[Mapping[str, Any]]) -> str:
    """The method of the records' headline ``sigma`` (their ``sigma_method``).

    Records written before the converged estimator have no ``sigma_method``: their
    headline was eq. 21 on the Rao-Blackwell M.
    """
    methods = sorted({str(r["sigma_method"]) for r in records if r.get("sigma_method")})
    return (
        ", ".join(SIGMA_METHOD_NAMES.get(m, m) for m in methods)
        if methods
        else "eq. 21 on the Rao–Blackwell M"
    )


#: What each ``sigma_method`` of :func:`nemm.diagnostics.entropy_production_rate` means, for labels.
SIGMA_METHOD_NAMES = {
    "M": "eq. 21 on the importance-sampled M",
    "transitions": "mean ln M(z'|z)/M(z|z') over sampled transitions",
}


def headline_sigma_label(records: Sequence[Mapping[str, Any]]) -> str:
    """The axis label of the headline sigma: ``"σ (headline, <method>)"``."""
    return f"σ (headline, {sigma_method_of(records)})"


#: Axis label of the sigma tracked during training (:func:`nemm.diagnostics.track_epoch`: counting, c = 0.5).
TRAINING_SIGMA_LABEL = "σ_counting (paper, counting, per-epoch chains, pseudo-count 0.5)"


def _variants(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The runs grouped by their ``variant`` in order of appearance (one group when they share one)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(str(r.get("variant") or ""), []).append(r)
    return list(groups.items()) if len(groups) > 1 else [("", list(runs))]


# --------------------------------------------------------------------------- Fig. 2


def fig2(
    runs: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    em_ceiling: float | None = None,
    baselines: Sequence[Mapping[str, Any]] = (),
    training_sigma: str = TRAINING_SIGMA_LABEL,
) -> Path:
    """Save :func:`draw_fig2` of ``runs`` as PNG at ``path``."""
    return save_png(
        draw_fig2(runs, em_ceiling=em_ceiling, baselines=baselines, training_sigma=training_sigma), path
    )


def draw_fig2(
    runs: Sequence[Mapping[str, Any]],
    *,
    em_ceiling: float | None = None,
    baselines: Sequence[Mapping[str, Any]] = (),
    training_sigma: str = TRAINING_SIGMA_LABEL,
) -> Any:
    """Fig. 2 as a ``Figure``: training curves and the final log-likelihood against the entropy production.

    Panels: (a) mean log-likelihood against epoch for every seed, coloured by the
    seed's final headline sigma (colour bar); (b) the sigma tracked during training
    against epoch; (c) final log-likelihood against final headline sigma with error
    bars, the EM ceiling as a dashed line and the baselines (e.g. tied machines, or
    equilibrium RBMs) as squares. Runs of several ``variant`` values get one row of
    panels each (the same colour scale), so that variants are never drawn on top of
    each other; a single variant is one row of three axes.

    Parameters
    ----------
    runs : sequence of dict
        One record per seed with ``seed``, ``loglik`` (exact final), ``sigma``,
        ``sigma_err`` and ``history`` (``epoch``, ``loglik`` on the fly, and
        from tracking ``diag_epoch``, ``sigma_counting``, ``loglik_exact``); optionally
        ``variant`` and ``sigma_method`` (named on the axes).
    em_ceiling : float, optional
        EM mixture log-likelihood (the ceiling of the one-hot model).
    baselines : sequence of dict
        Records of baseline runs (``loglik``, ``sigma``, ``sigma_err``; ``kind`` names them, default "tied").
    training_sigma : str
        Axis label of panel (b): which estimator the history's ``sigma`` is, at which chain length.
    """
    from matplotlib import cm

    sig_all = np.array([_num(r["sigma"]) for r in runs])
    norm, cmap = _sigma_colors(sig_all)
    groups = _variants(runs)
    fig = _figure(figsize=(16, 4.8 * len(groups)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(groups), 3))
    label = headline_sigma_label(runs)
    for (name, rs), (ax_ll, ax_sig, ax_fin) in zip(groups, axes):
        sig = np.array([_num(r["sigma"]) for r in rs])
        _draw_training_curves(ax_ll, ax_sig, rs, sig, norm, cmap, em_ceiling)
        _draw_final_quality(ax_fin, rs, sig, norm, cmap, em_ceiling, baselines)
        ax_sig.set_ylabel(training_sigma, fontsize=8)
        ax_fin.set_xlabel(f"final {label}", fontsize=8)
        if name:
            for ax in (ax_ll, ax_sig, ax_fin):
                ax.set_title(f"{ax.get_title()} — {name}")
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    sm.set_array([])
    fig.colorbar(sm, ax=axes.ravel().tolist(), label=f"final {label} (nats per step)", shrink=0.9)
    what = ", ".join(f"{len(rs)} {name}" for name, rs in groups) if len(groups) > 1 else f"{len(runs)}"
    fig.suptitle(f"Fig. 2 — {what} seeds", fontsize=11)
    return fig


def _sigma_colors(sig: np.ndarray) -> tuple[Any, Any]:
    """The colour scale of the seeds' final sigma (viridis over the finite range)."""
    from matplotlib import colormaps, colors

    finite = sig[np.isfinite(sig)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1e-9
    return colors.Normalize(vmin=lo, vmax=hi), colormaps["viridis"]


def _draw_training_curves(
    ax_ll: Any,
    ax_sig: Any,
    runs: Sequence[Mapping[str, Any]],
    sig: np.ndarray,
    norm: Any,
    cmap: Any,
    em_ceiling: float | None,
) -> None:
    """Fig. 2 (a) and (b): ln p and sigma against epoch, one line per seed coloured by its final sigma."""
    tracked = any(r.get("history", {}).get("loglik_exact") for r in runs)
    for r, s in zip(runs, sig):
        h = r.get("history", {})
        c = cmap(norm(s)) if np.isfinite(s) else "red"
        if tracked and h.get("loglik_exact"):
            ax_ll.plot(np.asarray(h["diag_epoch"]) + 1, h["loglik_exact"], color=c, lw=1.0, alpha=0.85)
        elif h.get("loglik"):
            ax_ll.plot(np.asarray(h["epoch"]) + 1, h["loglik"], color=c, lw=0.8, alpha=0.85)
        tracked = h.get("sigma_counting") or h.get("sigma")  # "sigma": histories written before the rename
        if tracked:
            ax_sig.plot(
                np.asarray(h["diag_epoch"]) + 1, [_num(v) for v in tracked], color=c, lw=1.0, alpha=0.85
            )
    if em_ceiling is not None and np.isfinite(em_ceiling):
        ax_ll.axhline(em_ceiling, color="k", ls="--", lw=1, label=f"EM ceiling {em_ceiling:.1f}")
        ax_ll.legend(loc="lower right", fontsize=8)
    ax_ll.set_xlabel("epoch")
    ax_ll.set_ylabel("mean ln p(x) (nats)" + (" — exact, tracked" if tracked else " — on the fly"))
    ax_ll.set_title("(a) log-likelihood during training")
    # The first epochs are far below; show the interesting range.
    finals = [_num(r["loglik"]) for r in runs if np.isfinite(_num(r["loglik"]))]
    if finals:
        top = max(finals + ([em_ceiling] if em_ceiling is not None else []))
        ax_ll.set_ylim(min(finals) - 25, top + 5)
    ax_sig.set_xlabel("epoch")
    ax_sig.set_title("(b) entropy production during training")


def _draw_final_quality(
    ax_fin: Any,
    runs: Sequence[Mapping[str, Any]],
    sig: np.ndarray,
    norm: Any,
    cmap: Any,
    em_ceiling: float | None,
    baselines: Sequence[Mapping[str, Any]],
) -> None:
    """Fig. 2 (c): final ln p against final sigma, the baselines as squares and the EM ceiling."""
    ll = np.array([_num(r["loglik"]) for r in runs])
    err = np.array([_num(r.get("sigma_err")) for r in runs])
    for x, yv, e, s in zip(sig, ll, err, sig):
        ax_fin.errorbar(
            x,
            yv,
            xerr=_err(e),
            fmt="o",
            ms=5,
            color=cmap(norm(s)) if np.isfinite(s) else "red",
            ecolor="0.5",
            capsize=2,
        )
    # Keep the machines readable: baselines far below them are drawn at the bottom edge, with their value.
    fin = ll[np.isfinite(ll)]
    top = (
        max(list(fin) + ([em_ceiling] if em_ceiling is not None and np.isfinite(em_ceiling) else []))
        if fin.size
        else 0.0
    )
    bottom = (float(fin.min()) if fin.size else top) - 0.15 * max(
        top - (float(fin.min()) if fin.size else top), 2.0
    )
    _draw_baselines(ax_fin, baselines, bottom)
    if fin.size:
        span = max(top - bottom, 1.0)
        ax_fin.set_ylim(bottom - 0.04 * span, top + 0.08 * span)
    if em_ceiling is not None and np.isfinite(em_ceiling):
        ax_fin.axhline(em_ceiling, color="k", ls="--", lw=1, label="EM ceiling")
    if baselines or em_ceiling is not None:
        ax_fin.legend(loc="best", fontsize=8)
    ax_fin.set_ylabel("final mean ln p(x) (nats, exact)")
    ax_fin.set_title("(c) quality against entropy production")


def _draw_baselines(ax_fin: Any, baselines: Sequence[Mapping[str, Any]], bottom: float) -> None:
    """The baselines of Fig. 2 (c): squares, or a marker with its value at ``bottom`` when below it."""
    for i, b in enumerate(baselines):
        bl = _num(b["loglik"])
        name = {"rbm": "RBM (equilibrium)", "tied": "tied machine (eqs. 16-17)"}.get(
            str(b.get("kind", "tied")), str(b.get("kind"))
        )
        label = name if i == 0 else None
        if np.isfinite(bl) and bl < bottom:
            ax_fin.plot(
                _num(b["sigma"]), bottom, marker="v", ms=8, color="k", mfc="white", ls="none", label=label
            )
            ax_fin.annotate(
                f"{b.get('kind', 'tied')} seed {b.get('seed', i)}: ln p = {bl:.1f}",
                (_num(b["sigma"]), bottom),
                xytext=(8, 4 + 11 * i),
                textcoords="offset points",
                fontsize=7,
            )
        else:
            ax_fin.errorbar(
                _num(b["sigma"]),
                bl,
                xerr=_err(b.get("sigma_err")),
                fmt="s",
                ms=6,
                color="k",
                mfc="white",
                capsize=2,
                label=label,
            )


# --------------------------------------------------------------------------- Fig. 3


def fig3(
    machine: Machine,
    path: str | os.PathLike[str],
    *,
    occupancy: Sequence[float] | None = None,
    M: Sequence[Sequence[float]] | None = None,
    n_steps: int = 12,
    seed: int = 0,
    title: str | None = None,
    shape: tuple[int, int] | None = None,
) -> Path:
    """Save :func:`draw_fig3` of ``machine`` as PNG at ``path``."""
    return save_png(
        draw_fig3(machine, occupancy=occupancy, M=M, n_steps=n_steps, seed=seed, title=title, shape=shape),
        path,
    )


def draw_fig3(
    machine: Machine,
    *,
    occupancy: Sequence[float] | None = None,
    M: Sequence[Sequence[float]] | None = None,
    n_steps: int = 12,
    seed: int = 0,
    title: str | None = None,
    shape: tuple[int, int] | None = None,
) -> Any:
    """Fig. 3 as a ``Figure``: anatomy of one one-hot machine.

    Rows: the forward weights ``w[:, alpha]`` as images with the occupancy
    ``pbar(alpha)`` on top; the backward weights ``wbar[alpha, :]``; the hidden
    biases ``abar`` (bars) and the hidden transition matrix ``M`` (heat map with
    values); a hidden trajectory shown as the mean images ``mu_{x|z(t)}`` and
    the sampled images ``x(t+1) ~ A(z(t), .)``.

    Parameters
    ----------
    machine : Machine
        A one-hot machine.
    occupancy, M : optional
        Precomputed occupancy and transition matrix (else estimated from a
        2e4-step chain).
    n_steps : int
        Length of the shown trajectory.
    seed : int
        Seed of the chains drawn for the figure.
    title : str, optional
    shape : (int, int), optional
        Image shape; default :func:`image_shape`.
    """
    if machine.hidden != "onehot":
        raise ValueError("fig3 draws one-hot machines (one image per hidden state)")
    occ, Mx = _occupancy_and_M(machine, occupancy, M, seed)
    X, Z = machine.sample(int(n_steps), burn_in=1000, thin=1, n_chains=1, seed=seed, return_hidden=True)
    mu = machine.mean_images(Z)
    shp = shape or image_shape(int(machine.n_visible_))
    ncol = max(int(machine.n_hidden), int(n_steps))
    fig = _figure(figsize=(max(1.25 * ncol, 10), 10))
    gs = fig.add_gridspec(
        5,
        ncol,
        height_ratios=[1, 1, 2.2, 1, 1],
        hspace=0.45,
        wspace=0.15,
        left=0.06,
        right=0.97,
        top=0.92,
        bottom=0.03,
    )
    _draw_weight_images(fig, gs, machine, occ, shp)
    _draw_bias_and_M(fig, gs, machine.abar_, Mx, ncol)
    _draw_trajectory(fig, gs, mu, X, Z, shp)
    fig.suptitle(title or "Fig. 3", fontsize=11)
    return fig


def _occupancy_and_M(
    machine: Machine, occupancy: Sequence[float] | None, M: Sequence[Sequence[float]] | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The given occupancy and M, the missing ones estimated from a 2e4-step chain."""
    from nemm import diagnostics as diag

    if occupancy is None or M is None:
        ts = diag.transition_statistics(machine, 20_000, n_chains=2, seed=seed, n_segments=4)
        return (
            np.asarray(ts.pbar_e if occupancy is None else occupancy, dtype=float),
            np.asarray(ts.M if M is None else M, dtype=float),
        )
    return np.asarray(occupancy, dtype=float), np.asarray(M, dtype=float)


def _image(ax: Any, img: np.ndarray, shp: tuple[int, int], **kwargs: Any) -> None:
    """One image without ticks (a one-row shape is stretched to the axes)."""
    ax.imshow(img.reshape(shp), aspect="auto" if shp[0] == 1 else None, **kwargs)
    ax.set_xticks([]), ax.set_yticks([])


def _draw_weight_images(fig: Any, gs: Any, machine: Machine, occ: np.ndarray, shp: tuple[int, int]) -> None:
    """Fig. 3, rows 1 and 2: ``w[:, alpha]`` with the occupancy on top, and ``wbar[alpha, :]``."""
    w, wbar = machine.w_, machine.wbar_
    wlim = float(np.max(np.abs(w))) or 1.0
    wblim = float(np.max(np.abs(wbar))) or 1.0
    for a in range(int(machine.n_hidden)):
        ax = fig.add_subplot(gs[0, a])
        _image(ax, w[:, a], shp, cmap="RdBu_r", vmin=-wlim, vmax=wlim)
        ax.set_title(f"z={a}  p̄={occ[a]:.3f}", fontsize=8)
        if a == 0:
            ax.set_ylabel("w", fontsize=9)
        ax = fig.add_subplot(gs[1, a])
        _image(ax, wbar[a], shp, cmap="RdBu_r", vmin=-wblim, vmax=wblim)
        if a == 0:
            ax.set_ylabel("w̄", fontsize=9)


def _draw_bias_and_M(fig: Any, gs: Any, abar: np.ndarray, Mx: np.ndarray, ncol: int) -> None:
    """Fig. 3, row 3: the hidden biases as bars and M as a heat map (with its values when L <= 12)."""
    L = len(abar)
    half = max(ncol // 2, 1)
    ax_b = fig.add_subplot(gs[2, : max(half - 1, 1)])
    ax_b.bar(np.arange(L), abar, color="0.4")
    ax_b.set_xticks(np.arange(L))
    ax_b.set_xlabel("hidden state z")
    ax_b.set_ylabel("ā (hidden bias)")
    ax_b.axhline(0, color="k", lw=0.6)
    ax_m = fig.add_subplot(gs[2, half:])
    im = ax_m.imshow(Mx, cmap="magma_r", vmin=0, vmax=1)
    if L <= 12:
        for i in range(L):
            for j in range(L):
                ax_m.text(
                    j,
                    i,
                    f"{Mx[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if Mx[i, j] > 0.55 else "black",
                )
    ax_m.set_xticks(np.arange(L)), ax_m.set_yticks(np.arange(L))
    ax_m.set_xlabel("next state z")
    ax_m.set_ylabel("state z'")
    ax_m.set_title("M(z', z)", fontsize=9)
    fig.colorbar(im, ax=ax_m, fraction=0.046, pad=0.04)


def _draw_trajectory(
    fig: Any, gs: Any, mu: np.ndarray, X: np.ndarray, Z: np.ndarray, shp: tuple[int, int]
) -> None:
    """Fig. 3, rows 4 and 5: the mean images ``mu_{x|z(t)}`` and the samples ``x(t+1) ~ A(z(t), .)``."""
    for t in range(len(Z)):
        ax = fig.add_subplot(gs[3, t])
        _image(ax, mu[t], shp, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"t={t} z={int(Z[t])}", fontsize=7)
        if t == 0:
            ax.set_ylabel("μ(x|z(t))", fontsize=8)
        ax = fig.add_subplot(gs[4, t])
        _image(ax, X[t], shp, cmap="gray_r", vmin=0, vmax=1)
        if t == 0:
            ax.set_ylabel("x ~ A(z(t),·)", fontsize=8)


# --------------------------------------------------------------------------- Fig. 4


def fig4(
    runs: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    L: int,
) -> Path:
    """Save :func:`draw_fig4` of ``runs`` as PNG at ``path``."""
    return save_png(draw_fig4(runs, L=L), path)


def draw_fig4(runs: Sequence[Mapping[str, Any]], *, L: int) -> Any:
    """Fig. 4 as a ``Figure``: class KL, decorrelation time and mean self-transition against sigma.

    The x axis is the headline sigma (log-scaled; its method named on the axis);
    points coloured by regime (``regime`` key when present). ``tau = inf`` (a
    deterministic cycle) is drawn as an upward triangle at the top of the tau panel;
    the self-transition panel has the random value ``1/L`` as a dashed line. Runs
    with ``sigma <= 0`` cannot appear on a log axis and are listed in the title.
    Runs of several ``variant`` values get one row of panels each.

    Parameters
    ----------
    runs : sequence of dict
        Records with ``sigma``, ``sigma_err``, ``class_kl``, ``tau``, ``tau_err``,
        ``self_transition``, ``self_transition_err`` and optionally ``regime``,
        ``variant`` and ``sigma_method``.
    L : int
        Number of hidden states (for the ``1/L`` line).
    """
    groups = _variants(runs)
    fig = _figure(figsize=(15, 4.5 * len(groups)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(groups), 3))
    label = f"{headline_sigma_label(runs)} (nats per step)"
    used_regimes: set[str] = set()
    notes = []
    for (name, rs), row in zip(groups, axes):
        shown = _draw_fig4_row(row, rs, used_regimes)
        for ax, title in zip(
            row,
            (
                "(a) class-distribution KL (eq. 22)",
                "(b) decorrelation time (eq. 23)",
                "(c) mean self-transition (eq. 24)",
            ),
        ):
            ax.set_xlabel(label, fontsize=8)
            ax.set_title(f"{title} — {name}" if name else title)
        row[2].axhline(1.0 / L, color="k", ls="--", lw=1, label=f"random: 1/L = {1.0 / L:.3f}")
        hidden = len(rs) - shown
        notes.append(
            f"{shown} {name + ' ' if name else ''}seeds"
            + (f"; {hidden} run(s) with σ ≤ 0 not shown on the log axis" if hidden else "")
        )
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="none", color=REGIME_COLORS[r], label=r)
        for r in REGIME_COLORS
        if r in used_regimes
    ]
    handles.append(Line2D([], [], color="k", ls="--", label=f"random: 1/L = {1.0 / L:.3f}"))
    axes[0][2].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle("Fig. 4 — " + "; ".join(notes), fontsize=11)
    return fig


def _draw_fig4_row(row: Sequence[Any], runs: Sequence[Mapping[str, Any]], used_regimes: set[str]) -> int:
    """One row of Fig. 4 (KL, tau, Tr(M)/L against sigma); returns how many runs could be shown."""
    sig = np.array([_num(r["sigma"]) for r in runs])
    shown = np.isfinite(sig) & (sig > 0)
    keys = [
        ("class_kl", None, "class KL(P_data ‖ P_model) (nats)"),
        ("tau", "tau_err", "decorrelation time τ (steps)"),
        ("self_transition", "self_transition_err", "Tr(M)/L"),
    ]
    for ax, (key, ekey, label) in zip(row, keys):
        vals = np.array([_num(r.get(key)) for r in runs])
        errs = np.array([_num(r.get(ekey)) if ekey else np.nan for r in runs])
        finite_vals = vals[shown & np.isfinite(vals)]
        top = float(finite_vals.max()) if finite_vals.size else 1.0
        positive = finite_vals[finite_vals > 0]
        log_y = bool(
            positive.size and positive.size == finite_vals.size and positive.max() / positive.min() > 30
        )
        for i in np.flatnonzero(shown):
            reg = str(runs[int(i)].get("regime", ""))
            color = REGIME_COLORS.get(reg, "C0")
            used_regimes.add(reg)
            xe = _num(runs[int(i)].get("sigma_err"))
            v = vals[i]
            if key == "tau" and np.isinf(v):
                ax.plot(sig[i], top * 2.0, marker="^", color=color, ms=7, ls="none")
                continue
            if not np.isfinite(v):
                continue
            ye: Any = _err(errs[i])
            if ye is not None and log_y:  # a log axis cannot show a bar through zero: clip the lower arm
                ye = np.array([[min(ye, 0.9 * v)], [ye]])
            ax.errorbar(
                sig[i], v, xerr=_err(xe), yerr=ye, fmt="o", ms=5, color=color, ecolor="0.6", capsize=2
            )
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_ylabel(label)
    return int(shown.sum())


#: Markers and colours of the kinds of model of a reproduction.
KIND_STYLE = {
    "nemm": ("o", "#d95f02", "nemm (nonequilibrium chain)"),
    "rbm": ("s", "#1b9e77", "RBM (equilibrium, Gibbs chain)"),
    "tied": ("D", "#7570b3", "tied machine (eqs. 16-17)"),
    "mixture": ("*", "#e7298a", "EM mixture (i.i.d. draws)"),
}


_MIXING_FLOOR = 0.01


def draw_mixing(models: Sequence[Mapping[str, Any]], *, equal_likelihood: float | None = None) -> Any:
    """The mixing figure as a ``Figure``: exact ln p (x) against ``tau_int_class`` (y, log), by kind.

    The legend gives each kind's median ln p; with ``equal_likelihood`` (nats/digit) the
    title names the kinds whose median is further than that from the nemm machines'.

    One point per model; a model whose ``tau_int_class`` is infinite (its chain
    never changed class) is drawn at the top edge as an upward triangle, and a
    value below 0.01, or at or below 0 (anti-correlated classes, literal Sokal
    window), at the bottom edge as a downward triangle; the legend says so.
    The points of kind ``k`` are the ``ax.collections`` with ``gid`` ``"k:finite"``,
    ``"k:inf"`` (top edge) and ``"k:low"`` (bottom edge).
    """
    fig = _figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    taus = np.array([_num(r.get("tau_int_class")) for r in models], dtype=float)
    pos = taus[np.isfinite(taus) & (taus > 0)]
    # Values below 0.01 (anti-correlated classes, literal window, including <= 0) sit at the bottom edge.
    lo = max(float(pos.min()) / 2, _MIXING_FLOOR) if pos.size else 0.1
    hi = float(pos.max()) * 4 if pos.size else 10.0
    lo, hi = min(lo, 0.5), max(hi, 4.0)
    any_inf = any_low = False
    for kind, (marker, color, label) in KIND_STYLE.items():
        rs = [r for r in models if r["kind"] == kind]
        if not rs:
            continue
        ll = np.array([_num(r["loglik"]) for r in rs])
        t = np.array([_num(r.get("tau_int_class")) for r in rs])
        finite = np.isfinite(t) & (t >= lo)
        ax.scatter(
            ll[finite],
            t[finite],
            marker=marker,
            color=color,
            s=60 if kind == "mixture" else 36,
            edgecolor="k",
            linewidth=0.4,
            label=f"{label} ({len(rs)}), median ln p {_nanmedian(ll):.1f}",
            zorder=3,
            gid=f"{kind}:finite",
        )
        top = np.isinf(t) & (t > 0)
        if top.any():
            any_inf = True
            ax.scatter(
                ll[top],
                np.full(top.sum(), hi),
                marker="^",
                color=color,
                s=70,
                edgecolor="k",
                linewidth=0.6,
                clip_on=False,
                zorder=4,
                gid=f"{kind}:inf",
            )
        low = np.isfinite(t) & (t < lo)
        if low.any():
            any_low = True
            ax.scatter(
                ll[low],
                np.full(low.sum(), lo),
                marker="v",
                color=color,
                s=70,
                edgecolor="k",
                linewidth=0.6,
                clip_on=False,
                zorder=4,
                gid=f"{kind}:low",
            )
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.axhline(1.0, color="0.5", ls=":", lw=1)
    if any_inf:
        ax.scatter(
            [],
            [],
            marker="^",
            color="w",
            edgecolor="k",
            label="▲ at the top edge: τ = ∞ (stuck in one class)",
        )
    if any_low:
        ax.scatter(
            [],
            [],
            marker="v",
            color="w",
            edgecolor="k",
            label=f"▼ at the bottom edge: τ < {lo:.2g}, or ≤ 0 (anti-correlated)",
        )
    ax.set_xlabel("exact ln p(x) (nats/digit)")
    ax.set_ylabel("τ_int of the sample class (steps, Sokal window)")
    ax.set_title(_mixing_title(models, equal_likelihood), fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def _nanmedian(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else math.nan


def _mixing_title(models: Sequence[Mapping[str, Any]], tol: float | None) -> str:
    """The mixing figure's title: the kinds not at equal likelihood with the nemm machines (within ``tol``)."""
    head = "Class mixing against ln p (dotted: i.i.d. = 1)"
    if tol is None:
        return head
    ref = _nanmedian(np.array([_num(r["loglik"]) for r in models if r["kind"] == "nemm"]))
    far = []
    for kind in KIND_STYLE:
        if kind == "nemm":
            continue
        d = _nanmedian(np.array([_num(r["loglik"]) for r in models if r["kind"] == kind])) - ref
        if np.isfinite(d) and abs(d) > tol:
            far.append(f"{kind} {d:+.1f}")
    if not np.isfinite(ref) or not far:
        return head
    return f"{head}\nnot at equal likelihood (> {tol:g} nats/digit from the nemm median): {', '.join(far)}"


def fig_mixing(
    models: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    equal_likelihood: float | None = None,
) -> Path:
    """Save :func:`draw_mixing` of ``models`` (records with ``kind``, ``loglik``, ``tau_int_class``) as PNG."""
    return save_png(draw_mixing(models, equal_likelihood=equal_likelihood), path)


def draw_sigma(models: Sequence[Mapping[str, Any]]) -> Any:
    """Both entropy-production estimators against the amount of sampling, as a ``Figure``.

    Left: the plain Rao-Blackwell sigma (eq. 21 on the Rao-Blackwell M) against draws per
    state (``sigma_rao_blackwell_curve``); right: the paper's counting estimator
    against the chain length (``sigma_counting_curve``). One line per model, coloured by kind.
    """
    fig = _figure(figsize=(9.0, 3.8), layout="constrained")
    ax_rb, ax_ct = fig.subplots(1, 2)
    seen: set[str] = set()
    for r in models:
        marker, color, label = KIND_STYLE.get(r["kind"], ("o", "0.4", r["kind"]))
        lab = label if r["kind"] not in seen else None
        seen.add(r["kind"])
        for ax, key in ((ax_rb, "sigma_rao_blackwell_curve"), (ax_ct, "sigma_counting_curve")):
            c = r.get(key)
            if c and len(c.get("n", [])):
                ax.plot(
                    c["n"],
                    [_num(v) for v in c["sigma"]],
                    color=color,
                    alpha=0.6,
                    lw=1,
                    marker=marker,
                    ms=3,
                    label=lab,
                )
    for ax, xl, title in (
        (ax_rb, "draws per hidden state", "sigma_rao_blackwell (plain Rao–Blackwell M)"),
        (ax_ct, "chain length (steps per chain)", "sigma_counting (paper, counting)"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("σ (nats/step)")
        ax.set_title(title, fontsize=9)
    if seen:
        ax_rb.legend(fontsize=7)
    return fig


def fig_sigma(models: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Save :func:`draw_sigma` of ``models`` as PNG."""
    return save_png(draw_sigma(models), path)
