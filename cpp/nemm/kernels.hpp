// The two transition kernels (spec "Transition kernels"): A (z -> x, eqs. 8, 10, 14) and
// Abar (x -> z, eqs. 9, 11, 19), the parameters they read, and the float tables the chain uses.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

// Runtime dispatch for the hot loops: an AVX2 clone and a portable one, chosen at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NEMM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NEMM_CLONES
#endif

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


// Active pixel indices of one binary vector, ascending: every sum over x runs over these only.
struct Span {
  const int32_t* p = nullptr;
  int32_t n = 0;
};

inline int pad8(int n) { return (n + 7) & ~7; }
inline int pad2(int n) { return (n + 1) & ~1; }

typedef double f64x2 __attribute__((vector_size(16)));  // an SSE2 register: the portable baseline

inline f64x2 load2(const double* p) {
  f64x2 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Row sums and scatter-adds over the active pixels: the inner loops of the likelihood and the
// gradient. Each column is summed in the same order (even and odd pixels in two accumulators,
// then added) by the SSE2 and the AVX2 versions, so both give the same bits.
template <class V>
inline V loadv(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class V>
inline void storev(double* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}

// out[0..W) = init[0..W) + sum_k table[x.p[k] * stride + 0..W) for W = 2 * NV2 + 4 * NV4.
#define NEMM_SUM_ROWS_BODY(V4)                                                          \
  V4 a4[NV4 ? NV4 : 1], b4[NV4 ? NV4 : 1];                                              \
  f64x2 a2[NV2 ? NV2 : 1], b2[NV2 ? NV2 : 1];                                           \
  for (int j = 0; j < NV4; ++j) { a4[j] = loadv<V4>(init + 4 * j); b4[j] = V4{}; }     \
  for (int j = 0; j < NV2; ++j) { a2[j] = load2(init + 4 * NV4 + 2 * j); b2[j] = f64x2{}; } \
  int32_t k = 0;                                                                        \
  for (; k + 2 <= x.n; k += 2) {                                                        \
    const double* r = table + std::size_t(x.p[k]) * stride;                             \
    const double* q = table + std::size_t(x.p[k + 1]) * stride;                         \
    for (int j = 0; j < NV4; ++j) { a4[j] += loadv<V4>(r + 4 * j); b4[j] += loadv<V4>(q + 4 * j); } \
    for (int j = 0; j < NV2; ++j) { a2[j] += load2(r + 4 * NV4 + 2 * j); b2[j] += load2(q + 4 * NV4 + 2 * j); } \
  }                                                                                     \
  if (k < x.n) {                                                                        \
    const double* r = table + std::size_t(x.p[k]) * stride;                             \
    for (int j = 0; j < NV4; ++j) a4[j] += loadv<V4>(r + 4 * j);                       \
    for (int j = 0; j < NV2; ++j) a2[j] += load2(r + 4 * NV4 + 2 * j);                 \
  }                                                                                     \
  for (int j = 0; j < NV4; ++j) storev(out + 4 * j, V4(a4[j] + b4[j]));                 \
  for (int j = 0; j < NV2; ++j) storev(out + 4 * NV4 + 2 * j, f64x2(a2[j] + b2[j]));

// dst[x.p[k] * stride + 0..W) += src[0..W) for every active pixel.
#define NEMM_SCATTER_ROWS_BODY(V4)                                                      \
  V4 s4[NV4 ? NV4 : 1];                                                                 \
  f64x2 s2[NV2 ? NV2 : 1];                                                              \
  for (int j = 0; j < NV4; ++j) s4[j] = loadv<V4>(src + 4 * j);                         \
  for (int j = 0; j < NV2; ++j) s2[j] = load2(src + 4 * NV4 + 2 * j);                   \
  for (int32_t k = 0; k < x.n; ++k) {                                                   \
    double* d = dst + std::size_t(x.p[k]) * stride;                                     \
    for (int j = 0; j < NV4; ++j) storev(d + 4 * j, V4(loadv<V4>(d + 4 * j) + s4[j]));  \
    for (int j = 0; j < NV2; ++j) storev(d + 4 * NV4 + 2 * j, f64x2(load2(d + 4 * NV4 + 2 * j) + s2[j])); \
  }

// Portable (SSE2): a 4-wide block is two 2-wide registers with the same per-column order.
struct f64x2pair {
  f64x2 lo{}, hi{};
  f64x2pair() = default;
  f64x2pair operator+(const f64x2pair& o) const { f64x2pair r; r.lo = lo + o.lo; r.hi = hi + o.hi; return r; }
  f64x2pair& operator+=(const f64x2pair& o) { lo += o.lo; hi += o.hi; return *this; }
};
template <>
inline f64x2pair loadv<f64x2pair>(const double* p) {
  f64x2pair v;
  v.lo = load2(p);
  v.hi = load2(p + 2);
  return v;
}
template <>
inline void storev<f64x2pair>(double* p, const f64x2pair& v) {
  std::memcpy(p, &v.lo, sizeof(v.lo));
  std::memcpy(p + 2, &v.hi, sizeof(v.hi));
}

template <int NV4, int NV2>
inline void sum_rows_sse2(const double* table, int stride, Span x, const double* init, double* out) {
  NEMM_SUM_ROWS_BODY(f64x2pair)
}
template <int NV4, int NV2>
inline void scatter_rows_sse2(double* dst, int stride, Span x, const double* src) {
  NEMM_SCATTER_ROWS_BODY(f64x2pair)
}

#if defined(__GNUC__) && defined(__x86_64__)
typedef double f64x4 __attribute__((vector_size(32)));
#define NEMM_HAVE_AVX2_ROWS 1
template <int NV4, int NV2>
__attribute__((target("avx2"))) void sum_rows_avx2(const double* table, int stride, Span x, const double* init,
                                                   double* out) {
  NEMM_SUM_ROWS_BODY(f64x4)
}
template <int NV4, int NV2>
__attribute__((target("avx2"))) void scatter_rows_avx2(double* dst, int stride, Span x, const double* src) {
  NEMM_SCATTER_ROWS_BODY(f64x4)
}
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

template <int NV4, int NV2>
inline void sum_rows_fixed(const double* table, int stride, Span x, const double* init, double* out) {
#ifdef NEMM_HAVE_AVX2_ROWS
  if (cpu_has_avx2()) return sum_rows_avx2<NV4, NV2>(table, stride, x, init, out);
#endif
  sum_rows_sse2<NV4, NV2>(table, stride, x, init, out);
}
template <int NV4, int NV2>
inline void scatter_rows_fixed(double* dst, int stride, Span x, const double* src) {
#ifdef NEMM_HAVE_AVX2_ROWS
  if (cpu_has_avx2()) return scatter_rows_avx2<NV4, NV2>(dst, stride, x, src);
#endif
  scatter_rows_sse2<NV4, NV2>(dst, stride, x, src);
}

// W even. Widths up to 8 get unrolled code; wider rows go in blocks of 8.
inline void sum_rows(const double* table, int stride, Span x, const double* init, double* out, int W) {
  switch (W) {
    case 2: return sum_rows_fixed<0, 1>(table, stride, x, init, out);
    case 4: return sum_rows_fixed<1, 0>(table, stride, x, init, out);
    case 6: return sum_rows_fixed<1, 1>(table, stride, x, init, out);
    case 8: return sum_rows_fixed<2, 0>(table, stride, x, init, out);
    default: break;
  }
  for (int blk = 0; blk < W; blk += 8) sum_rows(table + blk, stride, x, init + blk, out + blk, std::min(8, W - blk));
}

inline void scatter_rows(double* dst, int stride, Span x, const double* src, int W) {
  switch (W) {
    case 2: return scatter_rows_fixed<0, 1>(dst, stride, x, src);
    case 4: return scatter_rows_fixed<1, 0>(dst, stride, x, src);
    case 6: return scatter_rows_fixed<1, 1>(dst, stride, x, src);
    case 8: return scatter_rows_fixed<2, 0>(dst, stride, x, src);
    default: break;
  }
  for (int blk = 0; blk < W; blk += 8) scatter_rows(dst + blk, stride, x, src + blk, std::min(8, W - blk));
}

// One-hot: z = e_code. Binary: bit b of the code is z_b.
inline double hidden_bit(uint64_t code, int b, Hidden hidden) {
  return hidden == Hidden::OneHot ? double(code == uint64_t(b)) : double((code >> b) & 1u);
}

// exp(x) for x <= 0, branch-free so that loops over it vectorize: x = k ln2 + r with
// |r| <= ln2 / 2 (Cody-Waite, two-part ln2), exp(r) by its Taylor series to r^13 (truncation
// below 1e-17 relative), then the exponent bits set to k. Returns 0 below -708 (the normal range).
inline double exp_nonpositive(double x) {
  const double cx = std::max(x, -708.0);
  // Round to nearest by the 1.5 * 2^52 shift: the integer k then sits in the low mantissa bits.
  const double shift = 6755399441055744.0;
  const double t = cx * 1.4426950408889634 + shift;
  const double kf = t - shift;
  const double r = (cx - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  uint64_t tb, sb;
  std::memcpy(&tb, &t, sizeof(tb));
  const double shift_d = shift;
  std::memcpy(&sb, &shift_d, sizeof(sb));
  const uint64_t bits = (tb - sb + 1023) << 52;  // 2^k
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return double(x >= -708.0) * (p * scale);  // arithmetic, not a branch: keeps the loop vectorizable
}

// sum_i softplus(h_i) and sigmoid(h) with one exp per entry. softplus(h) = max(h, 0) + ln(1 + e)
// with e = exp(-|h|) in (0, 1], so sum_i ln(1 + e_i) is the log of a product of factors in
// (1, 2]: these normalizers can neither underflow nor (in chunks of 512) overflow, and one log
// per chunk replaces D logs. (Probabilities themselves are never multiplied.)
NEMM_CLONES static double softplus_sum_sigmoid(const double* h, int D, double* sig, double* e) {
  for (int i = 0; i < D; ++i) {  // no reduction: this loop vectorizes
    const double ei = exp_nonpositive(-std::abs(h[i]));
    const double pos = double(h[i] >= 0);
    e[i] = ei;
    sig[i] = (pos + (1.0 - pos) * ei) / (1.0 + ei);
  }
  // Four interleaved partial sums and products break the serial dependency chains; the order
  // is fixed, so the result does not depend on anything but the input.
  double lin[4] = {0, 0, 0, 0}, logs = 0;
  for (int c0 = 0; c0 < D; c0 += 512) {
    const int c1 = std::min(D, c0 + 512);
    double prod[4] = {1, 1, 1, 1};
    int i = c0;
    for (; i + 4 <= c1; i += 4)
      for (int j = 0; j < 4; ++j) {
        lin[j] += h[i + j] > 0 ? h[i + j] : 0.0;
        prod[j] *= 1.0 + e[i + j];
      }
    for (; i < c1; ++i) {
      lin[0] += h[i] > 0 ? h[i] : 0.0;
      prod[0] *= 1.0 + e[i];
    }
    // Each partial product covers at most 128 factors in (1, 2]: far from overflow.
    logs += std::log(prod[0] * prod[1]) + std::log(prod[2] * prod[3]);
  }
  return (lin[0] + lin[1]) + (lin[2] + lin[3]) + logs;
}

inline double sigmoid(double u) {
  return u >= 0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u));
}

// ln sigmoid(u) = -softplus(-u), finite for every finite u.
inline double log_sigmoid(double u) { return std::min(u, 0.0) - std::log1p(std::exp(-std::abs(u))); }

// Bernoulli thresholds for 32-bit uniform words: P(word < t) = t / 2^32, t clamped to [0, 2^32 - 1].
NEMM_CLONES static void bernoulli_thresholds(const double* p, int n, uint32_t* out) {
  for (int i = 0; i < n; ++i) {
    const double t = std::min(std::max(p[i] * 4294967296.0, 0.0), 4294967295.0);
    out[i] = uint32_t(int64_t(t));
  }
}

// x -> z field u = wbar (x - xbar) + abar in double, from the active pixels of x (eq. 11, 17).
// wbarT_d: D x Lq row-major (wbar transposed, zero padded), bias: Lq; u must hold Lq entries.
inline void backward_field(const double* wbarT_d, int Lq, const double* bias, Span x, double* u) {
  sum_rows(wbarT_d, Lq, x, bias, u, Lq);
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

// H = w Z^T + a for a set of hidden states (D x U, row-major so that one pixel's U fields are
// contiguous), with sum_i softplus(H[i, u]) and mu_{x|z} = sigmoid(H) (eq. 14).
struct ForwardFields {
  RowMatrixXd H;         // D x pad2(U), zero padded: rows are summed two columns at a time
  Eigen::MatrixXd mu;    // D x U, column-major: one state's means are contiguous
  Eigen::VectorXd sp;    // U: sum_i softplus(H[i, u]), the normalizer of log A
};

// Fills f (reusing its storage): the fields of the given hidden states.
inline void compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states,
                                   ForwardFields& f) {
  const int D = s.D, U = int(states.size()), Uq = pad2(U);
  if (f.H.rows() != D || f.H.cols() != Uq) f.H = RowMatrixXd::Zero(D, Uq);
  f.mu.resize(D, U);
  f.sp.resize(U);
  Eigen::VectorXd h(D), e(D);
  for (int u = 0; u < U; ++u) {
    h = p.a;
    for (int b = 0; b < s.L; ++b)
      if (hidden_bit(states[u], b, s.hidden) != 0.0) h += p.w.col(b);
    f.sp[u] = softplus_sum_sigmoid(h.data(), D, f.mu.col(u).data(), e.data());
    f.H.col(u) = h;
  }
}

inline ForwardFields compute_forward_fields(const Settings& s, const Params& p, const std::vector<uint64_t>& states) {
  ForwardFields f;
  compute_forward_fields(s, p, states, f);
  return f;
}

// The model: parameters plus the float tables the chain reads. Call refresh() after any change
// of the parameters; the chain never touches the double parameters.
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

