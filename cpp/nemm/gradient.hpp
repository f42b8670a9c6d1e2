// The approximate log-likelihood gradient over the recorded chain, eqs. 16a-16d with 17.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "kernels.hpp"
#include "likelihood.hpp"
#include "math.hpp"
#include "model.hpp"
#include "simd.hpp"
#include "sparse_rows.hpp"

namespace nemm {

struct Gradient {
  Eigen::MatrixXd w;     // D x L
  Eigen::VectorXd a;     // D
  Eigen::MatrixXd wbar;  // L x D
  Eigen::VectorXd abar;  // L
  double loglik = 0;     // on-the-fly estimate: mean_n ln[(1/S) sum_s A(z(s), x_n)]
};

// The hidden states the gradient sums over, and how often each was recorded: the data enter
// only through log A(z, x), so the N x S weights collapse to N x U. One-hot: all L states
// (fields cached by refresh(); an unrecorded state has count 0, weight exp(-inf) = 0).
// Binary: the distinct recorded codes, U <= S.
struct StateIndex {
  std::vector<uint64_t> states;  // U codes, ascending
  std::vector<int> of_sample;    // S
  Eigen::VectorXd count;         // U

  StateIndex(const Settings& s, const std::vector<uint64_t>& Z) : of_sample(Z.size()) {
    if (s.hidden == Hidden::OneHot) {
      states.resize(s.L);
      count = Eigen::VectorXd::Zero(s.L);
      for (int b = 0; b < s.L; ++b) states[b] = uint64_t(b);
      for (std::size_t k = 0; k < Z.size(); ++k) {
        of_sample[k] = int(Z[k]);
        count[Eigen::Index(Z[k])] += 1;
      }
      return;
    }
    std::vector<std::size_t> order(Z.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return Z[i] < Z[j]; });
    std::vector<double> cnt;
    for (std::size_t k = 0; k < order.size(); ++k) {
      const uint64_t code = Z[order[k]];
      if (states.empty() || states.back() != code) { states.push_back(code); cnt.push_back(0); }
      of_sample[order[k]] = int(states.size()) - 1;
      cnt.back() += 1;
    }
    count = Eigen::Map<Eigen::VectorXd>(cnt.data(), Eigen::Index(cnt.size()));
  }
};

// Scratch matrices of one gradient evaluation, kept by the trainer so that a training step
// does not allocate them again.
struct GradientWorkspace {
  ForwardFields fields;      // binary hidden states only
  RowMatrixXd Q, Qp, Gp, acc;
  RowMatrixXd u, mu, gain;   // the x -> z fields, probabilities and gains of the recorded pairs
  std::vector<double> lse, shift, e;
};

// Eqs. 16a-b with one-hot states (z_u = e_u): gw[i, u] = (G[i, u] - mu[i, u] C[u]) / N and
// ga[i] += gw[i, u] for u = 0, 1, ... (gw, mu: D x U column-major; G: D x Uq row-major). Column by
// column, in its own function so that the pointers are known not to alias.
NEMM_CLONES inline void onehot_forward_gradient(const double* __restrict G, int Uq, const double* __restrict mu,
                                                const double* __restrict C, int D, int U, double invN,
                                                double* __restrict gw, double* __restrict ga) {
  for (int u = 0; u < U; ++u) {
    const double c = C[u];
    const double* m = mu + std::size_t(u) * D;
    const double* g = G + u;
    double* w = gw + std::size_t(u) * D;
    for (int i = 0; i < D; ++i) {
      w[i] = (g[std::size_t(i) * Uq] - m[i] * c) * invN;
      ga[i] += w[i];
    }
  }
}

