// Model: one machine's Settings and Params plus the derived tables the chain and gradient read.
// Float tables and thresholds for the chain, double tables for the gradient, kept in step by refresh().
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.hpp"
#include "math.hpp"
#include "params.hpp"
#include "simd.hpp"

namespace nemm {

// Call refresh() after any change of the parameters; the chain never touches the double
// parameters, only the tables. Padded sizes: Dp = pad8(D), Lp = pad8(L), Lq = pad2(L).
class Model {
 public:
  Settings s;
  Params p;

  int Dp = 0, Lp = 0;
  std::vector<float> wbarT;        // D x Lp row-major: pixel i's contribution to u
  std::vector<float> field_bias_f; // Lp
  std::vector<uint32_t> thr;       // one-hot: L x Dp thresholds of sigmoid(w[:, alpha] + a)
  std::vector<float> wT;           // binary: L x Dp, column b of w
  std::vector<float> a_f;          // binary: Dp
  std::vector<uint32_t> xbar_thr;  // Dp: thresholds of xbar, for starting fresh chains
  ForwardFields onehot_fields;     // one-hot: the fields of all L states, shared by chain and gradient
  int Lq = 0;                      // L padded to 2 (an SSE register of doubles)
  std::vector<double> wbarT_d;     // D x Lq row-major, double (odd L only): the gradient's x -> z field
  std::vector<double> field_bias_d;  // Lq

  explicit Model(const Settings& settings) : s(settings) {
    s.validate();
    p.w = Eigen::MatrixXd::Zero(s.D, s.L);
    p.a = Eigen::VectorXd::Zero(s.D);
    p.wbar = Eigen::MatrixXd::Zero(s.L, s.D);
    p.abar = Eigen::VectorXd::Zero(s.L);
    p.xbar = Eigen::VectorXd::Constant(s.D, 0.5);
    Dp = pad8(s.D);
    Lp = pad8(s.L);
    Lq = pad2(s.L);
    refresh();
  }

  // D x Lq row-major wbar^T in double: column-major wbar itself when L is even.
  const double* backward_table() const { return Lq == s.L ? p.wbar.data() : wbarT_d.data(); }

  void refresh(bool xbar_changed = true) {
    const int D = s.D, L = s.L;
    if (s.tied) p.wbar = p.w.transpose();
    Eigen::VectorXd field_bias = p.abar;  // abar - wbar xbar (centered, eq. 17) or abar
    if (s.centered) field_bias -= p.wbar * p.xbar;

    wbarT.assign(std::size_t(D) * Lp, 0.0f);
    for (int i = 0; i < D; ++i)
      for (int b = 0; b < L; ++b) wbarT[std::size_t(i) * Lp + b] = float(p.wbar(b, i));
    if (Lq != L) {  // even L: column-major wbar already has this layout (see backward_table)
      wbarT_d.assign(std::size_t(D) * Lq, 0.0);
      for (int i = 0; i < D; ++i)
        for (int b = 0; b < L; ++b) wbarT_d[std::size_t(i) * Lq + b] = p.wbar(b, i);
    }
    field_bias_d.assign(Lq, 0.0);
    for (int b = 0; b < L; ++b) field_bias_d[b] = field_bias[b];
    // Padding lanes get a huge negative bias so they never win the softmax.
    field_bias_f.assign(Lp, -1e30f);
    for (int b = 0; b < L; ++b) field_bias_f[b] = float(field_bias[b]);

    if (xbar_changed) {  // xbar is fixed during training: no need to redo this after every step
      xbar_thr.assign(Dp, 0u);
      bernoulli_thresholds(p.xbar.data(), D, xbar_thr.data());
    }

    if (s.hidden == Hidden::OneHot) {
      std::vector<uint64_t> all(L);
      for (int b = 0; b < L; ++b) all[b] = uint64_t(b);
      compute_forward_fields(s, p, all, onehot_fields);
      thr.assign(std::size_t(L) * Dp, 0u);  // padding pixels: threshold 0, never on
      for (int b = 0; b < L; ++b)
        bernoulli_thresholds(onehot_fields.mu.col(b).data(), D, thr.data() + std::size_t(b) * Dp);
    } else {
      wT.assign(std::size_t(L) * Dp, 0.0f);
      for (int b = 0; b < L; ++b)
        for (int i = 0; i < D; ++i) wT[std::size_t(b) * Dp + i] = float(p.w(i, b));
      a_f.assign(Dp, -1e30f);  // padding pixels: probability 0
      for (int i = 0; i < D; ++i) a_f[i] = float(p.a[i]);
    }
  }
};

}  // namespace nemm
