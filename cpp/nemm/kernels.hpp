// The two transition kernels (spec "Transition kernels"): A (z -> x, eqs. 8, 10, 14) and
// Abar (x -> z, eqs. 9, 11, 19), the parameters they read, and the float tables the chain uses.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace nemm {

enum class Hidden { OneHot, Binary };
enum class Normalization { Softmax, Sigmoid };

using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Settings {
  int D = 0;  // visible bits
  int L = 0;  // hidden units (one-hot: L states; binary: 2^L states)
  Hidden hidden = Hidden::OneHot;
  Normalization normalization = Normalization::Softmax;
  bool centered = true;  // u = wbar (x - xbar) + abar (eq. 17) instead of wbar x + abar
  bool tied = false;     // wbar = w^T: the RBM Gibbs sampler, the equilibrium baseline

  void validate() const {
    if (D <= 0 || L <= 0) throw std::invalid_argument("D and L must be positive");
    if (L < 2 && hidden == Hidden::OneHot) throw std::invalid_argument("one-hot hidden layer needs L >= 2");
    if (hidden == Hidden::Binary && L > 63) throw std::invalid_argument("binary hidden layer supports L <= 63");
    if (hidden == Hidden::Binary && normalization != Normalization::Softmax)
      throw std::invalid_argument("the sigmoid-ratio normalization applies to one-hot hidden states only");
    if (tied && normalization == Normalization::Sigmoid)
      throw std::invalid_argument("tied mode is the RBM sampler and needs the softmax normalization");
  }
};

struct Params {
  Eigen::MatrixXd w;     // D x L, forward weights (eq. 10)
  Eigen::VectorXd a;     // D, visible bias
  Eigen::MatrixXd wbar;  // L x D, backward weights (eq. 11); column i is contiguous
  Eigen::VectorXd abar;  // L, hidden bias
  Eigen::VectorXd xbar;  // D, data mean used for centering
};

inline int pad8(int n) { return (n + 7) & ~7; }

// Active pixel indices of one binary vector, ascending: every sum over x runs over these only.
struct Span {
  const int32_t* p = nullptr;
  int32_t n = 0;
};

// One-hot: z = e_code. Binary: bit b of the code is z_b.
inline double hidden_bit(uint64_t code, int b, Hidden hidden) {
  return hidden == Hidden::OneHot ? double(code == uint64_t(b)) : double((code >> b) & 1u);
}

// sum_i softplus(h_i) and sigmoid(h) with one exp per entry. softplus(h) = max(h, 0) + ln(1 + e)
// with e = exp(-|h|) in (0, 1], so sum_i ln(1 + e_i) is the log of a product of factors in
// (1, 2]: these normalizers can neither underflow nor (in chunks of 512) overflow, and one log
// per chunk replaces D logs. (Probabilities themselves are never multiplied.)
inline double softplus_sum_sigmoid(const double* h, int D, double* sig) {
  double lin = 0, logs = 0, prod = 1;
  for (int i = 0; i < D; ++i) {
    const double e = std::exp(-std::abs(h[i]));
    const double inv = 1.0 / (1.0 + e);
    sig[i] = h[i] >= 0 ? inv : e * inv;
    lin += h[i] > 0 ? h[i] : 0.0;
    prod *= 1.0 + e;
    if ((i & 511) == 511) { logs += std::log(prod); prod = 1; }
  }
  return lin + logs + std::log(prod);
}

inline double sigmoid(double u) {
  return u >= 0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u));
}

// Bernoulli threshold for a 32-bit uniform word: P(word < t) = t / 2^32.
inline uint32_t bernoulli_threshold(double p) {
  const double t = p * 4294967296.0;
  return t >= 4294967295.0 ? 0xFFFFFFFFu : (t <= 0.0 ? 0u : uint32_t(t));
}

// x -> z field u = wbar (x - xbar) + abar in double, from the active pixels of x (eq. 11, 17).
inline void backward_field(const Params& p, const Eigen::VectorXd& field_bias, Span x, double* u) {
  const int L = int(p.wbar.rows());
  for (int b = 0; b < L; ++b) u[b] = field_bias[b];
  for (int32_t k = 0; k < x.n; ++k) {
    const double* col = p.wbar.data() + std::size_t(x.p[k]) * L;
    for (int b = 0; b < L; ++b) u[b] += col[b];
  }
}

// mu_{z|x} and the factor d ln P(z|x) / d u_b = g_b (z_b - mu_b) of the x -> z kernel:
// softmax and factorized sigmoid have g = 1 (eqs. 13c-d, 16c-d); the sigmoid ratio of eq. 19 has
// d ln P(alpha|x) / d u_b = (1 - s_b)(delta_ab - P_b) (spec), so g_b = 1 - s_b.
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
    for (int b = 0; b < L; ++b) { mu[b] = std::exp(u[b] - m); tot += mu[b]; }
    for (int b = 0; b < L; ++b) { mu[b] /= tot; g[b] = 1.0; }
  } else {
    double tot = 0;
    for (int b = 0; b < L; ++b) { mu[b] = sigmoid(u[b]); tot += mu[b]; }
    for (int b = 0; b < L; ++b) { g[b] = 1.0 - mu[b]; mu[b] /= tot; }
  }
}

