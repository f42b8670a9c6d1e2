"""The regimes of a trained machine (nearly reversible, intermediate, cycling) from its diagnostics."""

from __future__ import annotations

import math

__all__ = ["CYCLE_SIGMA", "NEAR_EQ_SIGMA", "REGIMES", "classify_regime", "regime_rules"]

#: Below this entropy production (nats per step), or within 3 error bars of 0: near equilibrium.
NEAR_EQ_SIGMA = 0.5
#: At or above this entropy production a machine can be called cycling (with the tau and Tr(M)/L rules).
CYCLE_SIGMA = 1.0
REGIMES = ("near-equilibrium", "intermediate", "cycling")


def classify_regime(sigma: float, sigma_err: float, tau: float, self_transition: float, L: int) -> str:
    """The regime of one machine from its hidden-chain diagnostics.

    * ``"near-equilibrium"``: ``sigma < 0.5`` nats/step, or ``sigma`` within
      three error bars of zero (no measurable arrow of time).
    * ``"cycling"``: a latent cycle: ``sigma >= 1`` nats/step **and** the
      hidden state almost never repeats, ``Tr(M)/L < 1/(2L)`` (half the random
      value), **and** the chain remembers its phase for at least a turn of an
      L-state cycle, ``tau >= L`` steps.
    * ``"intermediate"``: everything else (irreversible, but the hidden state
      lingers or the cycle loses its phase within fewer than L steps).

    Parameters
    ----------
    sigma, sigma_err : float
        The headline entropy production rate (eq. 21,
        :func:`nemm.diagnostics.entropy_production_rate`) and its error bar; NaN
        (not measured) gives ``""``.
    tau : float
        Decorrelation time (eq. 23); ``inf`` for a deterministic cycle.
    self_transition : float
        ``Tr(M)/L`` (eq. 24).
    L : int
        Number of hidden states.
    """
    s, e = float(sigma), float(sigma_err)
    if math.isnan(s):
        return ""
    if s < NEAR_EQ_SIGMA or (math.isfinite(e) and s <= 3.0 * e):
        return "near-equilibrium"
    if s >= CYCLE_SIGMA and float(self_transition) < 0.5 / L and float(tau) >= L:
        return "cycling"
    return "intermediate"


def regime_rules(L: int) -> dict[str, str]:
    """The regime thresholds in words, for reports."""
    return {
        "near-equilibrium": f"σ < {NEAR_EQ_SIGMA} nats/step, or σ within 3 error bars of 0",
        "cycling": f"σ ≥ {CYCLE_SIGMA} nats/step and Tr(M)/L < 1/(2L) = {0.5 / L:.3f} and τ ≥ L = {L} steps",
        "intermediate": "all other machines (irreversible, but lingering or losing the cycle's phase in < L steps)",
    }
