"""PyTorch (CPU) implementation of the nemm training algorithm, for benchmarks.

The same algorithm and the same choices as ``bench/numpy_reference.py`` (read
its module docstring), written with batched torch tensors under
``torch.no_grad`` and in-place updates. Computation is in **float64** by
default (``dtype=torch.float32`` is accepted for speed comparisons; the
gradient then agrees with the float64 reference only to single precision,
about 1e-7 absolute on the paper subset).

Differences of interface from ``NumpyMachine``: ``run_chain`` returns torch
tensors (uint8 ``Xp``, int64 or uint8 ``Z``, floating ``MuZ``) and
``approx_gradient`` returns a dict of tensors; both accept numpy arrays or
tensors as input. ``init_params`` takes an optional ``torch.Generator``.
``get_params`` / ``set_params`` exchange numpy arrays, so the two references can
be started from identical parameters.

Importing this module requires torch (``pip install torch``); nothing in the
package imports it.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

try:  # run as a script from bench/ or imported with bench/ on the path
    from numpy_reference import batch_sizes, default_mnist_dir, load_paper_subset
except ImportError:  # pragma: no cover - imported as bench.torch_reference
    from .numpy_reference import batch_sizes, default_mnist_dir, load_paper_subset

Tensors = dict[str, torch.Tensor]


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """Exact ``log(1 + exp(x))`` (torch's softplus switches to ``x`` above 20)."""
    return torch.logaddexp(torch.zeros((), dtype=x.dtype), x)


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


class _Walker:
    """Walk a random permutation of ``n`` indices, reshuffling when exhausted."""

    def __init__(self, n: int, gen: torch.Generator) -> None:
        self.n, self.gen = n, gen
        self.perm = torch.randperm(n, generator=gen)
        self.pos = 0

    def next(self, size: int) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        need = size
        while need > 0:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)


