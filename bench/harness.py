"""Benchmarks of the C++ engine: the ``nemm bench`` command.

What is measured (every number also checks something cheap about its result):

* chain throughput, in double steps x' -> z -> x' per second, for D = 784 visible
  bits with realistic (trained) parameters: L = 6 one-hot and L = 8 binary hidden
  units, one chain and C = 1, 2, 4, ..., 64 chains, on one thread and on all cores;
* the seconds of one paper-protocol training run (120 epochs x 30 steps, T = 48,
  minibatch 16 -> 160) on the 2980 embedded digits, on one thread;
* the yardstick: ``chain_limit.cpp``, a plain single-threaded C++ chain loop
  (compiled here with ``g++ -O3 -march=native``), and the ratio ours / yardstick.

``bench/suite.py`` in the source tree runs a larger suite built on these helpers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from nemm._io import atomic_open

__all__ = [
    "TARGETS",
    "Results",
    "add_arguments",
    "available_cores",
    "best_time",
    "bench",
    "chain_throughput",
    "find_yardstick",
    "paper_protocol",
    "run",
    "run_yardstick",
    "trained_machine",
    "write_json",
]

#: The performance targets of the project (issue 5).
TARGETS = {
    "chain_vs_yardstick": 3.0,       # one chain, per core: ours / yardstick >= 3
    "two_core_efficiency": 0.8,      # many chains: throughput(2 cores) / (2 x throughput(1 core)) >= 0.8
    "paper_protocol_s": 0.5,         # one paper-protocol training run on one core <= 0.5 s
    "paper_vs_numpy": 10.0,          # numpy time / our time >= 10
    "reproduction_s": 20.0,          # 36 seeds (fits + occupancy) on 2 cores <= 20 s
}

YARDSTICK_STEPS = 2_000_000          # what chain_limit.cpp runs as shipped
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


def best_time(fn: Callable[[], Any], *, repeats: int = 3, min_time: float = 0.0,
              info: dict[str, float] | None = None) -> float:
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

    def add(self, key: str, name: str, value: float | None, unit: str, ratio: float | None = None,
            ratio_to: str = "", note: str = "") -> None:
        self.rows[key] = {"name": name, "value": None if value is None else float(value), "unit": unit,
                          "ratio": None if ratio is None else float(ratio), "ratio_to": ratio_to, "note": note}

    def value(self, key: str) -> float | None:
        row = self.rows.get(key)
        return None if row is None else row["value"]

    def section(self, title: str) -> None:
        self.rows[f"__section_{len(self.rows)}"] = {"section": title}

    def target(self, name: str, measured: float | None, goal: float, *, at_most: bool = False,
               note: str = "") -> None:
        met = None if measured is None else (measured <= goal if at_most else measured >= goal)
        self.targets.append({"name": name, "measured": measured, "target": goal,
                             "comparison": "<=" if at_most else ">=", "met": met, "note": note})

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
            lines.append(f"{r['name']:<{w_name}}  {fmt(r['value']):>14}  {r['unit']:<14}  {ratio:>10}  {note}")
        m = self.meta
        lines.append("-" * len(header))
        lines.append(f"machine: {m.get('cores')} cores; a busy thread got {m.get('cpu_probe_at_start', float('nan')):.2f}"
                     f" of a CPU at the start{self._probe_end()} (1.00 = quiet machine); load average "
                     f"{m.get('load_average_at_start') or float('nan'):.2f} at the start")
        if self.targets:
            lines.append("-" * len(header))
            lines.append("targets")
            for t in self.targets:
                status = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
                lines.append(f"  {t['name']:<{w_name - 2}}  {fmt(t['measured']):>14}  {t['comparison']} "
                             f"{fmt(t['target']):<11}  {status:>10}  {t['note']}")
        return "\n".join(lines)

    def _probe_end(self) -> str:
        v = self.meta.get("cpu_probe_at_end")
        return "" if v is None else f", {v:.2f} at the end"

    def to_dict(self) -> dict[str, Any]:
        self.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.meta["load_average_at_end"] = load_average()
        self.meta["cpu_probe_at_end"] = cpu_probe()
        results = {k: v for k, v in self.rows.items() if not k.startswith("__section_")}
        return {"title": self.title, "meta": self.meta, "results": results, "targets": self.targets,
                **self.extra}


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_open(path, "w") as fh:
        json.dump(data, fh, indent=2, default=_json_default)
        fh.write("\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# --------------------------------------------------------------------------- yardstick
def find_yardstick(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The yardstick source: ``path``, else ``$NEMM_YARDSTICK``, else
    ``../shared/yardstick/chain_limit.cpp`` relative to the working directory and to the repository."""
    if path is not None:
        p = Path(path)
        return p if p.is_file() else None
    env = os.environ.get("NEMM_YARDSTICK")
    if env and Path(env).is_file():
        return Path(env)
    rel = Path("..") / "shared" / "yardstick" / "chain_limit.cpp"
    here = Path(__file__).resolve()
    bases = [Path.cwd(), *Path.cwd().parents[:2], here.parents[2], here.parents[1]]
    for base in bases:
        for cand in (base / rel, base / "shared" / "yardstick" / "chain_limit.cpp"):
            if cand.is_file():
                return cand.resolve()
    return None


