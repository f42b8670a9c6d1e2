"""nemm: the nonequilibrium Markov machine (Baiesi and Rosso, arXiv:2512.11415).

Public API
----------
Machine, load, approx_gradient
    The estimator, its loader and the gradient of eqs. 16-17.
RBM
    The equilibrium RBM trained by its own rule (also ``nemm.baselines.RBM``).
estimate_loglik, LoglikEstimate
    ln p with an error bar for any model: exact where enumerable, else estimated (RBM: AIS).
datasets, diagnostics, baselines, exact
    Data loaders, nonequilibrium diagnostics, equilibrium baselines, exact enumeration.
openmp_enabled, set_num_threads
    Threading of the C++ core.
"""

from __future__ import annotations

import os as _os

# libgomp reads its wait policy once, when it is loaded (with nemm._core, below). By default a
# thread that waits at a barrier spins for about 300,000 pauses (milliseconds) before it sleeps:
# on a node shared with another process, the spinning threads take the cores from the threads
# they wait for, and 2-thread calls ran 2 to 25 times as long as 1-thread ones. With 10,000
# pauses (a fraction of a millisecond) a thread still catches the next piece of work without
# sleeping inside a phase, and sleeps between phases that are far apart (a wake-up costs
# microseconds against the milliseconds of a phase). A wait policy or spin count of the user's
# own is kept; the variable is set only while _core loads, so that programs started from this
# process keep their own defaults. (No effect when libgomp was already loaded by another module.)
_SPINCOUNT = "10000"
_spin_set = "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ
if _spin_set:
    _os.environ["GOMP_SPINCOUNT"] = _SPINCOUNT

try:
    from nemm import _core
except ImportError as exc:  # pragma: no cover - only when the extension was not built
    raise ImportError(
        "nemm's compiled core (nemm._core) could not be imported. Did you forget to compile? "
        "Install the package with `pip install .` from the repository root."
    ) from exc
finally:
    if _spin_set:
        del _os.environ["GOMP_SPINCOUNT"]

from nemm._checks import INT32_MAX, as_int  # noqa: E402 (after the OpenMP setting above)
from nemm.loglik import LoglikEstimate, estimate_loglik  # noqa: E402
from nemm.machine import Machine, approx_gradient, load  # noqa: E402
from nemm.rbm import RBM  # noqa: E402

__version__: str = _core.__version__


def openmp_enabled() -> bool:
    """Whether the C++ core was built with OpenMP (otherwise it runs on one thread)."""
    return bool(_core.openmp_enabled())


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads of the core for the whole process (also: OMP_NUM_THREADS).

    Every thread of the process uses the count, whichever thread set it. Results do not depend
    on it: the same bits on any number of threads. Threads help where their cores are free; on
    a node whose cores other processes keep busy, one thread can be as fast or faster, since
    every parallel step waits for all its threads to be scheduled. A process made by ``fork``
    runs the core on one thread (OpenMP's thread pool does not survive a fork).

    Raises
    ------
    TypeError
        If ``n`` is not an integer (1.9, "2" and True are not thread counts).
    ValueError
        If ``n`` is less than 1.
    """
    _core.set_num_threads(as_int(n, "n", minimum=1, maximum=INT32_MAX))


__all__ = [
    "Machine",
    "RBM",
    "LoglikEstimate",
    "estimate_loglik",
    "approx_gradient",
    "load",
    "openmp_enabled",
    "set_num_threads",
    "__version__",
]
