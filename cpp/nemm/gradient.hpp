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
// Binary: the distinct recorded states, U <= S, in ascending order of the states read as
// numbers (their codes up to 64 units).
struct StateIndex {
  std::vector<uint64_t> states;  // U states of state_words(s) words, ascending
  std::vector<int> of_sample;    // S
  Eigen::VectorXd count;         // U

  StateIndex(const Settings& s, const std::vector<uint64_t>& Z) : of_sample(Z.size() / std::size_t(state_words(s))) {
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
    const std::size_t W = std::size_t(state_words(s));
    // Words compared from the most significant one down: one word is the code's order.
    auto less = [&](std::size_t i, std::size_t j) {
      return std::lexicographical_compare(
          Z.rbegin() + std::ptrdiff_t(Z.size() - (i + 1) * W), Z.rbegin() + std::ptrdiff_t(Z.size() - i * W),
          Z.rbegin() + std::ptrdiff_t(Z.size() - (j + 1) * W), Z.rbegin() + std::ptrdiff_t(Z.size() - j * W));
    };
    std::vector<std::size_t> order(of_sample.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), less);
    std::vector<double> cnt;
    for (std::size_t k = 0; k < order.size(); ++k) {
      const uint64_t* z = Z.data() + order[k] * W;
      if (states.empty() || !std::equal(z, z + W, states.end() - std::ptrdiff_t(W))) {
        states.insert(states.end(), z, z + W);
        cnt.push_back(0);
      }
      of_sample[order[k]] = int(cnt.size()) - 1;
      cnt.back() += 1;
    }
    count = Eigen::Map<Eigen::VectorXd>(cnt.data(), Eigen::Index(cnt.size()));
  }
};

// Scratch matrices of one gradient evaluation, kept by the trainer so that a training step
// does not allocate them again.
struct GradientWorkspace {
  ForwardFields fields;  // binary hidden states only
  RowMatrixXd Q, Qp, Gp, acc;
  RowMatrixXd u, mu, gain;  // the x -> z fields, probabilities and gains of the recorded pairs
  RowMatrixXd delta;        // S x Lq: each pair's contribution to the x -> z gradient (eqs. 16c-d)
  std::vector<double> lse;
};

// Eqs. 16a-b with one-hot states (z_u = e_u), for the states [u0, u1) and pixels [i0, i1):
// gw[i, u] = (G[i, u] - mu[i, u] C[u]) / N (gw, mu: D x U column-major; G: D x Uq row-major).
// Column by column, in its own function so that the pointers are known not to alias.
NEMM_CLONES inline void onehot_forward_gradient(const double* __restrict G, int Uq, const double* __restrict mu,
                                                const double* __restrict C, int D, int u0, int u1, int i0, int i1,
                                                double invN, double* __restrict gw) {
  for (int u = u0; u < u1; ++u) {
    const double c = C[u];
    const double* m = mu + std::size_t(u) * D;
    const double* g = G + u;
    double* w = gw + std::size_t(u) * D;
    for (int i = i0; i < i1; ++i) w[i] = (g[std::size_t(i) * Uq] - m[i] * c) * invN;
  }
}

// ga[i] = sum_u gw[i, u] for the pixels [i0, i1), the columns added from u = 0 upwards (gw: D x U
// column-major): the order of the former row loop, the same bits.
NEMM_CLONES inline void ordered_row_sums(const double* __restrict gw, int D, int U, int i0, int i1,
                                         double* __restrict ga) {
  for (int i = i0; i < i1; ++i) ga[i] = 0.0;
  for (int u = 0; u < U; ++u) {
    const double* w = gw + std::size_t(u) * D;
    for (int i = i0; i < i1; ++i) ga[i] += w[i];
  }
}

// Eq. 16c with 17 for the hidden units [b0, b1) and pixels [i0, i1): entries b of columns i of
// wbar's gradient (L x D, column-major) from row i of acc, the pixel's summed contributions,
// centered and averaged: out[i L + b] = (acc[i Lq + b] - abar[b] xbar[i]) / N. Its own function
// so that the pointers are known not to alias (it vectorizes).
NEMM_CLONES inline void centered_backward_gradient(const double* __restrict acc, int Lq, const double* __restrict abar,
                                                   const double* __restrict xbar, int L, int b0, int b1, int i0, int i1,
                                                   double invN, double* __restrict out) {
  for (int i = i0; i < i1; ++i) {
    const double* a = acc + std::size_t(i) * Lq;
    double* col = out + std::size_t(i) * L;
    for (int b = b0; b < b1; ++b) col[b] = (a[b] - abar[b] * xbar[i]) * invN;
  }
}