class TorchMachine:
    """The nonequilibrium Markov machine in PyTorch (CPU); see ``NumpyMachine``.

    Parameters
    ----------
    n_hidden, hidden, normalization, centered, tied, lr, rho, eps, n_chains, seed
        As for ``NumpyMachine``.
    dtype : torch.dtype
        Floating type of parameters and computations (default float64).
    """

    def __init__(
        self,
        n_hidden: int,
        hidden: str = "onehot",
        normalization: str = "softmax",
        centered: bool = True,
        tied: bool = False,
        lr: float = 0.1,
        rho: float = 0.9,
        eps: float = 1e-8,
        n_chains: int = 1,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if hidden not in ("onehot", "binary"):
            raise ValueError(f"hidden must be 'onehot' or 'binary', got {hidden!r}")
        if normalization not in ("softmax", "sigmoid"):
            raise ValueError(f"normalization must be 'softmax' or 'sigmoid', got {normalization!r}")
        if tied and hidden == "onehot" and normalization == "sigmoid":
            raise ValueError("tied mode needs softmax one-hot or binary hidden units")
        self.L = int(n_hidden)
        self.hidden, self.normalization = hidden, normalization
        self.centered, self.tied = centered, tied
        self.lr, self.rho, self.eps = lr, rho, eps
        self.C = int(n_chains)
        self.dtype = dtype
        self.gen = torch.Generator().manual_seed(seed)
        self.onehot = hidden == "onehot"
        self.sigmoid_norm = self.onehot and normalization == "sigmoid"

    # ------------------------------------------------------------ parameters
    def _float(self, x: object) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(self.dtype)

    @torch.no_grad()
    def init_params(self, X: object, rng: torch.Generator | None = None) -> None:
        """Appendix A1 initialization (see ``NumpyMachine.init_params``)."""
        gen = self.gen if rng is None else rng
        Xu = torch.as_tensor(np.asarray(X, dtype=np.uint8))
        Xf = Xu.to(self.dtype)
        n, D = Xf.shape
        self.xbar = Xf.mean(dim=0)
        if self.onehot:
            size = max(1, int(round(0.1 * n)))
            w = torch.empty((D, self.L), dtype=self.dtype)
            for alpha in range(self.L):
                idx = torch.randperm(n, generator=gen)[:size]
                w[:, alpha] = _logit(Xf[idx].mean(dim=0).clamp_(0.01, 0.99))
            a = torch.zeros(D, dtype=self.dtype)
        else:
            a = _logit(self.xbar.clamp(0.01, 0.99))
            w = 0.01 * torch.randn((D, self.L), generator=gen, dtype=self.dtype)
        self.w, self.a = w, a
        self.wbar = w.T.clone() if self.tied else torch.zeros((self.L, D), dtype=self.dtype)
        self.abar = torch.zeros(self.L, dtype=self.dtype)
        self.v = {k: torch.zeros_like(p) for k, p in self._trainable().items()}
        self.x_chain = Xu[torch.randint(n, (self.C,), generator=gen)].clone()

    def _trainable(self) -> Tensors:
        p: Tensors = {"w": self.w}
        if not self.onehot:
            p["a"] = self.a
        if not self.tied:
            p["wbar"] = self.wbar
        p["abar"] = self.abar
        return p

    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of ``w, a, wbar, abar, xbar`` as numpy arrays."""
        return {k: getattr(self, k).detach().cpu().numpy().copy() for k in ("w", "a", "wbar", "abar", "xbar")}

    def set_params(self, params: dict[str, object]) -> None:
        """Set ``w, a, wbar, abar, xbar`` from arrays (and reset RMSprop)."""
        for k in ("w", "a", "wbar", "abar", "xbar"):
            setattr(self, k, self._float(params[k]).clone())
        self.v = {k: torch.zeros_like(p) for k, p in self._trainable().items()}

    # --------------------------------------------------------------- kernels
    def _centered(self, Xp: torch.Tensor) -> torch.Tensor:
        Xf = Xp.to(self.dtype)
        return Xf - self.xbar if self.centered else Xf

    def hidden_probs(self, Xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``mu_{z|x}`` (n, L), and ``s = sigmoid(u)`` for the sigmoid one-hot normalization."""
        u = torch.addmm(self.abar, self._centered(Xp), self.wbar.T)
        if not self.onehot:
            return u.sigmoid_(), None
        if self.normalization == "softmax":
            return torch.softmax(u, dim=1), None
        s = u.sigmoid_()
        return s / s.sum(dim=1, keepdim=True), s

    @staticmethod
    def _ratio_of_sigmoids(u: torch.Tensor) -> torch.Tensor:
        s = u.sigmoid_()
        return s.div_(s.sum(dim=1, keepdim=True))

    def _z_matrix(self, Z: object) -> torch.Tensor:
        Zt = torch.as_tensor(np.asarray(Z) if not isinstance(Z, torch.Tensor) else Z)
        if self.onehot:
            return torch.nn.functional.one_hot(Zt.long(), self.L).to(self.dtype)
        return Zt.to(self.dtype)

    # ----------------------------------------------------------------- chain
    @torch.no_grad()
    def run_chain(self, T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance the C chains by T double steps; rows ``t*C + c`` (see ``NumpyMachine``)."""
        C, D, L = self.C, self.w.shape[0], self.L
        Xp = torch.empty((T * C, D), dtype=self.dtype)  # float while sampling, uint8 at the end
        Z = (
            torch.empty(T * C, dtype=torch.int64)
            if self.onehot
            else torch.empty((T * C, L), dtype=torch.uint8)
        )
        mux_state = torch.sigmoid(self.w.T + self.a) if self.onehot else None  # (L, D), fixed in the chain
        # Centering folded into the bias: u = wbar x + (abar - wbar xbar), one addmm per step.
        u_bias = self.abar - self.wbar @ self.xbar if self.centered else self.abar
        wbar_t = self.wbar.T.contiguous()
        x = self.x_chain.to(self.dtype)
        # All uniforms of the T double steps drawn at once: fewer generator calls.
        r_z = torch.rand((T, C, 1 if self.onehot else L), generator=self.gen, dtype=self.dtype)
        r_x = torch.rand((T, C, D), generator=self.gen, dtype=self.dtype)
        for t in range(T):
            lo, hi = t * C, (t + 1) * C
            Xp[lo:hi] = x
            u = torch.addmm(u_bias, x, wbar_t)
            if self.onehot:
                mu = torch.softmax(u, dim=1) if not self.sigmoid_norm else self._ratio_of_sigmoids(u)
                z = (r_z[t] >= torch.cumsum(mu, dim=1)).sum(dim=1).clamp_(max=L - 1)
                Z[lo:hi] = z
                mux = mux_state[z]
            else:
                zb = r_z[t] < u.sigmoid_()
                Z[lo:hi] = zb
                mux = torch.addmm(self.a, zb.to(self.dtype), self.w.T).sigmoid_()
            x = (r_x[t] < mux).to(self.dtype)
        self.x_chain = x.to(torch.uint8)
        Xp = Xp.to(torch.uint8)
        # mu_{z|x'(t)} is a deterministic function of x'(t): one batched evaluation after the loop.
        MuZ = self.hidden_probs(Xp)[0]
        return Xp, Z, MuZ

    # -------------------------------------------------------------- gradient
    def _log_A(self, Xf: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log A(z_k, x_n)`` (N, K) and ``mu_{x|z_k}`` (K, D) of states (K, L)."""
        H = torch.addmm(self.a, states, self.w.T)
        return Xf @ H.T - _softplus(H).sum(dim=1), torch.sigmoid(H)

    def _distinct_states(self, Zm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distinct hidden states (K, L) and the index of each recorded z(s) among them."""
        if self.onehot:
            return torch.eye(self.L, dtype=self.dtype), torch.argmax(Zm, dim=1)
        states, idx = torch.unique(Zm, dim=0, return_inverse=True)
        return states, idx.reshape(-1)

    @torch.no_grad()
    def _gradient_and_ll(self, X: object, Xp: object, Z: object) -> tuple[Tensors, float]:
        Xf = self._float(X)
        Xp_t = torch.as_tensor(np.asarray(Xp) if not isinstance(Xp, torch.Tensor) else Xp)
        N = Xf.shape[0]
        Zm = self._z_matrix(Z)
        S = Zm.shape[0]
        states, idx = self._distinct_states(Zm)
        log_A_state, MuX_state = self._log_A(Xf, states)
        log_A = log_A_state[:, idx]  # (N, S)
        lse = torch.logsumexp(log_A, dim=1)
        R = log_A.sub_(lse[:, None]).exp_()  # r_s(x_n), in place of log_A
        rbar = R.sum(dim=0)
        # Eqs. 16a/16b depend on s only through z(s): pool the weights per distinct state.
        R_state = torch.zeros((N, states.shape[0]), dtype=self.dtype).index_add_(1, idx, R)
        resid = (Xf.T @ R_state).sub_(MuX_state.T * R_state.sum(dim=0))  # (D, K)
        g_w = (resid @ states).div_(N)
        g_a = resid.sum(dim=1).div_(N)
        mu_z, s = self.hidden_probs(Xp_t)
        G = Zm - mu_z
        if self.sigmoid_norm:
            G.mul_(1.0 - s)  # d ln P(alpha|x) / d u_b = (1 - s_b)(z_b - P_b)
        g_wbar = ((G * rbar[:, None]).T @ self._centered(Xp_t)).div_(N)
        g_abar = (rbar @ G).div_(N)
        if self.tied:
            g_w = g_w + g_wbar.T
            g_wbar = g_w.T.clone()
        ll = float(lse.mean()) - math.log(S)
        return {"w": g_w, "a": g_a, "wbar": g_wbar, "abar": g_abar}, ll

    def approx_gradient(self, X: object, Xp: object, Z: object) -> Tensors:
        """Approximate LL gradient (eqs. 16a-16d, 17); see ``NumpyMachine.approx_gradient``."""
        return self._gradient_and_ll(X, Xp, Z)[0]

    # -------------------------------------------------------------- training
    @torch.no_grad()
    def step(self, X_batch: object, T: int) -> float:
        """One training step; returns the on-the-fly LL estimate (before the update)."""
        Xp, Z, _ = self.run_chain(T)
        grads, ll = self._gradient_and_ll(X_batch, Xp, Z)
        for k, p in self._trainable().items():
            g, v = grads[k], self.v[k]
            v.mul_(self.rho).addcmul_(g, g, value=1.0 - self.rho)
            p.addcdiv_(g, v.sqrt().add_(self.eps), value=self.lr)  # ascent, in place
        if self.tied:
            self.wbar = self.w.T.clone()
        return ll

    @torch.no_grad()
    def fit(
        self,
        X: object,
        epochs: int = 120,
        steps_per_epoch: int = 30,
        batch_start: int = 16,
        batch_end: int = 160,
        T: int = 48,
    ) -> TorchMachine:
        """Train with the paper protocol; ``ll_trace_`` holds the per-step LL estimates."""
        Xu = torch.as_tensor(np.asarray(X, dtype=np.uint8))
        self.init_params(Xu.numpy(), self.gen)
        Xf = Xu.to(self.dtype)  # converted once, indexed per minibatch
        walker = _Walker(Xu.shape[0], self.gen)
        self.ll_trace_: list[float] = []
        for size in batch_sizes(epochs, batch_start, batch_end):
            for _ in range(steps_per_epoch):
                self.ll_trace_.append(self.step(Xf[walker.next(size)], T))
        return self

    @torch.no_grad()
    def log_likelihood(self, X: object, n_steps: int = 100_000) -> float:
        """Mean ln p(x) for a one-hot machine, pbar from the occupancy of a long chain (A3)."""
        if not self.onehot:
            raise ValueError("log_likelihood is implemented for one-hot hidden states only")
        counts = torch.zeros(self.L, dtype=self.dtype)
        remaining = max(1, n_steps // self.C)
        while remaining > 0:
            # Blocks keep the pre-drawn uniforms (block * C * D doubles) near 1.6 MB.
            block = min(remaining, max(1, 200_000 // (self.C * self.w.shape[0])))
            _, Z, _ = self.run_chain(block)
            counts += torch.bincount(Z, minlength=self.L).to(self.dtype)
            remaining -= block
        log_pbar = torch.log(counts / counts.sum())
        log_A, _ = self._log_A(self._float(X), torch.eye(self.L, dtype=self.dtype))
        return float(torch.logsumexp(log_A + log_pbar, dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_mnist_dir())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--ll-steps", type=int, default=100_000, help="chain length for pbar (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X = load_paper_subset(args.data)
    dtype = torch.float32 if args.float32 else torch.float64
    machine = TorchMachine(6, n_chains=args.chains, seed=args.seed, dtype=dtype)
    t0 = time.perf_counter()
    machine.fit(X, epochs=args.epochs)
    seconds = time.perf_counter() - t0
    print(
        f"torch reference ({dtype}), paper protocol on {X.shape[0]} digits, seed {args.seed}: {seconds:.2f} s"
    )
    print(f"on-the-fly LL estimate, last epoch mean: {np.mean(machine.ll_trace_[-30:]):.3f} nats/digit")
    if args.ll_steps > 0:
        t1 = time.perf_counter()
        ll = machine.log_likelihood(X, args.ll_steps)
        print(
            f"LL with pbar from a {args.ll_steps}-step chain: {ll:.3f} nats/digit ({time.perf_counter() - t1:.2f} s)"
        )


if __name__ == "__main__":
    main()