def run_yardstick(source: Path | None, steps: int = YARDSTICK_STEPS, timeout: float = 300.0) -> dict[str, Any]:
    """Compile ``chain_limit.cpp`` with ``g++ -O3 -march=native`` in a temporary directory and run it.

    ``steps`` replaces the file's ``const long T = 2000000``. Returns a dict with
    ``steps_per_s`` (per core, one chain) or, when it cannot run, ``None`` and a ``reason``.
    """
    out: dict[str, Any] = {"steps_per_s": None, "steps": int(steps), "source": str(source) if source else None}
    if source is None or not Path(source).is_file():
        out["reason"] = "chain_limit.cpp not found (give --yardstick PATH or set NEMM_YARDSTICK)"
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
            subprocess.run([gxx, "-O3", "-march=native", str(src), "-o", str(exe)], check=True,
                           capture_output=True, text=True, timeout=timeout)
            r0, t0 = _children_cpu(), time.perf_counter()
            proc = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=timeout)
            out["seconds"] = time.perf_counter() - t0
            out["cpu_seconds"] = _children_cpu() - r0
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            err = getattr(exc, "stderr", "") or ""
            out["reason"] = f"yardstick failed: {exc} {err[-300:]}".strip()
            return out
    out["output"] = proc.stdout.strip()
    m = re.search(r"([0-9.]+)\s+double steps/s", proc.stdout)
    if not m or float(m.group(1)) <= 0:
        out["reason"] = f"unexpected yardstick output: {proc.stdout.strip()[:200]!r}"
        return out
    out["steps_per_s"] = float(m.group(1))
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
    note = f"{ys['steps']:,} steps"
    if ys.get("steps_per_cpu_s"):
        note += f"; CPU share {ys['cpu_share']:.2f}; {ys['steps_per_cpu_s']:,.0f} steps per CPU-second"
    return note


# --------------------------------------------------------------------------- machines
def digits() -> np.ndarray:
    from nemm import datasets

    X, _ = datasets.embedded_digits()
    return X


def trained_machine(X: np.ndarray | None = None, n_hidden: int = 6, *, hidden: str = "onehot",
                    n_epochs: int = 120, random_state: int = 0, **settings: Any):
    """A Machine trained on ``X`` (default: the embedded digits): realistic parameters and sparsity."""
    from nemm import Machine

    X = digits() if X is None else X
    return Machine(n_hidden, hidden=hidden, n_epochs=n_epochs, random_state=random_state, **settings).fit(X)


def set_threads(n: int) -> None:
    import nemm

    nemm.set_num_threads(int(n))


def default_threads() -> int:
    from nemm import _core

    return int(_core.max_threads())


def chain_throughput(machine: Any, n_chains: int, threads: int, *, total_steps: int = 200_000,
                     repeats: int = 3, seed: int = 1, info: dict[str, Any] | None = None) -> float:
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
    assert z.size == T * n_chains, "trajectory has the wrong length"
    assert z.min() >= 0 and z.max() < n_states, "hidden state out of range"
    occ = np.bincount(z, minlength=n_states) / z.size if n_states <= 1 << 16 else None
    if occ is not None:
        assert abs(occ.sum() - 1.0) < 1e-12, "occupancy does not sum to 1"
    assert np.unique(z).size > 1, "the chain never left its first state"
    return T * n_chains / sec