// Eqs. 16c-d with 17: the contribution delta[b] of the recorded pairs [s0, s1) to the x -> z
// gradient, into rows of delta (Lq wide; the padding stays zero). Sampled: pair s in state z(s)
// carries the weight c(s) = C_u / count_u of its state, delta[b] = c(s) g_b (z_b - mu_b).
// Rao-Blackwellized: E_{z ~ Abar(.|x'(s))}[c_z g_b (z_b - mu_b)] = g_b mu_b (c_b - sum_u mu_u c_u),
// with c (L) the per-state weights. Pairs are independent: any split gives the same bits.
NEMM_CLONES inline void pair_deltas(const Settings& s, const StateIndex& idx, const std::vector<uint64_t>& Z,
                                    const double* C, const double* c, const RowMatrixXd& mu_all,
                                    const RowMatrixXd& gain_all, long s0, long s1, RowMatrixXd& delta_all) {
  const int L = s.L, Lq = int(delta_all.cols());
  const std::size_t W = std::size_t(state_words(s));
  for (long smp = s0; smp < s1; ++smp) {
    const double* mu = mu_all.data() + std::size_t(smp) * L;
    const double* gain = gain_all.data() + std::size_t(smp) * L;
    double* delta = delta_all.data() + std::size_t(smp) * Lq;
    if (c) {
      double cbar = 0;
      for (int b = 0; b < L; ++b) cbar += mu[b] * c[b];
      for (int b = 0; b < L; ++b) delta[b] = gain[b] * mu[b] * (c[b] - cbar);
    } else {
      const int st = idx.of_sample[smp];
      const double cs = C[st] / idx.count[st];
      for (int b = 0; b < L; ++b)
        delta[b] = cs * gain[b] * (hidden_bit(Z.data() + std::size_t(smp) * W, b, s.hidden) - mu[b]);
    }
    for (int b = L; b < Lq; ++b) delta[b] = 0.0;
  }
}