// Eq. 16c with 17: column i of wbar's gradient (L x D, column-major) from row i of acc, the
// pixel's summed contributions, centered and averaged: out[i L + b] = (acc[i Lq + b] - abar[b]
// xbar[i]) / N. Its own function so that the pointers are known not to alias (it vectorizes).
NEMM_CLONES inline void centered_backward_gradient(const double* __restrict acc, int Lq,
                                                   const double* __restrict abar, const double* __restrict xbar,
                                                   int D, int L, double invN, double* __restrict out) {
  for (int i = 0; i < D; ++i) {
    const double* a = acc + std::size_t(i) * Lq;
    double* col = out + std::size_t(i) * L;
    for (int b = 0; b < L; ++b) col[b] = (a[b] - abar[b] * xbar[i]) * invN;
  }
}

// X: the minibatch (N data points x); Xp, Z: the S recorded pairs (x'(s), z(s)) of all chains,
// pooled. work: scratch kept between calls (a local one when null).
// r_s(x) = softmax_s log A(z(s), x) (step 3), computed in the log domain.
NEMM_CLONES inline Gradient approx_gradient(const Model& m, const std::vector<Span>& X, const std::vector<Span>& Xp,
                                            const std::vector<uint64_t>& Z, GradientWorkspace* work = nullptr) {
  GradientWorkspace local;
  GradientWorkspace& w = work ? *work : local;
  const Settings& s = m.s;
  const int D = s.D, L = s.L;
  const long N = long(X.size()), S = long(Z.size());
  if (N == 0 || S == 0 || long(Xp.size()) != S) throw std::invalid_argument("empty minibatch or recording");
  StateIndex idx(s, Z);
  const int U = int(idx.states.size());
  // The x -> z probabilities of the recorded pairs. With the Rao-Blackwellized gradient they
  // replace the sampled states: state u is counted sum_s Abar(u | x'(s)) times instead of the
  // number of times it was drawn, so every state keeps a weight and a gradient (one-hot only).
  const bool rao_blackwell = s.hidden == Hidden::OneHot && s.rao_blackwell;
  w.u.resize(S, m.Lq);
  for (long smp = 0; smp < S; ++smp)
    backward_field(m.backward_table(), m.Lq, m.field_bias_d.data(), Xp[smp], w.u.data() + std::size_t(smp) * m.Lq);
  backward_probs_rows(s, w.u.data(), S, m.Lq, w.mu, w.gain, w.shift, w.e);
  if (rao_blackwell) idx.count = w.mu.colwise().sum().transpose();

  if (s.hidden == Hidden::Binary) compute_forward_fields(s, m.p, idx.states, w.fields);
  const ForwardFields& f = s.hidden == Hidden::OneHot ? m.onehot_fields : w.fields;
  const int Uq = int(f.H.cols()), Lq = m.Lq;
  RowMatrixXd& Q = w.Q;  // N x U: Q[n, u] = sum of r_s(x_n) over the samples s in state u
  log_forward_kernel(f, X, Q);
  const Eigen::RowVectorXd log_count = idx.count.array().log().transpose();
  Q.rowwise() += log_count;
  std::vector<double>& lse = w.lse;
  lse.resize(std::size_t(N));
  row_logsumexp(Q.data(), N, U, lse.data(), w.shift, w.e);
  double ll = 0;
  const double log_S = std::log(double(S));
  for (long n = 0; n < N; ++n) {
    ll += lse[std::size_t(n)] - log_S;
    std::fill_n(w.shift.data() + std::size_t(n) * U, U, lse[std::size_t(n)]);
  }
  RowMatrixXd& Qp = w.Qp;  // r summed per state: Q padded to Uq columns for the 2-wide adds
  Qp.setZero(N, Uq);
  exp_of_difference(Q.data(), w.shift.data(), std::size_t(N) * U, w.e.data());  // -inf (unrecorded) -> 0
  for (long n = 0; n < N; ++n)
    std::copy_n(w.e.data() + std::size_t(n) * U, U, Qp.data() + std::size_t(n) * Uq);

  Gradient g;
  g.loglik = ll / double(N);
  // Eqs. 16a-b: G[:, u] = sum_n Q[n, u] x_n - (sum_n Q[n, u]) mu_{x|z_u}.
  RowMatrixXd& Gp = w.Gp;
  Gp.setZero(D, Uq);
  for (long n = 0; n < N; ++n) {
    scatter_rows(Gp.data(), Uq, X[n], Qp.data() + std::size_t(n) * Uq, Uq);
  }
  const Eigen::RowVectorXd C = Qp.leftCols(U).colwise().sum();
  const double invN = 1.0 / double(N);
  if (s.hidden == Hidden::OneHot) {  // states are 0..L-1 (z_u = e_u): column u of g.w is state u's
    // Column by column, so that the contiguous columns of mu and g.w vectorize; g.a sums the
    // columns from 0 upwards, the order of the former row loop (same bits).
    g.w.resize(D, L);
    g.a.setZero(D);
    onehot_forward_gradient(Gp.data(), Uq, f.mu.data(), C.data(), D, U, invN, g.w.data(), g.a.data());
  } else {
    const RowMatrixXd G = Gp.leftCols(U) - (f.mu.array().rowwise() * C.array()).matrix();
    Eigen::MatrixXd Zu(U, L);
    for (int u = 0; u < U; ++u)
      for (int b = 0; b < L; ++b) Zu(u, b) = hidden_bit(idx.states[u], b, s.hidden);
    g.w = G * Zu * invN;
    g.a = G.rowwise().sum() * invN;
  }

  // Eqs. 16c-d with 17: each recorded pair carries the weight sum_n r_s(x_n) = C_u / count_u.
  RowMatrixXd& acc = w.acc;  // row i: contributions of pixel i
  acc.setZero(D, Lq);
  g.abar = Eigen::VectorXd::Zero(L);
  std::vector<double> delta(Lq, 0.0);
  if (rao_blackwell) {
    // E_{z ~ Abar(.|x'(s))}[c_z g_b (z_b - mu_b)] = g_b mu_b (c_b - sum_u mu_u c_u), c_u = C_u / count_u.
    Eigen::VectorXd c(L);
    for (int b = 0; b < L; ++b) c[b] = idx.count[b] > 0 ? C[b] / idx.count[b] : 0.0;
    for (long smp = 0; smp < S; ++smp) {
      const double* mu = w.mu.data() + std::size_t(smp) * L;
      const double* gain = w.gain.data() + std::size_t(smp) * L;
      double cbar = 0;
      for (int b = 0; b < L; ++b) cbar += mu[b] * c[b];
      for (int b = 0; b < L; ++b) {
        delta[b] = gain[b] * mu[b] * (c[b] - cbar);
        g.abar[b] += delta[b];
      }
      scatter_rows(acc.data(), Lq, Xp[smp], delta.data(), Lq);
    }
  }
  for (long smp = 0; smp < S && !rao_blackwell; ++smp) {
    const int st = idx.of_sample[smp];
    const double c = C[st] / idx.count[st];
    const double* mu = w.mu.data() + std::size_t(smp) * L;
    const double* gain = w.gain.data() + std::size_t(smp) * L;
    for (int b = 0; b < L; ++b) {
      delta[b] = c * gain[b] * (hidden_bit(Z[smp], b, s.hidden) - mu[b]);
      g.abar[b] += delta[b];
    }
    scatter_rows(acc.data(), Lq, Xp[smp], delta.data(), Lq);
  }
  g.wbar.resize(L, D);
  const Eigen::VectorXd no_centering = s.centered ? Eigen::VectorXd() : Eigen::VectorXd::Zero(D);
  centered_backward_gradient(acc.data(), Lq, g.abar.data(), s.centered ? m.p.xbar.data() : no_centering.data(), D,
                             L, invN, g.wbar.data());
  g.abar *= invN;

  if (s.tied) {  // one shared matrix: d/dW = d/dw + (d/dwbar)^T
    g.w += g.wbar.transpose();
    g.wbar = g.w.transpose();
  }
  return g;
}

}  // namespace nemm
