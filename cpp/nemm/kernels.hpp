// The two transition kernels in double precision: fields and means of A and Abar.
// A: z -> x (eqs. 8, 10, 14); Abar: x -> z (eqs. 9, 11, 17, 19); spec "Transition kernels".
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "math.hpp"
#include "params.hpp"
#include "simd.hpp"

namespace nemm {

// x -> z field u = wbar (x - xbar) + abar in double, from the active pixels of x (eq. 11, 17).
// wbarT_d: D x Lq row-major (wbar transposed, zero padded), bias: Lq; u must hold Lq entries.
inline void backward_field(const double* wbarT_d, int Lq, const double* bias, Span x, double* u) {
  sum_rows(wbarT_d, Lq, x, bias, u, Lq);
}

// mu_{z|x} and the factor d ln P(z|x) / d u_b = g_b (z_b - mu_b) of the x -> z kernel (u, mu,
// g: L entries): softmax and factorized sigmoid have g = 1 (eqs. 13c-d, 16c-d); the sigmoid
// ratio of eq. 19 has d ln P(alpha|x) / d u_b = (1 - s_b)(delta_ab - P_b) (spec), so g_b = 1 - s_b.
inline void backward_probs(const Settings& s, const double* u, double* mu, double* g) {
  const int L = s.L;
  if (s.hidden == Hidden::Binary) {
    for (int b = 0; b < L; ++b) { mu[b] = sigmoid(u[b]); g[b] = 1.0; }
    return;
  }
  if (s.normalization == Normalization::Softmax) {
    double m = u[0];
    for (int b = 1; b < L; ++b) m = std::max(m, u[b]);
    double tot = 0;
    for (int b = 0; b < L; ++b) { mu[b] = exp_nonpositive(u[b] - m); tot += mu[b]; }
    for (int b = 0; b < L; ++b) { mu[b] /= tot; g[b] = 1.0; }
  } else {
    // P = s / sum(s) as a softmax of ln s_b = -softplus(-u_b): no 0/0 when every s_b underflows.
    double m = -std::numeric_limits<double>::infinity();
    for (int b = 0; b < L; ++b) { mu[b] = log_sigmoid(u[b]); m = std::max(m, mu[b]); }
    double tot = 0;
    for (int b = 0; b < L; ++b) { mu[b] = exp_nonpositive(mu[b] - m); tot += mu[b]; }
    for (int b = 0; b < L; ++b) { mu[b] /= tot; g[b] = sigmoid(-u[b]); }  // 1 - s_b
  }
}

// backward_probs of n rows of fields (u: n x stride, row-major) into mu and g (n x L), the same
// bits; the softmax's exponentials of all rows go in one vectorized pass. shift, e: scratch.
inline void backward_probs_rows(const Settings& s, const double* u, long n, int stride, RowMatrixXd& mu,
                                RowMatrixXd& g, std::vector<double>& shift, std::vector<double>& e) {
  const int L = s.L;
  mu.resize(n, L);
  g.resize(n, L);
  if (s.hidden == Hidden::Binary || s.normalization != Normalization::Softmax) {
    for (long r = 0; r < n; ++r)
      backward_probs(s, u + std::size_t(r) * stride, mu.data() + std::size_t(r) * L, g.data() + std::size_t(r) * L);
    return;
  }
  const std::size_t nL = std::size_t(n) * L;
  shift.resize(nL);
  e.resize(nL);
  std::vector<double> ur(nL);
  for (long r = 0; r < n; ++r) {
    const double* ru = u + std::size_t(r) * stride;
    double m = ru[0];
    for (int b = 1; b < L; ++b) m = std::max(m, ru[b]);
    std::copy_n(ru, L, ur.data() + std::size_t(r) * L);
    std::fill_n(shift.data() + std::size_t(r) * L, L, m);
  }
  exp_of_difference(ur.data(), shift.data(), nL, e.data());
  g.setOnes();
  for (long r = 0; r < n; ++r) {
    const double* er = e.data() + std::size_t(r) * L;
    double tot = 0;
    for (int b = 0; b < L; ++b) tot += er[b];
    double* mr = mu.data() + std::size_t(r) * L;
    for (int b = 0; b < L; ++b) mr[b] = er[b] / tot;
  }
}

// H = w Z^T + a for a set of U hidden states (D x U, row-major so that one pixel's U fields are
// contiguous), with sum_i softplus(H[i, u]) and mu_{x|z} = sigmoid(H) (eq. 14).
struct ForwardFields {
  RowMatrixXd H;         // D x pad2(U), zero padded: rows are summed two columns at a time
  Eigen::MatrixXd mu;    // D x U, column-major: one state's means are contiguous
  Eigen::VectorXd sp;    // U: sum_i softplus(H[i, u]), the normalizer of log A
  std::vector<double> h, e;  // scratch: one state's fields and exponentials
};

// Fills f (reusing its storage): the fields of the given hidden states (codes).
inline void compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states,
                                   ForwardFields& f) {
  const int D = s.D, U = int(states.size()), Uq = pad2(U);
  if (f.H.rows() != D || f.H.cols() != Uq) f.H = RowMatrixXd::Zero(D, Uq);
  f.mu.resize(D, U);
  f.sp.resize(U);
  f.h.resize(D);
  f.e.resize(D);
  double* h = f.h.data();
  for (int u = 0; u < U; ++u) {
    if (s.hidden == Hidden::OneHot && states[u] < uint64_t(s.L)) {  // a + w[:, z]: the same single add
      add_vectors(h, p.a.data(), p.w.col(Eigen::Index(states[u])).data(), D);
    } else {
      std::copy_n(p.a.data(), D, h);
      for (int b = 0; b < s.L; ++b)
        if (hidden_bit(states[u], b, s.hidden) != 0.0) add_to(h, p.w.col(b).data(), D);
    }
    f.sp[u] = softplus_sum_sigmoid(h, D, f.mu.col(u).data(), f.e.data());
    double* Hu = f.H.data() + u;
    for (int i = 0; i < D; ++i) Hu[std::size_t(i) * Uq] = h[i];
  }
}

inline ForwardFields compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states) {
  ForwardFields f;
  compute_forward_fields(s, p, states, f);
  return f;
}

}  // namespace nemm