def paper_protocol(X: np.ndarray | None = None, *, n_epochs: int = 120, repeats: int = 1,
                   threads: int = 1, random_state: int = 0, check: bool = True,
                   info: dict[str, float] | None = None):
    """Seconds of ``Machine(6, random_state=0).fit(X)`` (paper protocol) on ``threads`` threads.

    Returns ``(seconds, machine, loglik)``: the best of ``repeats`` runs, the last trained machine
    and its log-likelihood from a 1e5-step occupancy (appendix A3), checked finite and above -170.
    ``info`` receives ``cpu`` (CPU seconds of the best run) and ``cpu_share``.
    """
    from nemm import Machine

    X = digits() if X is None else X
    set_threads(threads)
    box: list[Any] = []

    def once() -> None:
        box.append(Machine(6, n_epochs=n_epochs, random_state=random_state).fit(X))

    sec = best_time(once, repeats=repeats, info=info)
    m = box[-1]
    last = m.history_["loglik"][-1]
    assert math.isfinite(last) and last > -170, f"on-the-fly log-likelihood {last} after training"
    ll = m.score(X) if check else float("nan")
    if check:
        assert math.isfinite(ll) and ll > -170, f"log-likelihood {ll} after training"
    return sec, m, ll


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
    m = Machine(6, n_epochs=n_epochs, random_state=int(seed)).fit(X)
    t1 = time.perf_counter()
    _, pbar = m.occupancy(occupancy_steps)
    t2 = time.perf_counter()
    ll = float(m.score_samples(X, pbar=pbar).mean())
    return {"seed": int(seed), "fit_s": t1 - t0, "occupancy_s": t2 - t1, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "loglik": ll, "pbar": pbar.tolist(), "pid": os.getpid()}


# --------------------------------------------------------------------------- measurements
def measure_chains(res: Results, machine: Any, label: str, key: str, *, threads_all: int, total_steps: int,
                   repeats: int, counts: Iterable[int] = CHAIN_COUNTS,
                   yardstick: float | None = None, yardstick_cpu: float | None = None) -> dict[str, Any]:
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
    series: dict[str, Any] = {"chains": counts, "threads": {str(t): best[t] for t in thread_set},
                              "cpu_share": {str(t): share[t] for t in thread_set},
                              "steps_per_cpu_s": {str(t): per_cpu[t] for t in thread_set}}
    one = best[1][0]
    ratio = None if yardstick is None else one / yardstick
    note = f"CPU share {share[1][0]:.2f}; {per_cpu[1][0]:,.0f} steps per CPU-second"
    if yardstick_cpu:
        series["ratio_per_cpu_s"] = per_cpu[1][0] / yardstick_cpu
        note += f" = {series['ratio_per_cpu_s']:.2f}x the yardstick's"
    res.add(f"{key}.one_chain", f"{label}: 1 chain, 1 thread", one, "steps/s", ratio,
            "ours/yardstick" if ratio is not None else "", note=note)
    for i, c in enumerate(counts):
        if c != 1:
            res.add(f"{key}.C{c}.t1", f"{label}: {c} chains, 1 thread", best[1][i], "steps/s")
        if threads_all > 1:
            t = threads_all
            res.add(f"{key}.C{c}.t{t}", f"{label}: {c} chain{'s' if c > 1 else ''}, {t} threads", best[t][i],
                    "steps/s", best[t][i] / best[1][i], f"vs 1 thread; CPU share {share[t][i]:.2f}")
    if threads_all > 1:
        t = threads_all
        eff = [b / (t * a) for a, b in zip(best[1], best[t])]
        series["efficiency"] = eff
        res.add(f"{key}.efficiency", f"{label}: {t}-core efficiency, {counts[-1]} chains", eff[-1], "fraction",
                note=f"thr({t} threads) / ({t} x thr(1 thread)); CPU share {share[t][-1]:.2f} of {t}")
    return series


