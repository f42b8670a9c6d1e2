"""Independent vectorized numpy implementation of the nemm training algorithm.

This file is a benchmark reference, not part of the package (nothing in
``nemm`` imports it). It implements the same algorithm as the C++ engine,
following ``docs/model.md`` (Baiesi and Rosso, arXiv:2512.11415):

* kernels: ``log A(z, x) = sum_i [x_i h_i - softplus(h_i)]`` with
  ``h = w z + a``; ``u = wbar (x - xbar) + abar`` (or ``wbar x + abar`` when not
  centered); one-hot ``P(alpha|x) = softmax(u)`` or ``s / sum(s)`` with
  ``s = sigmoid(u)``; binary ``z_b ~ Bernoulli(sigmoid(u_b))``;
* persistent chains ``x'(t) -> z(t) -> x'(t+1)``, ``C`` chains advanced together
  as a batch;
* the approximate gradient of eqs. 16a-16d with the centering of eq. 17, the
  weights ``r_t(x)`` a softmax over all recorded pairs of all chains of
  ``log A(z(s), x)`` (log domain throughout);
* RMSprop ascent, ``a`` frozen with one-hot hidden states.

Choices the spec leaves open, made here:

* chains start at uniformly drawn data points (``init_params``);
* minibatches walk a random permutation of the data; when fewer points than
  the batch size remain, the remainder is taken and the batch is completed from
  a fresh permutation;
* epoch ``e`` of ``E`` uses batch size ``floor(b0 + (b1 - b0) e / (E - 1) + 1/2)``.

Run ``python bench/numpy_reference.py`` to time the paper protocol on the 2980
test-split digits 0, 1, 2. Run as a script it pins BLAS to one thread unless
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` are set:
the matrices are small, and on a busy 2-core machine a multithreaded BLAS
made the run about 2.7 times slower.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

if __name__ == "__main__":  # must precede the numpy import to take effect
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

Params = dict[str, np.ndarray]


# ----------------------------------------------------------------- numerics
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free (tanh form)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` without overflow."""
    return np.logaddexp(0.0, x)


def logit(p: np.ndarray) -> np.ndarray:
    """Inverse of the logistic function."""
    return np.log(p) - np.log1p(-p)


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """Log-sum-exp along ``axis`` (finite inputs)."""
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m, axis=axis)


def softmax(a: np.ndarray, axis: int) -> np.ndarray:
    """Softmax along ``axis``."""
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def batch_sizes(epochs: int, batch_start: int, batch_end: int) -> list[int]:
    """Minibatch size of each epoch, growing linearly from ``batch_start`` to ``batch_end``."""
    if epochs == 1:
        return [batch_start]
    return [
        int(np.floor(batch_start + (batch_end - batch_start) * e / (epochs - 1) + 0.5)) for e in range(epochs)
    ]


