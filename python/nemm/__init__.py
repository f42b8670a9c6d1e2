"""nemm: the nonequilibrium Markov machine (Baiesi and Rosso, arXiv:2512.11415).

Public API
----------
Machine, load, approx_gradient
    The estimator, its loader and the gradient of eqs. 16-17.
RBM
    The equilibrium RBM trained by its own rule (also ``nemm.baselines.RBM``).
datasets, diagnostics, baselines, exact
    Data loaders, nonequilibrium diagnostics, equilibrium baselines, exact enumeration.
openmp_enabled, set_num_threads
    Threading of the C++ core.
"""

from __future__ import annotations

try:
    from nemm import _core
except ImportError as exc:  # pragma: no cover - only when the extension was not built
    raise ImportError(
        "nemm's compiled core (nemm._core) could not be imported. Did you forget to compile? "
        "Install the package with `pip install .` from the repository root."
    ) from exc

from nemm.machine import Machine, approx_gradient, load
from nemm.rbm import RBM

__version__: str = _core.__version__


def openmp_enabled() -> bool:
    """Whether the C++ core was built with OpenMP (otherwise it runs on one thread)."""
    return bool(_core.openmp_enabled())


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads of the core (also: the OMP_NUM_THREADS variable)."""
    _core.set_num_threads(int(n))


__all__ = ["Machine", "RBM", "approx_gradient", "load", "openmp_enabled", "set_num_threads", "__version__"]