def bench(*, quick: bool = False, yardstick: str | None = None, yardstick_steps: int | None = None,
          threads: int | None = None, json_path: str | None = None, verbose: bool = True) -> dict[str, Any]:
    """The ``nemm bench`` measurements; prints the table and returns the results dict."""
    threads_all = int(threads) if threads else available_cores()
    saved_threads = default_threads()
    res = Results("nemm bench" + (" (quick)" if quick else ""))
    res.meta.update(quick=quick, threads_all=threads_all)
    X = digits()
    try:
        # -- yardstick
        res.section("yardstick: chain_limit.cpp, g++ -O3 -march=native, D=784, L=6 one-hot")
        steps = (QUICK_YARDSTICK_STEPS if quick else YARDSTICK_STEPS) if yardstick_steps is None else yardstick_steps
        ys = run_yardstick(find_yardstick(yardstick), steps) if steps > 0 else \
            {"steps_per_s": None, "reason": "skipped (--yardstick-steps 0)"}
        res.extra["yardstick"] = ys
        y = ys["steps_per_s"]
        res.add("yardstick", "yardstick: 1 chain, 1 core", y, "steps/s", note=yardstick_note(ys))

        # -- paper protocol (also gives the realistic one-hot parameters)
        res.section("paper protocol: Machine(6).fit(2980 digits), 120 epochs x 30 steps, T=48, 1 thread")
        epochs = 12 if quick else 120
        pinfo: dict[str, float] = {}
        sec, m6, ll = paper_protocol(X, n_epochs=epochs, repeats=1 if quick else 3, info=pinfo)
        res.add("paper_protocol_s", f"training run ({epochs} epochs), 1 thread", sec, "s",
                note=f"CPU {pinfo['cpu']:.3f} s; LL {ll:.2f} nats/digit" + ("; quick: 1/10 of the epochs" if quick else ""))
        res.add("paper_protocol_cpu_s", "  CPU seconds of that run", pinfo["cpu"], "s",
                note="one thread: what the wall time would be on a quiet machine")
        res.add("paper_protocol_step_s", "  per gradient step", sec / (epochs * 30), "s")

        # -- chains
        total = 20_000 if quick else 200_000
        reps = 1 if quick else 3
        counts = (1, 2, 8) if quick else CHAIN_COUNTS
        res.section(f"chain throughput, D=784, realistic parameters, double steps/s ({total:,} steps per point)")
        s6 = measure_chains(res, m6, "L=6 one-hot", "chain.onehot6", threads_all=threads_all, total_steps=total,
                            repeats=reps, counts=counts, yardstick=y, yardstick_cpu=ys.get("steps_per_cpu_s"))
        m8 = trained_machine(X, 8, hidden="binary", n_epochs=3 if quick else 30)
        s8 = measure_chains(res, m8, "L=8 binary", "chain.binary8", threads_all=threads_all, total_steps=total,
                            repeats=reps, counts=counts, yardstick=y, yardstick_cpu=ys.get("steps_per_cpu_s"))
        res.extra["chain_series"] = {"onehot6": s6, "binary8": s8}

        # -- targets
        one = res.value("chain.onehot6.one_chain")
        rc = s6.get("ratio_per_cpu_s")
        res.target("1 chain vs yardstick, per core", None if y is None else one / y, TARGETS["chain_vs_yardstick"],
                   note="L=6 one-hot" + (f"; per CPU-second {rc:.2f}" if rc else ""))
        eff = s6.get("efficiency")
        res.target(f"{threads_all}-core efficiency, {counts[-1]} chains", None if eff is None else eff[-1],
                   TARGETS["two_core_efficiency"], note="L=6 one-hot" if eff else "one core only")
        res.target("paper protocol, 1 thread (s)", None if quick else sec, TARGETS["paper_protocol_s"],
                   at_most=True, note="quick mode: not measured" if quick else f"CPU seconds {pinfo['cpu']:.3f}")
    finally:
        set_threads(saved_threads)
    data = res.to_dict()
    if verbose:
        print(res.table())
    if json_path:
        p = write_json(json_path, data)
        if verbose:
            print(f"results written to {p}")
    return data


# --------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nemm bench``."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a few seconds, for smoke tests")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    parser.add_argument("--yardstick", metavar="PATH",
                        help="chain_limit.cpp (default: $NEMM_YARDSTICK or ../shared/yardstick/chain_limit.cpp "
                             "relative to the working directory or the repository)")
    parser.add_argument("--yardstick-steps", type=int, default=None, metavar="T",
                        help=f"double steps the yardstick runs (default {YARDSTICK_STEPS:,}; "
                             f"{QUICK_YARDSTICK_STEPS:,} with --quick; 0 skips it)")
    parser.add_argument("--threads", type=int, default=None,
                        help=f"threads of the 'all cores' runs (default: the {available_cores()} available cores)")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``nemm bench``."""
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be at least 1")
    if args.yardstick is not None and not Path(args.yardstick).is_file():
        raise FileNotFoundError(f"yardstick source {args.yardstick} not found")
    bench(quick=args.quick, yardstick=args.yardstick, yardstick_steps=args.yardstick_steps,
          threads=args.threads, json_path=args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nemm bench", description="Benchmark the nemm engine against the "
                                     "yardstick chain loop.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