// X: the minibatch (N data points x); Xp, Z: the S recorded pairs (x'(s), z(s)) of all chains,
// pooled. work: scratch kept between calls (a local one when null).
// r_s(x) = softmax_s log A(z(s), x) (step 3), computed in the log domain.
//
// Threads: one parallel region, in phases separated by barriers; each phase is a set of pieces
// handed out dynamically, every piece either whole rows (a minibatch row, a recorded pair) or a
// tile of columns accumulated over the rows in their order (ColumnTiles, kernels.hpp), for a
// piece of the pixels when the rows are scattered into pixel rows (PixelRows). No sum is
// split between threads, so every number is the same on any number of threads -- and the same
// as on one. The short sums over all rows or states (the log-likelihood, the column sums C and
// the state counts, g.abar) run on one thread in their former order.
inline Gradient approx_gradient(const Model& m, const std::vector<Span>& X, const std::vector<Span>& Xp,
                                const std::vector<uint64_t>& Z, GradientWorkspace* work = nullptr) {
  GradientWorkspace local;
  GradientWorkspace& w = work ? *work : local;
  const Settings& s = m.s;
  const int D = s.D, L = s.L, Lq = m.Lq;
  const long N = long(X.size()), S = long(Z.size() / std::size_t(state_words(s)));
  if (N == 0 || S == 0 || long(Xp.size()) != S) throw std::invalid_argument("empty minibatch or recording");
  StateIndex idx(s, Z);
  const int U = int(idx.count.size());
  const bool onehot = s.hidden == Hidden::OneHot;
  // The x -> z probabilities of the recorded pairs. With the Rao-Blackwellized gradient they
  // replace the sampled states: state u is counted sum_s Abar(u | x'(s)) times instead of the
  // number of times it was drawn, so every state keeps a weight and a gradient (one-hot only).
  const bool rao_blackwell = onehot && s.rao_blackwell;
  if (!onehot) size_forward_fields(s, U, w.fields);
  const ForwardFields& f = onehot ? m.onehot_fields : w.fields;
  const int Uq = int(f.H.cols());
  w.u.resize(S, Lq);
  w.mu.resize(S, L);
  w.gain.resize(S, L);
  w.Q.resize(N, U);    // N x U: Q[n, u] = sum of r_s(x_n) over the samples s in state u
  w.Qp.resize(N, Uq);  // r summed per state: Q padded to Uq columns for the 2-wide adds
  w.lse.resize(std::size_t(N));
  w.Gp.resize(D, Uq);
  w.acc.resize(D, Lq);  // row i: contributions of pixel i
  w.delta.resize(S, Lq);
  Gradient g;
  g.abar = Eigen::VectorXd::Zero(L);
  g.wbar.resize(L, D);
  if (onehot) {
    g.w.resize(D, L);
    g.a.resize(D);
  }
  const ColumnTiles tiles_L(Lq, D), tiles_U(Uq, D);  // of the x -> z and the z -> x tables
  const long s_pieces = (S + kRowPiece - 1) / kRowPiece, n_pieces = (N + kRowPiece - 1) / kRowPiece;
  const long i_pieces = (D + kRowPiece - 1) / kRowPiece;
  const double invN = 1.0 / double(N), log_S = std::log(double(S));
  const Eigen::VectorXd no_centering = s.centered ? Eigen::VectorXd() : Eigen::VectorXd::Zero(D);
  const double* xbar = s.centered ? m.p.xbar.data() : no_centering.data();
  std::vector<double> init;  // log_forward_kernel's initial values
  Eigen::RowVectorXd log_count, C;
  Eigen::VectorXd c;  // Rao-Blackwellized: the weight C_u / count_u of each state
  double ll = 0;
  // Known before the region (one barrier fewer each): the one-hot fields, and the sampled counts.
  if (onehot) log_forward_init(f, init);
  const bool counts_known = !rao_blackwell;
  if (counts_known) log_count = idx.count.array().log().transpose();
  // r_s(x_n) summed per state for the rows of piece r: the rows of Qp, and ln of the estimate's terms.
  auto weigh_rows = [&](long r, std::vector<double>& shift, std::vector<double>& e) {
    const long n0 = r * kRowPiece, n1 = std::min(N, n0 + kRowPiece), rows = n1 - n0;
    double* q = w.Q.data() + std::size_t(n0) * U;
    for (long n = 0; n < rows; ++n)
      for (int u = 0; u < U; ++u) q[std::size_t(n) * U + u] += log_count[u];
    row_logsumexp(q, rows, U, w.lse.data() + n0, shift, e);
    for (long n = 0; n < rows; ++n) std::fill_n(shift.data() + std::size_t(n) * U, U, w.lse[std::size_t(n0 + n)]);
    exp_of_difference(q, shift.data(), std::size_t(rows) * U, e.data());  // -inf (unrecorded) -> 0
    for (long n = 0; n < rows; ++n) {
      double* qp = w.Qp.data() + std::size_t(n0 + n) * Uq;
      std::copy_n(e.data() + std::size_t(n) * U, U, qp);
      std::fill(qp + U, qp + Uq, 0.0);
    }
  };
  PixelRows pix_X, pix_Xp;  // the minibatch and the pairs transposed: G and acc as sums per pixel
  pix_X.build(X.data(), N, D);
  pix_Xp.build(Xp.data(), S, D);
  const double work_size = 2.0 * (active_pixels(X) * Uq + active_pixels(Xp) * Lq);
  RegionError err;
#pragma omp parallel if (worth_threads(work_size, 8)) num_threads(n_threads())
  {
    std::vector<double> scratch, shift, e, ur;
    err.run([&] { scratch.resize(std::size_t(std::max(tiles_L.width, tiles_U.width))); });
    if (!onehot) {
      err.always([&] { forward_fields_pieces(s, m.p, idx.states, w.fields); });
#pragma omp single
      err.run([&] { log_forward_init(f, init); });
    }
    // The x -> z fields u = wbar (x' - xbar) + abar of the pairs (eqs. 11, 17) and log A(z_u, x_n) of
    // the minibatch rows.
    const long k_fields = tiles_L.count * s_pieces, k_logA = tiles_U.count * n_pieces;
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < k_fields + k_logA; ++k)
      err.run([&] {
        if (k < k_fields) {
          const int t = int(k / s_pieces);
          const long r = k % s_pieces;
          sum_rows_tile(m.backward_table(), Lq, Xp.data(), r * kRowPiece, std::min(S, (r + 1) * kRowPiece),
                        m.field_bias_d.data(), tiles_L.begin(t), tiles_L.end(t), w.u.data(), std::size_t(Lq), Lq,
                        scratch.data());
        } else {
          const int t = int((k - k_fields) / n_pieces);
          const long r = (k - k_fields) % n_pieces;
          sum_rows_tile(f.H.data(), Uq, X.data(), r * kRowPiece, std::min(N, (r + 1) * kRowPiece), init.data(),
                        tiles_U.begin(t), tiles_U.end(t), w.Q.data(), std::size_t(U), U, scratch.data());
        }
      });
    // The x -> z probabilities of the pairs; with the sampled counts, the rows' weights too.
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < s_pieces + (counts_known ? n_pieces : 0); ++k)
      err.run([&] {
        if (k < s_pieces)
          backward_probs_range(s, w.u.data(), k * kRowPiece, std::min(S, (k + 1) * kRowPiece), Lq, w.mu.data(),
                               w.gain.data(), shift, e, ur);
        else
          weigh_rows(k - s_pieces, shift, e);
      });
    if (!counts_known) {
#pragma omp single
      err.run([&] {
        idx.count = w.mu.colwise().sum().transpose();
        log_count = idx.count.array().log().transpose();
      });
#pragma omp for schedule(dynamic, 1)
      for (long r = 0; r < n_pieces; ++r) err.run([&] { weigh_rows(r, shift, e); });
    }