class MinibatchWalker:
    """Walk a random permutation of ``n`` indices, reshuffling when exhausted."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.perm = rng.permutation(n)
        self.pos = 0

    def next(self, size: int) -> np.ndarray:
        """Indices of the next minibatch of ``size`` points."""
        parts: list[np.ndarray] = []
        need = size
        while need > 0:
            if self.pos == self.n:
                self.perm, self.pos = self.rng.permutation(self.n), 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return np.concatenate(parts)


# ------------------------------------------------------------------ machine
class NumpyMachine:
    """The nonequilibrium Markov machine, trained by the paper's algorithm (float64).

    Parameters
    ----------
    n_hidden : int
        L: number of one-hot states or of binary hidden units.
    hidden : {"onehot", "binary"}
    normalization : {"softmax", "sigmoid"}
        One-hot x -> z normalization (ignored for binary hidden units).
    centered : bool
        Use ``u = wbar (x - xbar) + abar`` (default) instead of ``wbar x + abar``.
    tied : bool
        Share one matrix, ``wbar = w.T`` (softmax one-hot or binary only).
    lr, rho, eps : float
        RMSprop learning rate, decay and denominator offset.
    n_chains : int
        C: number of persistent chains advanced together.
    seed : int
        Seed of the generator used for initialization, chains and minibatches.
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
        self.rng = np.random.default_rng(seed)
        self.onehot = hidden == "onehot"
        self.sigmoid_norm = self.onehot and normalization == "sigmoid"

    # ------------------------------------------------------------ parameters
    def init_params(self, X: np.ndarray, rng: np.random.Generator | None = None) -> None:
        """Appendix A1 initialization; also resets RMSprop and starts the chains.

        One-hot: for each state alpha a random 10 % subset of the data,
        ``w[:, alpha] = logit(subset mean clipped to [0.01, 0.99])``, ``a = 0``.
        Binary: ``a = logit(clipped data mean)``, ``w ~ 0.01 N(0, 1)``.
        ``wbar = 0`` and ``abar = 0`` (``wbar = w.T`` when tied); ``xbar`` = data mean.
        """
        rng = self.rng if rng is None else rng
        Xf = np.asarray(X, dtype=np.float64)
        n, D = Xf.shape
        self.xbar = Xf.mean(axis=0)
        if self.onehot:
            size = max(1, int(round(0.1 * n)))
            w = np.empty((D, self.L))
            for alpha in range(self.L):
                idx = rng.choice(n, size=size, replace=False)
                w[:, alpha] = logit(np.clip(Xf[idx].mean(axis=0), 0.01, 0.99))
            a = np.zeros(D)
        else:
            a = logit(np.clip(self.xbar, 0.01, 0.99))
            w = 0.01 * rng.standard_normal((D, self.L))
        self.w, self.a = w, a
        self.wbar = w.T.copy() if self.tied else np.zeros((self.L, D))
        self.abar = np.zeros(self.L)
        self.v = {k: np.zeros_like(p) for k, p in self._trainable().items()}
        # Chains start at data points (the spec leaves the start open).
        self.x_chain = np.asarray(X, dtype=np.uint8)[rng.integers(n, size=self.C)].copy()

    def _trainable(self) -> Params:
        """The parameters RMSprop updates (``a`` frozen one-hot; one matrix when tied)."""
        p: Params = {"w": self.w}
        if not self.onehot:
            p["a"] = self.a
        if not self.tied:
            p["wbar"] = self.wbar
        p["abar"] = self.abar
        return p

    def get_params(self) -> Params:
        """Copies of ``w, a, wbar, abar, xbar``."""
        return {k: getattr(self, k).copy() for k in ("w", "a", "wbar", "abar", "xbar")}

    def set_params(self, params: Params) -> None:
        """Set ``w, a, wbar, abar, xbar`` (and reset RMSprop)."""
        for k in ("w", "a", "wbar", "abar", "xbar"):
            setattr(self, k, np.array(params[k], dtype=np.float64))
        self.v = {k: np.zeros_like(p) for k, p in self._trainable().items()}

    # --------------------------------------------------------------- kernels
    def _u(self, Xp: np.ndarray) -> np.ndarray:
        """Hidden fields ``u`` (n, L) of visible states ``Xp`` (n, D)."""
        Xc = Xp - self.xbar if self.centered else Xp.astype(np.float64)
        return Xc @ self.wbar.T + self.abar

    def hidden_probs(self, Xp: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``mu_{z|x}`` (n, L), and ``s = sigmoid(u)`` for the sigmoid one-hot normalization."""
        u = self._u(Xp)
        if not self.onehot:
            return sigmoid(u), None
        if self.normalization == "softmax":
            return softmax(u, axis=1), None
        s = sigmoid(u)
        return s / s.sum(axis=1, keepdims=True), s

    def _z_matrix(self, Z: np.ndarray) -> np.ndarray:
        """Hidden states as a float (S, L) matrix (one-hot rows from indices)."""
        if self.onehot:
            return np.eye(self.L)[np.asarray(Z, dtype=np.int64)]
        return np.asarray(Z, dtype=np.float64)

    # ----------------------------------------------------------------- chain
    def run_chain(self, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance the C persistent chains by T double steps.

        Returns
        -------
        Xp : (T*C, D) uint8
            Fantasy states x'(t), row ``t*C + c``.
        Z : (T*C,) int64 (one-hot index) or (T*C, L) uint8 (binary)
            z(t) ~ Abar(x'(t), .).
        MuZ : (T*C, L) float64
            mu_{z|x'(t)}.
        """
        C, D, L = self.C, self.w.shape[0], self.L
        Xp = np.empty((T * C, D), dtype=np.uint8)
        MuZ = np.empty((T * C, L))
        Z = np.empty(T * C, dtype=np.int64) if self.onehot else np.empty((T * C, L), dtype=np.uint8)
        # Parameters are fixed during the chain: one-hot emission means are precomputed per state.
        mux_state = sigmoid(self.w.T + self.a) if self.onehot else None  # (L, D)
        x = self.x_chain
        # All uniforms of the T double steps drawn at once: fewer generator calls.
        r_z = self.rng.random((T, C, 1)) if self.onehot else self.rng.random((T, C, L))
        r_x = self.rng.random((T, C, D))
        for t in range(T):
            sl = slice(t * C, (t + 1) * C)
            mu, _ = self.hidden_probs(x)
            Xp[sl], MuZ[sl] = x, mu
            if self.onehot:
                # Inverse-CDF categorical draw; the clip guards round-off in the last cumsum.
                z = np.minimum((r_z[t] >= np.cumsum(mu, axis=1)).sum(axis=1), L - 1)
                Z[sl] = z
                mux = mux_state[z]
            else:
                zb = (r_z[t] < mu).astype(np.uint8)
                Z[sl] = zb
                mux = sigmoid(zb @ self.w.T + self.a)
            x = (r_x[t] < mux).astype(np.uint8)
        self.x_chain = x
        return Xp, Z, MuZ

    # -------------------------------------------------------------- gradient
    def _log_A(self, Xf: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``log A(z_k, x_n)`` (N, K) and the emission means ``mu_{x|z_k}`` (K, D) of states (K, L)."""
        H = states @ self.w.T + self.a  # (K, D)
        return Xf @ H.T - softplus(H).sum(axis=1), sigmoid(H)

    def _distinct_states(self, Zm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct hidden states (K, L) and the index of each recorded z(s) among them.

        ``log A(z(s), x)`` depends on z(s) only, so it is computed once per
        distinct state (L states one-hot) instead of once per recorded pair.
        """
        if self.onehot:
            return np.eye(self.L), np.argmax(Zm, axis=1)
        states, idx = np.unique(Zm, axis=0, return_inverse=True)
        return states, idx.reshape(-1)

    def _gradient_and_ll(self, X: np.ndarray, Xp: np.ndarray, Z: np.ndarray) -> tuple[Params, float]:
        """Eqs. 16a-16d (averaged over the rows of X) and the on-the-fly LL estimate."""
        Xf = np.asarray(X, dtype=np.float64)
        N = Xf.shape[0]
        Zm = self._z_matrix(Z)
        S = Zm.shape[0]
        states, idx = self._distinct_states(Zm)
        log_A_state, MuX_state = self._log_A(Xf, states)
        log_A = log_A_state[:, idx]  # (N, S): log A(z(s), x_n)
        lse = logsumexp(log_A, axis=1)
        R = np.exp(log_A - lse[:, None])  # r_s(x_n), rows sum to 1
        rbar = R.sum(axis=0)  # sum over the minibatch of r_s(x_n)
        # Eqs. 16a/16b depend on s only through z(s): pool the weights per distinct state.
        R_state = R @ np.eye(states.shape[0])[idx]  # (N, K)
        resid = Xf.T @ R_state - MuX_state.T * R_state.sum(axis=0)  # (D, K)
        g_w = resid @ states / N
        g_a = resid.sum(axis=1) / N
        mu_z, s = self.hidden_probs(Xp)
        G = Zm - mu_z
        if self.sigmoid_norm:
            G *= 1.0 - s  # d ln P(alpha|x) / d u_b = (1 - s_b)(z_b - P_b)
        Xc = Xp - self.xbar if self.centered else Xp.astype(np.float64)
        g_wbar = (G * rbar[:, None]).T @ Xc / N
        g_abar = rbar @ G / N
        if self.tied:
            g_w = g_w + g_wbar.T
            g_wbar = g_w.T.copy()
        ll = float(lse.mean() - np.log(S))
        return {"w": g_w, "a": g_a, "wbar": g_wbar, "abar": g_abar}, ll

    def approx_gradient(self, X: np.ndarray, Xp: np.ndarray, Z: np.ndarray) -> Params:
        """Approximate LL gradient (eqs. 16a-16d, 17) from a recorded chain.

        ``r_t(x)`` is the softmax over all recorded pairs (all chains pooled) of
        ``log A(z(t), x)``; ``mu_{z|x'}`` is recomputed from ``Xp``. When tied,
        ``w`` holds ``g_w + g_wbar.T`` and ``wbar`` its transpose.
        """
        return self._gradient_and_ll(X, Xp, Z)[0]

    # -------------------------------------------------------------- training
    def step(self, X_batch: np.ndarray, T: int) -> float:
        """One training step; returns the on-the-fly LL estimate (nats per point).

        The estimate is ``mean_n [logsumexp_s log A(z(s), x_n) - log S]`` with the
        parameters before the update.
        """
        Xp, Z, _ = self.run_chain(T)
        grads, ll = self._gradient_and_ll(X_batch, Xp, Z)
        for k, p in self._trainable().items():
            g = grads[k]
            v = self.v[k]
            v *= self.rho
            v += (1.0 - self.rho) * g * g
            p += self.lr * g / (np.sqrt(v) + self.eps)  # ascent, in place
        if self.tied:
            self.wbar = self.w.T.copy()
        return ll

    def fit(
        self,
        X: np.ndarray,
        epochs: int = 120,
        steps_per_epoch: int = 30,
        batch_start: int = 16,
        batch_end: int = 160,
        T: int = 48,
    ) -> NumpyMachine:
        """Train with the paper protocol; ``ll_trace_`` holds the per-step LL estimates."""
        X = np.asarray(X, dtype=np.uint8)
        self.init_params(X, self.rng)
        walker = MinibatchWalker(X.shape[0], self.rng)
        self.ll_trace_: list[float] = []
        for size in batch_sizes(epochs, batch_start, batch_end):
            for _ in range(steps_per_epoch):
                self.ll_trace_.append(self.step(X[walker.next(size)], T))
        return self

    # ------------------------------------------------------------ evaluation
    def log_likelihood(self, X: np.ndarray, n_steps: int = 100_000) -> float:
        """Mean ln p(x) for a one-hot machine, pbar from the occupancy of a long chain (A3)."""
        if not self.onehot:
            raise ValueError("log_likelihood is implemented for one-hot hidden states only")
        counts = np.zeros(self.L)
        remaining = max(1, n_steps // self.C)
        while remaining > 0:
            # Blocks keep the pre-drawn uniforms (block * C * D doubles) near 1.6 MB.
            block = min(remaining, max(1, 200_000 // (self.C * self.w.shape[0])))
            _, Z, _ = self.run_chain(block)
            counts += np.bincount(Z, minlength=self.L)
            remaining -= block
        with np.errstate(divide="ignore"):
            log_pbar = np.log(counts / counts.sum())
        log_A, _ = self._log_A(np.asarray(X, dtype=np.float64), np.eye(self.L))
        joint = log_A + log_pbar
        m = joint.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(joint - m).sum(axis=1)) + m[:, 0]))


# ------------------------------------------------------------------- script
def load_paper_subset(directory: Path) -> np.ndarray:
    """First 1000 test-split images of each digit 0, 1, 2 (980 zeros), pixel > 127."""
    with gzip.open(directory / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(directory / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    idx = np.sort(np.concatenate([np.flatnonzero(labels == k)[:1000] for k in (0, 1, 2)]))
    return (images[idx] > 127).astype(np.uint8)


def default_mnist_dir() -> Path:
    """``$NEMM_SHARED/data/mnist`` or ``<repo>/../shared/data/mnist``."""
    shared = os.environ.get("NEMM_SHARED")
    base = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    return base / "data" / "mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_mnist_dir())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--ll-steps", type=int, default=100_000, help="chain length for pbar (0: skip)")
    args = parser.parse_args()
    X = load_paper_subset(args.data)
    machine = NumpyMachine(6, n_chains=args.chains, seed=args.seed)
    t0 = time.perf_counter()
    machine.fit(X, epochs=args.epochs)
    seconds = time.perf_counter() - t0
    last = np.mean(machine.ll_trace_[-30:])
    print(f"numpy reference, paper protocol on {X.shape[0]} digits, seed {args.seed}: {seconds:.2f} s")
    print(f"on-the-fly LL estimate, last epoch mean: {last:.3f} nats/digit")
    if args.ll_steps > 0:
        t1 = time.perf_counter()
        ll = machine.log_likelihood(X, args.ll_steps)
        print(
            f"LL with pbar from a {args.ll_steps}-step chain: {ll:.3f} nats/digit ({time.perf_counter() - t1:.2f} s)"
        )


if __name__ == "__main__":
    main()
