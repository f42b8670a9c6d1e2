"""Shared pieces of the benchmarks in ``bench/``: timing, the results table, the yardstick.

Run from the source tree against the installed package (``pip install .``). Nothing here is
part of the wheel: the yardstick is compiled with ``g++ -O3 -march=native`` and read from
``../shared/yardstick`` beside the repository, and the project's performance targets live here.

Every measurement checks something cheap about what it computed and raises
:class:`BenchmarkError` when it is wrong (never ``assert``: ``python -O`` strips those), so a
fast but wrong engine fails the benchmark instead of winning it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from nemm._io import atomic_open

REPO = Path(__file__).resolve().parents[1]
#: ``chain_limit.cpp`` beside the repository: ``<repo>/../shared/yardstick``.
DEFAULT_YARDSTICK = REPO.parent / "shared" / "yardstick" / "chain_limit.cpp"


class BenchmarkError(RuntimeError):
    """A benchmark computed something wrong (not: something slow)."""


def check(ok: bool, message: str) -> None:
    """Raise :class:`BenchmarkError` with ``message`` unless ``ok``."""
    if not ok:
        raise BenchmarkError(message)


#: The performance targets of the project (issues 5 and 12).
TARGETS = {
    "chain_vs_yardstick": 3.0,  # one chain, per core: ours / yardstick >= 3
    "two_core_efficiency": 0.8,  # many chains: throughput(2 cores) / (2 x throughput(1 core)) >= 0.8
    "paper_protocol_s": 0.2,  # one paper-protocol training run on one core <= 0.2 s (issue 12)
    "paper_protocol_yardstick_steps": 55_000,  # ... = that many yardstick double steps, same run
    "binary_chain_vs_yardstick": 4.0,  # L = 8 binary hidden units, one chain: ours / yardstick >= 4
    "rbm_vs_machine_fit": 2.0,  # RBM fit of the paper's size / nemm fit <= 2
    "exact_lnp_L16_s": 1.0,  # exact ln p, binary L = 16, 2980 digits <= 1 s
    "paper_vs_numpy": 10.0,  # numpy time / our time >= 10
    "reproduction_s": 20.0,  # 36 seeds (fits + occupancy) on 2 cores <= 20 s
}

YARDSTICK_STEPS = 2_000_000  # what chain_limit.cpp runs as shipped
QUICK_YARDSTICK_STEPS = 200_000
CHAIN_COUNTS = (1, 2, 4, 8, 16, 32, 64)


# --------------------------------------------------------------------------- utilities
def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # pragma: no cover
        return None


def cpu_probe(seconds: float = 0.3) -> float:
    """Share of a CPU that a busy thread gets right now: about 1.0 on a quiet machine.

    Far below 1 means other processes compete for the cores and every timing is inflated.
    """
    c0, t0 = time.process_time(), time.perf_counter()
    x = 0
    while time.perf_counter() - t0 < seconds:
        x += 1
    wall = time.perf_counter() - t0
    return (time.process_time() - c0) / wall if wall > 0 else float("nan")


def best_time(
    fn: Callable[[], Any], *, repeats: int = 3, min_time: float = 0.0, info: dict[str, float] | None = None
) -> float:
    """Seconds per call of ``fn``: the best of ``repeats`` rounds.

    A round calls ``fn`` until ``min_time`` seconds have passed (at least once) and
    divides by the number of calls. The minimum over rounds is the least disturbed
    by other work on the machine. ``info``, if given, receives ``cpu``: the process CPU
    seconds per call in the best round (for single-threaded work, what the wall time would
    be on a quiet machine) and ``cpu_share`` = CPU seconds / wall seconds.
    """
    best, best_cpu = math.inf, math.nan
    for _ in range(max(1, repeats)):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        cpu = time.process_time() - c0
        if dt / n < best:
            best, best_cpu = dt / n, cpu / n
    if info is not None:
        info["cpu"] = best_cpu
        info["cpu_share"] = best_cpu / best if best > 0 else math.nan
    return best


def cpu_time_of(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


class Results:
    """Rows of (name, value, unit, ratio, note) printed as a table and written as JSON."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: dict[str, dict[str, Any]] = {}
        self.targets: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}
        self.meta: dict[str, Any] = {
            "cores": available_cores(),
            "load_average_at_start": load_average(),
            "cpu_probe_at_start": cpu_probe(),
            "python": sys.version.split()[0],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        try:
            import nemm

            self.meta["nemm_version"] = nemm.__version__
            self.meta["openmp"] = nemm.openmp_enabled()
        except Exception:  # pragma: no cover - reported, never fatal
            pass

    def add(
        self,
        key: str,
        name: str,
        value: float | None,
        unit: str,
        ratio: float | None = None,
        ratio_to: str = "",
        note: str = "",
    ) -> None:
        self.rows[key] = {
            "name": name,
            "value": None if value is None else float(value),
            "unit": unit,
            "ratio": None if ratio is None else float(ratio),
            "ratio_to": ratio_to,
            "note": note,
        }

    def value(self, key: str) -> float | None:
        row = self.rows.get(key)
        return None if row is None else row["value"]

    def section(self, title: str) -> None:
        self.rows[f"__section_{len(self.rows)}"] = {"section": title}

    def target(
        self, name: str, measured: float | None, goal: float, *, at_most: bool = False, note: str = ""
    ) -> None:
        met = None if measured is None else (measured <= goal if at_most else measured >= goal)
        self.targets.append(
            {
                "name": name,
                "measured": measured,
                "target": goal,
                "comparison": "<=" if at_most else ">=",
                "met": met,
                "note": note,
            }
        )

    # ---------------------------------------------------------------- output
    def table(self) -> str:
        def fmt(v: float | None) -> str:
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return "n/a"
            a = abs(v)
            if a >= 1e4:
                return f"{v:,.0f}"
            if a >= 100:
                return f"{v:.1f}"
            if a >= 1:
                return f"{v:.3f}"
            if a == 0:
                return "0"
            if a >= 1e-3:
                return f"{v:.4f}"
            return f"{v:.3e}"

        lines = []
        body = [r for r in self.rows.values()]
        w_name = max([len(r.get("name", "")) for r in body] + [20])
        header = f"{'benchmark':<{w_name}}  {'value':>14}  {'unit':<14}  {'ratio':>10}  note"
        lines.append(self.title)
        lines.append("=" * len(header))
        lines.append(header)
        lines.append("-" * len(header))
        for r in body:
            if "section" in r:
                lines.append(f"[{r['section']}]")
                continue
            ratio = "" if r["ratio"] is None else f"{fmt(r['ratio'])}x"
            note = r["note"]
            if r["ratio_to"]:
                note = f"ratio: {r['ratio_to']}" + (f"; {note}" if note else "")
            lines.append(
                f"{r['name']:<{w_name}}  {fmt(r['value']):>14}  {r['unit']:<14}  {ratio:>10}  {note}"
            )
        m = self.meta
        lines.append("-" * len(header))
        lines.append(
            f"machine: {m.get('cores')} cores; a busy thread got {m.get('cpu_probe_at_start', float('nan')):.2f}"
            f" of a CPU at the start{self._probe_end()} (1.00 = quiet machine); load average "
            f"{m.get('load_average_at_start') or float('nan'):.2f} at the start"
        )
        if self.targets:
            lines.append("-" * len(header))
            lines.append("targets")
            for t in self.targets:
                status = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
                lines.append(
                    f"  {t['name']:<{w_name - 2}}  {fmt(t['measured']):>14}  {t['comparison']} "
                    f"{fmt(t['target']):<11}  {status:>10}  {t['note']}"
                )
        return "\n".join(lines)

    def _probe_end(self) -> str:
        v = self.meta.get("cpu_probe_at_end")
        return "" if v is None else f", {v:.2f} at the end"

    def to_dict(self) -> dict[str, Any]:
        self.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.meta["load_average_at_end"] = load_average()
        self.meta["cpu_probe_at_end"] = cpu_probe()
        results = {k: v for k, v in self.rows.items() if not k.startswith("__section_")}
        return {
            "title": self.title,
            "meta": self.meta,
            "results": results,
            "targets": self.targets,
            **self.extra,
        }


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_open(path, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    return path


# --------------------------------------------------------------------------- yardstick
def find_yardstick(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The yardstick source: ``path`` (must exist), else ``$NEMM_YARDSTICK``, else
    :data:`DEFAULT_YARDSTICK`; None when the default is absent."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"yardstick source {p} not found")
        return p
    env = os.environ.get("NEMM_YARDSTICK")
    cand = Path(env) if env else DEFAULT_YARDSTICK
    return cand if cand.is_file() else None


def run_yardstick(
    source: Path | None, steps: int = YARDSTICK_STEPS, timeout: float = 300.0, rounds: int = 3
) -> dict[str, Any]:
    """Compile ``chain_limit.cpp`` with ``g++ -O3 -march=native`` in a temporary directory and run it.

    ``steps`` replaces the file's ``const long T = 2000000``. The binary runs ``rounds`` times and
    the fastest run counts, as every timing of ours is the best of several rounds. Returns a dict
    with ``steps_per_s`` (per core, one chain) or, when it cannot run, ``None`` and a ``reason``.
    """
    out: dict[str, Any] = {
        "steps_per_s": None,
        "steps": int(steps),
        "source": str(source) if source else None,
    }
    if source is None or not Path(source).is_file():
        out["reason"] = f"chain_limit.cpp not found (looked for {DEFAULT_YARDSTICK}; give --yardstick PATH)"
        return out
    gxx = shutil.which("g++")
    if gxx is None:
        out["reason"] = "g++ not found"
        return out
    text = Path(source).read_text()
    new, n = re.subn(r"const\s+long\s+T\s*=\s*\d+", f"const long T = {int(steps)}", text)
    if n != 1:
        out["reason"] = "could not find 'const long T = ...' in the yardstick source"
        return out
    with tempfile.TemporaryDirectory(prefix="nemm-yardstick-") as tmp:
        src, exe = Path(tmp) / "chain_limit.cpp", Path(tmp) / "chain_limit"
        src.write_text(new)
        try:
            subprocess.run(
                [gxx, "-O3", "-march=native", str(src), "-o", str(exe)],
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            best: tuple[float, float, float, str] | None = None  # (steps/s, seconds, CPU seconds, output)
            for _ in range(max(1, rounds)):
                r0, t0 = _children_cpu(), time.perf_counter()
                proc = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=timeout)
                sec, cpu = time.perf_counter() - t0, _children_cpu() - r0
                m = re.search(r"([0-9.]+)\s+double steps/s", proc.stdout)
                if not m or float(m.group(1)) <= 0:
                    out["reason"] = f"unexpected yardstick output: {proc.stdout.strip()[:200]!r}"
                    return out
                if best is None or float(m.group(1)) > best[0]:
                    best = (float(m.group(1)), sec, cpu, proc.stdout.strip())
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            err = getattr(exc, "stderr", "") or ""
            out["reason"] = f"yardstick failed: {exc} {err[-300:]}".strip()
            return out
    check(best is not None, "the yardstick never ran")
    out["steps_per_s"], out["seconds"], out["cpu_seconds"], out["output"] = best
    out["rounds"] = max(1, rounds)
    # Its own clock covers the loop only; the CPU share of the whole process says how much of a
    # core it got, and steps / CPU second is what it would reach on a quiet machine.
    cpu = out.get("cpu_seconds") or 0.0
    out["cpu_share"] = cpu / out["seconds"] if out.get("seconds") else None
    out["steps_per_cpu_s"] = int(steps) / cpu if cpu > 0 else None
    return out


def _children_cpu() -> float:
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        return 0.0


def yardstick_note(ys: dict[str, Any]) -> str:
    if not ys.get("steps_per_s"):
        return ys.get("reason", "n/a")
    note = f"best of {ys.get('rounds', 1)} runs of {ys['steps']:,} steps"
    if ys.get("steps_per_cpu_s"):
        note += f"; CPU share {ys['cpu_share']:.2f}; {ys['steps_per_cpu_s']:,.0f} steps per CPU-second"
    return note


# --------------------------------------------------------------------------- machines
def digits() -> np.ndarray:
    from nemm import datasets

    X, _ = datasets.embedded_digits()
    return X


def trained_machine(
    X: np.ndarray | None = None,
    n_hidden: int = 6,
    *,
    hidden: str = "onehot",
    n_epochs: int = 120,
    random_state: int = 0,
    **settings: Any,
):
    """A Machine trained on ``X`` (default: the embedded digits): realistic parameters and sparsity."""
    from nemm import Machine

    X = digits() if X is None else X
    settings = {"recipe": "paper", **settings}  # the paper protocol unless a benchmark says otherwise
    return Machine(n_hidden, hidden=hidden, n_epochs=n_epochs, random_state=random_state, **settings).fit(X)


def set_threads(n: int) -> None:
    import nemm

    nemm.set_num_threads(int(n))


def default_threads() -> int:
    from nemm import _core

    return int(_core.max_threads())


def chain_throughput(
    machine: Any,
    n_chains: int,
    threads: int,
    *,
    total_steps: int = 200_000,
    repeats: int = 3,
    seed: int = 1,
    info: dict[str, Any] | None = None,
) -> float:
    """Double steps per second (all chains together) of ``machine.hidden_trajectory``.

    Checks the trajectory: every state in range, the occupancy sums to 1, more than one
    state visited. ``info``, if given, receives ``cpu_share``: process CPU seconds per wall
    second during the best round (about ``threads`` when no other work competes for the cores).
    """
    set_threads(threads)
    T = max(1, int(total_steps) // int(n_chains))
    traj: list[np.ndarray] = []
    shares: list[tuple[float, float]] = []

    def once() -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        traj.append(machine.hidden_trajectory(T, n_chains=n_chains, burn_in=0, seed=seed, codes=True))
        shares.append((time.perf_counter() - t0, time.process_time() - c0))

    sec = best_time(once, repeats=repeats)
    if info is not None:
        wall, cpu = min(shares)
        info["cpu_share"] = cpu / wall if wall > 0 else float("nan")
        info["steps_per_cpu_s"] = T * n_chains / cpu if cpu > 0 else float("nan")
    z = np.asarray(traj[-1]).ravel()
    n_states = machine.n_states
    check(z.size == T * n_chains, f"trajectory has {z.size} states, expected {T * n_chains}")
    check(z.min() >= 0 and z.max() < n_states, "hidden state out of range")
    if n_states <= 1 << 16:
        occ = np.bincount(z, minlength=n_states) / z.size
        check(abs(occ.sum() - 1.0) < 1e-12, "occupancy does not sum to 1")
    check(np.unique(z).size > 1, "the chain never left its first state")
    return T * n_chains / sec


def paper_protocol(
    X: np.ndarray | None = None,
    *,
    n_epochs: int = 120,
    repeats: int = 1,
    threads: int = 1,
    random_state: int = 0,
    score: bool = True,
    info: dict[str, float] | None = None,
):
    """Seconds of ``Machine(6, random_state=0).fit(X)`` (paper protocol) on ``threads`` threads.

    Returns ``(seconds, machine, loglik)``: the best of ``repeats`` runs, the last trained machine
    and its log-likelihood from a 1e5-step occupancy (appendix A3, when ``score``), checked
    finite and above -170.
    ``info`` receives ``cpu`` (CPU seconds of the best run) and ``cpu_share``.
    """
    from nemm import Machine

    X = digits() if X is None else X
    set_threads(threads)
    box: list[Any] = []

    def once() -> None:
        box.append(Machine(6, recipe="paper", n_epochs=n_epochs, random_state=random_state).fit(X))

    sec = best_time(once, repeats=repeats, info=info)
    m = box[-1]
    last = m.history_["loglik"][-1]
    check(math.isfinite(last) and last > -170, f"on-the-fly log-likelihood {last} after training")
    ll = m.score(X) if score else float("nan")
    if score:
        check(math.isfinite(ll) and ll > -170, f"log-likelihood {ll} after training")
    return sec, m, ll


def step_profile(res: Results, key: str, label: str, estimator: Any, X: np.ndarray, n_epochs: int) -> None:
    """Where the time of a fit's steps goes, measured in the run itself: adds a row per part.

    ``estimator`` (a Machine or an RBM, unfitted) trains one epoch, then ``n_epochs - 1`` more
    with the engine's step profile on (``start_profiling``/``stop_profiling``): the seconds of
    each part of the steps, clocked in C++, and what the Python loop around them adds.
    """
    estimator.partial_fit(X, n_epochs=1)
    engine = estimator._engine
    engine.start_profiling()
    wall, _ = cpu_time_of(lambda: estimator.partial_fit(X, n_epochs=max(1, n_epochs - 1)))
    prof = engine.stop_profiling()
    steps = int(prof.pop("steps"))
    check(steps > 0, f"{label}: the step profile counted no steps")
    parts = dict(prof)
    parts["outside the steps (Python loop, calls)"] = max(0.0, wall - sum(prof.values()))
    for name, seconds in parts.items():
        res.add(
            f"{key}.{name.split()[0]}_us",
            f"  {label} per step: {name}",
            seconds / steps * 1e6,
            "us",
            note=f"{100 * seconds / wall:.0f} % of {wall:.3f} s over {steps} steps (C++ clock)",
        )


_WORKER_DATA: dict[str, np.ndarray] = {}


def fit_seed(seed: int, n_epochs: int = 120, occupancy_steps: int = 100_000) -> dict[str, Any]:
    """One seed of the reproduction: ``Machine(6, random_state=seed).fit`` on the embedded digits
    (one thread), its occupancy from a ``occupancy_steps`` chain and its exact log-likelihood.

    A module-level function so that process pools can run it.
    """
    from nemm import Machine

    set_threads(1)
    if "X" not in _WORKER_DATA:
        _WORKER_DATA["X"] = digits()
    X = _WORKER_DATA["X"]
    t0, c0 = time.perf_counter(), time.process_time()
    m = Machine(6, recipe="paper", n_epochs=n_epochs, random_state=int(seed)).fit(X)
    t1 = time.perf_counter()
    _, pbar = m.occupancy(occupancy_steps)
    t2 = time.perf_counter()
    ll = float(m.score_samples(X, pbar=pbar).mean())
    return {
        "seed": int(seed),
        "fit_s": t1 - t0,
        "occupancy_s": t2 - t1,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "loglik": ll,
        "pbar": pbar.tolist(),
        "pid": os.getpid(),
    }


# --------------------------------------------------------------------------- measurements
def measure_chains(
    res: Results,
    machine: Any,
    label: str,
    key: str,
    *,
    threads_all: int,
    total_steps: int,
    repeats: int,
    counts: Iterable[int] = CHAIN_COUNTS,
    yardstick: float | None = None,
    yardstick_cpu: float | None = None,
) -> dict[str, Any]:
    """One chain and C chains on 1 and on all threads; adds rows; returns the series.

    The thread counts are interleaved (1, all, 1, all, ...) and the best of ``repeats`` kept, so
    that other work on the machine disturbs both alike. The CPU share of each row (process CPU
    seconds per wall second) tells whether the threads had their cores: about n for n busy
    threads. It is coarse for short runs and includes OpenMP workers spin-waiting after a
    parallel region (so a 1-thread run just after an n-thread run can show more than 1).
    """
    counts = list(counts)
    thread_set = [1] + ([threads_all] if threads_all > 1 else [])
    best = {t: [0.0] * len(counts) for t in thread_set}
    share = {t: [float("nan")] * len(counts) for t in thread_set}
    per_cpu = {t: [float("nan")] * len(counts) for t in thread_set}
    for i, c in enumerate(counts):
        for _ in range(max(1, repeats)):
            for t in thread_set:
                info: dict[str, Any] = {}
                v = chain_throughput(machine, c, t, total_steps=total_steps, repeats=1, info=info)
                if v > best[t][i]:
                    best[t][i], share[t][i], per_cpu[t][i] = v, info["cpu_share"], info["steps_per_cpu_s"]
    series: dict[str, Any] = {
        "chains": counts,
        "threads": {str(t): best[t] for t in thread_set},
        "cpu_share": {str(t): share[t] for t in thread_set},
        "steps_per_cpu_s": {str(t): per_cpu[t] for t in thread_set},
    }
    one = best[1][0]
    ratio = None if yardstick is None else one / yardstick
    note = f"CPU share {share[1][0]:.2f}; {per_cpu[1][0]:,.0f} steps per CPU-second"
    if yardstick_cpu:
        series["ratio_per_cpu_s"] = per_cpu[1][0] / yardstick_cpu
        note += f" = {series['ratio_per_cpu_s']:.2f}x the yardstick's"
    res.add(
        f"{key}.one_chain",
        f"{label}: 1 chain, 1 thread",
        one,
        "steps/s",
        ratio,
        "ours/yardstick" if ratio is not None else "",
        note=note,
    )
    for i, c in enumerate(counts):
        if c != 1:
            res.add(f"{key}.C{c}.t1", f"{label}: {c} chains, 1 thread", best[1][i], "steps/s")
        if threads_all > 1:
            t = threads_all
            res.add(
                f"{key}.C{c}.t{t}",
                f"{label}: {c} chain{'s' if c > 1 else ''}, {t} threads",
                best[t][i],
                "steps/s",
                best[t][i] / best[1][i],
                f"vs 1 thread; CPU share {share[t][i]:.2f}",
            )
    if threads_all > 1:
        t = threads_all
        eff = [b / (t * a) for a, b in zip(best[1], best[t])]
        series["efficiency"] = eff
        res.add(
            f"{key}.efficiency",
            f"{label}: {t}-core efficiency, {counts[-1]} chains",
            eff[-1],
            "fraction",
            note=f"thr({t} threads) / ({t} x thr(1 thread)); CPU share {share[t][-1]:.2f} of {t}",
        )
    return series
