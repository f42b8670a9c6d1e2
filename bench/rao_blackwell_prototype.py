"""Numpy prototype: the Rao-Blackwellized one-hot gradient against eqs. 16a-16d (issue 18).

Eq. 16 weights each recorded pair (x'(t), z(t)) by ``r_t(x) = A(z(t), x) / sum_s A(z(s), x)``;
a state the chains did not record in this step gets no positive term. The Rao-Blackwellized
estimate replaces the sampled z(t) by every state alpha with its probability
``mu_alpha(x'(t)) = Abar(x'(t), alpha)``: the virtual pairs (x'(t), alpha) get the weights

    r_{t,alpha}(x) = mu_alpha(x'(t)) A(alpha, x) / sum_{s,beta} mu_beta(x'(s)) A(beta, x),

so the w-gradient uses the posterior under ``pbar_hat = mean_t mu(x'(t))`` (every state present)
and the wbar/abar gradients become ``sum_{t,alpha} r_{t,alpha}(x) (x'(t) - xbar)(e_alpha -
mu(x'(t)))``. Both trainers share ``bench/numpy_reference.py``'s chain, initialization and
RMSprop; the trained parameters are scored by nemm (pbar from 4 chains x 1e5 steps).

    NEMM_DATA=../shared/data/mnist OMP_NUM_THREADS=1 python bench/rao_blackwell_prototype.py \\
        --n-hidden 20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_reference import NumpyMachine, logsumexp, softplus  # noqa: E402

import nemm  # noqa: E402
from nemm import datasets  # noqa: E402


class RaoBlackwellMachine(NumpyMachine):
    """One-hot softmax machine whose gradient sums over all states instead of the sampled one."""

    def _gradient_and_ll(self, X: np.ndarray, Xp: np.ndarray, Z: np.ndarray) -> tuple[dict, float]:
        Xf = np.asarray(X, dtype=np.float64)
        N = Xf.shape[0]
        H = self.w.T + self.a  # (L, D): one-hot emission fields
        log_A = Xf @ H.T - softplus(H).sum(axis=1)  # (N, L)
        mu_x = 1.0 / (1.0 + np.exp(-H))
        mu_z, _ = self.hidden_probs(Xp)  # (S, L)
        mass = mu_z.sum(axis=0)  # sum_t mu_alpha(x'(t))
        with np.errstate(divide="ignore"):
            log_mass = np.log(mass)
        lse = logsumexp(log_A + log_mass, axis=1)  # (N,)
        post = np.exp(log_A + log_mass - lse[:, None])  # sum_t r_{t,alpha}(x_n)
        g_w = (Xf.T @ post - mu_x.T * post.sum(axis=0)) / N
        q = np.exp(log_A - lse[:, None]).sum(axis=0)  # sum_n A(alpha, x_n) / norm_n
        W = mu_z * q  # (S, L): sum_n r_{t,alpha}(x_n)
        G = W - mu_z * W.sum(axis=1, keepdims=True)
        Xc = Xp - self.xbar if self.centered else Xp.astype(np.float64)
        grads = {"w": g_w, "a": np.zeros_like(self.a), "wbar": G.T @ Xc / N, "abar": G.sum(axis=0) / N}
        return grads, float(lse.mean() - np.log(Xp.shape[0]))


def score(m: NumpyMachine, X: np.ndarray, seed: int) -> tuple[float, int]:
    """Mean ln p(x) and states above 1%, pbar from nemm's chains on the trained parameters."""
    nm = nemm.Machine.from_params(m.w, m.a, m.wbar, m.abar, m.xbar, random_state=seed)
    pbar = nm.occupancy(100_000, seed=seed + 1000, n_chains=4)[1]
    return float(nm.score_samples(X, pbar=pbar).mean()), int((pbar > 0.01).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-hidden", type=int, default=20)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--n-chains", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.1)
    args = ap.parse_args(argv)
    X = datasets.load_digits(digits=range(10), per_class=None, split="test")[0]
    print(f"ten digits, L = {args.n_hidden}, C = {args.n_chains}, lr {args.lr}, paper protocol otherwise")
    for cls in (NumpyMachine, RaoBlackwellMachine):
        for seed in args.seeds:
            t0 = time.perf_counter()
            m = cls(args.n_hidden, lr=args.lr, n_chains=args.n_chains, seed=seed).fit(X)
            ll, occupied = score(m, X, seed)
            print(
                f"{cls.__name__:<20} seed {seed}: ln p {ll:8.2f}, states > 1%: {occupied:2d}, "
                f"{time.perf_counter() - t0:5.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
