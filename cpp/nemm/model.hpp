// Model: one machine's Settings and Params plus the derived tables the chain and gradient read.
// Float tables and thresholds for the chain, double tables for the gradient, kept in step by refresh().
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels.hpp"
#include "math.hpp"
#include "params.hpp"
#include "simd.hpp"

namespace nemm {

// Binary hidden layer: the z -> x Bernoulli thresholds of the states the chains visit, filled
// lazily (a state's Dp thresholds are computed on its first visit after a refresh, by the same
// float arithmetic as an uncached step: same bits) and shared by all chains. Only for small
// 2^L (see kMaxBytes): then a visible step costs like a one-hot one, a table lookup.
// Thread safety: a per-state flag, 0 empty -> 1 being written (claimed by one thread with a
// compare-and-swap) -> 2 ready (release store; readers load with acquire). A thread that finds
// a state empty or being written computes the thresholds itself, so nobody ever waits and the
// results do not depend on which thread filled what.
class ThresholdCache {
 public:
  static constexpr std::size_t kMaxBytes = std::size_t(32) << 20;  // 2^L x Dp x 4 bytes at most
  static constexpr int kMaxL = 12;

  ThresholdCache() = default;
  // Copies start empty: the table is a cache, a function of the parameters alone.
  ThresholdCache(const ThresholdCache& o) { configure(o.L_, o.Dp_); }
  ThresholdCache& operator=(const ThresholdCache& o) {
    if (this != &o) configure(o.L_, o.Dp_);
    return *this;
  }

  // Sizes the table for 2^L states of Dp pixels (disabled when too large) and empties it.
  void configure(int L, int Dp) {
    const bool fits = L > 0 && L <= kMaxL && (std::size_t(1) << L) * std::size_t(Dp) * 4 <= kMaxBytes;
    const std::size_t n = fits ? std::size_t(1) << L : 0;
    if (n != n_ || Dp != Dp_) {
      // Uninitialized: pages are touched only when a state is first visited.
      thr_.reset(n ? new uint32_t[n * std::size_t(Dp)] : nullptr);
      flag_.reset(n ? new std::atomic<uint8_t>[n] : nullptr);
      n_ = n;
    }
    L_ = L;
    Dp_ = Dp;
    invalidate();
  }
  // Forget every state: call after any change of the parameters.
  void invalidate() {
    for (std::size_t z = 0; z < n_; ++z) flag_[z].store(0, std::memory_order_relaxed);
  }
  bool enabled() const { return n_ != 0; }
  // The thresholds of state z if they are ready, else nullptr.
  const uint32_t* ready(uint64_t z) const {
    return flag_[z].load(std::memory_order_acquire) == 2 ? thr_.get() + z * Dp_ : nullptr;
  }
  // Where to write state z's thresholds, if this thread may (it then must publish(z)).
  uint32_t* claim(uint64_t z) {
    uint8_t expected = 0;
    return flag_[z].compare_exchange_strong(expected, 1, std::memory_order_acquire) ? thr_.get() + z * Dp_ : nullptr;
  }
  void publish(uint64_t z) { flag_[z].store(2, std::memory_order_release); }

 private:
  int L_ = 0, Dp_ = 0;
  std::size_t n_ = 0;
  std::unique_ptr<uint32_t[]> thr_;
  std::unique_ptr<std::atomic<uint8_t>[]> flag_;
};

// Call refresh() after any change of the parameters; the chain never touches the double
// parameters, only the tables. Padded sizes: Dp = pad8(D), Lp = pad8(L), Lq = pad2(L).
class Model {
 public:
  Settings s;
  Params p;

  int Dp = 0, Lp = 0;
  std::vector<float> wbarT;            // D x Lp row-major: pixel i's contribution to u
  std::vector<float> field_bias_f;     // Lp
  std::vector<uint32_t> thr;           // one-hot: L x Dp thresholds of sigmoid(w[:, alpha] + a)
  std::vector<float> wT;               // binary: L x Dp, column b of w
  std::vector<float> a_f;              // binary: Dp
  std::vector<uint32_t> xbar_thr;      // Dp: thresholds of xbar, for starting fresh chains
  ForwardFields onehot_fields;         // one-hot: the fields of all L states, shared by chain and gradient
  int Lq = 0;                          // L padded to 2 (an SSE register of doubles)
  std::vector<double> wbarT_d;         // D x Lq row-major, double (odd L only): the gradient's x -> z field
  std::vector<double> field_bias_d;    // Lq
  mutable ThresholdCache visible_thr;  // binary: lazily filled thresholds per state (chain.hpp)

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

    // Padding lanes and pixels are zero from the first sizing on and never written: only the
    // entries that change are rewritten after a training step.
    if (wbarT.size() != std::size_t(D) * Lp) wbarT.assign(std::size_t(D) * Lp, 0.0f);
    for (int i = 0; i < D; ++i)
      for (int b = 0; b < L; ++b) wbarT[std::size_t(i) * Lp + b] = float(p.wbar(b, i));
    if (Lq != L) {  // even L: column-major wbar already has this layout (see backward_table)
      if (wbarT_d.size() != std::size_t(D) * Lq) wbarT_d.assign(std::size_t(D) * Lq, 0.0);
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
      if (thr.size() != std::size_t(L) * Dp) thr.assign(std::size_t(L) * Dp, 0u);  // padding pixels: 0, never on
      for (int b = 0; b < L; ++b)
        bernoulli_thresholds(onehot_fields.mu.col(b).data(), D, thr.data() + std::size_t(b) * Dp);
    } else {
      wT.assign(std::size_t(L) * Dp, 0.0f);
      for (int b = 0; b < L; ++b)
        for (int i = 0; i < D; ++i) wT[std::size_t(b) * Dp + i] = float(p.w(i, b));
      a_f.assign(Dp, -1e30f);  // padding pixels: probability 0
      for (int i = 0; i < D; ++i) a_f[i] = float(p.a[i]);
      visible_thr.configure(L, Dp);  // empties it: the parameters changed
    }
  }
};

}  // namespace nemm