#pragma omp single
    err.run([&] {
      for (long n = 0; n < N; ++n) ll += w.lse[std::size_t(n)] - log_S;
      C = w.Qp.leftCols(U).colwise().sum();
      if (rao_blackwell) {
        c.resize(L);
        for (int b = 0; b < L; ++b) c[b] = idx.count[b] > 0 ? C[b] / idx.count[b] : 0.0;
      }
    });
    // Eqs. 16a-b, G[:, u] = sum_n Q[n, u] x_n - (sum_n Q[n, u]) mu_{x|z_u}, per tile of states and
    // piece of pixels (one-hot: with those entries of g.w, z_u = e_u); and the pairs'
    // contributions to 16c-d.
    const long k_G = tiles_U.count * i_pieces;
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < k_G + s_pieces; ++k)
      err.run([&] {
        if (k < k_G) {
          const int c0 = tiles_U.begin(int(k / i_pieces)), c1 = tiles_U.end(int(k / i_pieces));
          const int i0 = int((k % i_pieces) * kRowPiece), i1 = int(std::min<long>(D, i0 + kRowPiece));
          gather_rows_tile(w.Gp.data(), Uq, pix_X, w.Qp.data(), std::size_t(Uq), c0, c1, i0, i1);
          if (onehot)
            onehot_forward_gradient(w.Gp.data(), Uq, f.mu.data(), C.data(), D, c0, std::min(c1, U), i0, i1, invN,
                                    g.w.data());
        } else {
          const long r = k - k_G;
          pair_deltas(s, idx, Z, C.data(), rao_blackwell ? c.data() : nullptr, w.mu, w.gain, r * kRowPiece,
                      std::min(S, (r + 1) * kRowPiece), w.delta);
        }
      });
#pragma omp single
    err.run([&] {
      for (long smp = 0; smp < S; ++smp) {
        const double* delta = w.delta.data() + std::size_t(smp) * Lq;
        for (int b = 0; b < L; ++b) g.abar[b] += delta[b];
      }
    });
    // Eqs. 16c-d with 17 per tile of hidden units and piece of pixels, with those entries of
    // g.wbar; one-hot: g.a per piece of pixels.
    const long k_acc = tiles_L.count * i_pieces, k_a = onehot ? i_pieces : 0;
#pragma omp for schedule(dynamic, 1)
    for (long k = 0; k < k_acc + k_a; ++k)
      err.run([&] {
        if (k < k_acc) {
          const int c0 = tiles_L.begin(int(k / i_pieces)), c1 = tiles_L.end(int(k / i_pieces));
          const int i0 = int((k % i_pieces) * kRowPiece), i1 = int(std::min<long>(D, i0 + kRowPiece));
          gather_rows_tile(w.acc.data(), Lq, pix_Xp, w.delta.data(), std::size_t(Lq), c0, c1, i0, i1);
          centered_backward_gradient(w.acc.data(), Lq, g.abar.data(), xbar, L, c0, std::min(c1, L), i0, i1, invN,
                                     g.wbar.data());
        } else {
          const long r = k - k_acc;
          ordered_row_sums(g.w.data(), D, U, int(r * kRowPiece), int(std::min<long>(D, (r + 1) * kRowPiece)),
                           g.a.data());
        }
      });
  }
  err.rethrow();
  g.loglik = ll / double(N);
  if (!onehot) {
    const RowMatrixXd G = w.Gp.leftCols(U) - (f.mu.array().rowwise() * C.array()).matrix();
    Eigen::MatrixXd Zu(U, L);
    for (int u = 0; u < U; ++u)
      for (int b = 0; b < L; ++b)
        Zu(u, b) = hidden_bit(idx.states.data() + std::size_t(u) * state_words(s), b, s.hidden);
    g.w = G * Zu * invN;
    g.a = G.rowwise().sum() * invN;
  }
  g.abar *= invN;

  if (s.tied) {  // one shared matrix: d/dW = d/dw + (d/dwbar)^T
    g.w += g.wbar.transpose();
    g.wbar = g.w.transpose();
  }
  return g;
}

}  // namespace nemm