// H = w Z^T + a for a set of hidden states (D x U, row-major so that one pixel's U fields are
// contiguous), with sum_i softplus(H[i, u]) and mu_{x|z} = sigmoid(H) (eq. 14).
struct ForwardFields {
  RowMatrixXd H;         // D x U
  RowMatrixXd mu;        // D x U
  Eigen::VectorXd sp;    // U: sum_i softplus(H[i, u]), the normalizer of log A
};

inline ForwardFields compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states) {
  const int D = s.D, U = int(states.size());
  ForwardFields f;
  f.H.resize(D, U);
  f.mu.resize(D, U);
  f.sp.resize(U);
  Eigen::VectorXd h(D), sig(D);
  for (int u = 0; u < U; ++u) {
    h = p.a;
    for (int b = 0; b < s.L; ++b)
      if (hidden_bit(states[u], b, s.hidden) != 0.0) h += p.w.col(b);
    f.sp[u] = softplus_sum_sigmoid(h.data(), D, sig.data());
    f.H.col(u) = h;
    f.mu.col(u) = sig;
  }
  return f;
}

// The model: parameters plus the float tables the chain reads. Call refresh() after any change
// of the parameters; the chain never touches the double parameters.
class Model {
 public:
  Settings s;
  Params p;
  Eigen::VectorXd field_bias;  // L: abar - wbar xbar (centered) or abar, double

  int Dp = 0, Lp = 0;
  std::vector<float> wbarT;        // D x Lp row-major: pixel i's contribution to u
  std::vector<float> field_bias_f; // Lp
  std::vector<uint32_t> thr;       // one-hot: L x Dp thresholds of sigmoid(w[:, alpha] + a)
  std::vector<float> wT;           // binary: L x Dp, column b of w
  std::vector<float> a_f;          // binary: Dp
  std::vector<uint32_t> xbar_thr;  // Dp: thresholds of xbar, for starting fresh chains
  ForwardFields onehot_fields;     // one-hot: the fields of all L states, shared by chain and gradient

  explicit Model(const Settings& settings) : s(settings) {
    s.validate();
    p.w = Eigen::MatrixXd::Zero(s.D, s.L);
    p.a = Eigen::VectorXd::Zero(s.D);
    p.wbar = Eigen::MatrixXd::Zero(s.L, s.D);
    p.abar = Eigen::VectorXd::Zero(s.L);
    p.xbar = Eigen::VectorXd::Constant(s.D, 0.5);
    Dp = pad8(s.D);
    Lp = pad8(s.L);
    refresh();
  }

  uint64_t n_states_or_zero() const {  // 0 when 2^L does not fit
    if (s.hidden == Hidden::OneHot) return uint64_t(s.L);
    return s.L < 63 ? (uint64_t(1) << s.L) : 0;
  }

  void refresh() {
    const int D = s.D, L = s.L;
    if (s.tied) p.wbar = p.w.transpose();
    field_bias = p.abar;
    if (s.centered) field_bias -= p.wbar * p.xbar;

    wbarT.assign(std::size_t(D) * Lp, 0.0f);
    for (int i = 0; i < D; ++i)
      for (int b = 0; b < L; ++b) wbarT[std::size_t(i) * Lp + b] = float(p.wbar(b, i));
    // Padding lanes get a huge negative bias so they never win the softmax.
    field_bias_f.assign(Lp, -1e30f);
    for (int b = 0; b < L; ++b) field_bias_f[b] = float(field_bias[b]);

    xbar_thr.assign(Dp, 0u);
    for (int i = 0; i < D; ++i) xbar_thr[i] = bernoulli_threshold(std::clamp(p.xbar[i], 0.0, 1.0));

    if (s.hidden == Hidden::OneHot) {
      std::vector<uint64_t> all(L);
      for (int b = 0; b < L; ++b) all[b] = uint64_t(b);
      onehot_fields = compute_forward_fields(s, p, all);
      thr.assign(std::size_t(L) * Dp, 0u);  // padding pixels: threshold 0, never on
      for (int b = 0; b < L; ++b)
        for (int i = 0; i < D; ++i) thr[std::size_t(b) * Dp + i] = bernoulli_threshold(onehot_fields.mu(i, b));
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

namespace nemm {

// Fields of the given states: one-hot reads the cache built by refresh().
inline ForwardFields forward_fields(const Model& m, const std::vector<uint64_t>& states) {
  if (m.s.hidden == Hidden::Binary) return compute_forward_fields(m.s, m.p, states);
  const int D = m.s.D, U = int(states.size());
  ForwardFields f;
  f.H.resize(D, U);
  f.mu.resize(D, U);
  f.sp.resize(U);
  for (int u = 0; u < U; ++u) {
    f.H.col(u) = m.onehot_fields.H.col(Eigen::Index(states[u]));
    f.mu.col(u) = m.onehot_fields.mu.col(Eigen::Index(states[u]));
    f.sp[u] = m.onehot_fields.sp[Eigen::Index(states[u])];
  }
  return f;
}

}  // namespace nemm
