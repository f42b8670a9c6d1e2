// Elementwise math in the log domain: exp(x <= 0), sigmoid, ln sigmoid, softplus, log-sum-exp.
// Also the Bernoulli thresholds that turn probabilities into 32-bit compare values.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "simd.hpp"  // NEMM_CLONES

namespace nemm {

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

// sum_i softplus(h_i) and sigmoid(h) with one exp per entry (h, sig, e: D entries; e is
// scratch). softplus(h) = max(h, 0) + ln(1 + e) with e = exp(-|h|) in (0, 1], so
// sum_i ln(1 + e_i) is the log of a product of factors in (1, 2]: these normalizers can neither
// underflow nor overflow, and one log per chunk of 512 entries replaces 512 logs.
// (Probabilities themselves are never multiplied.)
// sum_i softplus(h_i) = sum_i max(h_i, 0) + ln prod_i (1 + e_i), given e_i = exp(-|h_i|).
// Eight interleaved partial sums and products, one 8-wide vector (one AVX-512 register, two
// AVX2 or four SSE2 ones: the same lanes in every clone), keep the serial chains of multiplies
// short; in a chunk of 512 each partial product is at most 2^71 and the product of the eight,
// taken as a fixed pairwise tree, at most 2^519. The order is fixed, so the result depends on
// nothing but the input. Always inlined into its two callers below, which therefore give the
// same bits for the same h.
typedef double f64x8 __attribute__((vector_size(64)));
NEMM_ALWAYS_INLINE double softplus_sum_of_exps(const double* h, int D, const double* e) {
  const f64x8 zero = {0, 0, 0, 0, 0, 0, 0, 0}, one = {1, 1, 1, 1, 1, 1, 1, 1};
  f64x8 lin = zero;
  double logs = 0;
  for (int c0 = 0; c0 < D; c0 += 512) {
    const int c1 = std::min(D, c0 + 512);
    f64x8 prod = one;
    int i = c0;
    for (; i + 8 <= c1; i += 8) {
      f64x8 hv, ev;
      std::memcpy(&hv, h + i, sizeof(hv));
      std::memcpy(&ev, e + i, sizeof(ev));
      lin += hv > zero ? hv : zero;
      prod *= one + ev;
    }
    for (; i < c1; ++i) {
      lin[0] += h[i] > 0 ? h[i] : 0.0;
      prod[0] *= 1.0 + e[i];
    }
    logs += std::log(((prod[0] * prod[4]) * (prod[2] * prod[6])) * ((prod[1] * prod[5]) * (prod[3] * prod[7])));
  }
  return (((lin[0] + lin[4]) + (lin[2] + lin[6])) + ((lin[1] + lin[5]) + (lin[3] + lin[7]))) + logs;
}

// sum_i softplus(h_i), and sigmoid(h_i) into sig (e: D entries of scratch).
NEMM_CLONES inline double softplus_sum_sigmoid(const double* h, int D, double* sig, double* e) {
  for (int i = 0; i < D; ++i) {  // no reduction: this loop vectorizes
    const double ei = exp_nonpositive(-std::abs(h[i]));
    const double pos = double(h[i] >= 0);
    e[i] = ei;
    sig[i] = (pos + (1.0 - pos) * ei) / (1.0 + ei);
  }
  return softplus_sum_of_exps(h, D, e);
}

// sum_i softplus(h_i) alone: the same bits as the sum returned by softplus_sum_sigmoid
// (e: D entries of scratch).
NEMM_CLONES inline double softplus_sum(const double* h, int D, double* e) {
  for (int i = 0; i < D; ++i) e[i] = exp_nonpositive(-std::abs(h[i]));
  return softplus_sum_of_exps(h, D, e);
}

inline double sigmoid(double u) { return u >= 0 ? 1.0 / (1.0 + std::exp(-u)) : std::exp(u) / (1.0 + std::exp(u)); }

// ln sigmoid(u) = -softplus(-u), finite for every finite u.
inline double log_sigmoid(double u) { return std::min(u, 0.0) - std::log1p(std::exp(-std::abs(u))); }

// ln sum_i exp(v_i) over n entries, shifted by the maximum; -inf when all are -inf.
inline double logsumexp(const double* v, int n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) m = std::max(m, v[i]);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (int i = 0; i < n; ++i) s += exp_nonpositive(v[i] - m);
  return m + std::log(s);
}

// Element-wise vector updates, cloned for AVX-512 / AVX2 where Eigen's own code is built for the
// baseline only: each element sees the one operation Eigen would do (y + c x rounds c x first,
// with no FMA), so the results are Eigen's bits.
NEMM_CLONES inline void add_vectors(double* __restrict y, const double* __restrict a, const double* __restrict b,
                                    int n) {
  for (int i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
NEMM_CLONES inline void add_to(double* __restrict y, const double* __restrict x, int n) {
  for (int i = 0; i < n; ++i) y[i] += x[i];
}
NEMM_CLONES inline void subtract_from(double* __restrict y, const double* __restrict x, int n) {
  for (int i = 0; i < n; ++i) y[i] -= x[i];
}
// ys[t][i] += c x[i] for k vectors ys[t] at once: c x is formed once per element (the same
// product each add_scaled would form), in blocks that stay in registers.
NEMM_CLONES inline void add_scaled(double* const* ys, int k, double c, const double* __restrict x, int n) {
  constexpr int kBlock = 64;
  double cx[kBlock];
  for (int i0 = 0; i0 < n; i0 += kBlock) {
    const int m = std::min(n - i0, kBlock);
    for (int i = 0; i < m; ++i) cx[i] = c * x[i0 + i];
    for (int t = 0; t < k; ++t) {
      double* __restrict y = ys[t] + i0;
      for (int i = 0; i < m; ++i) y[i] += cx[i];
    }
  }
}
NEMM_CLONES inline void scale(double* y, double c, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] *= c;
}

// out[i] = exp_nonpositive(v[i] - shift[i]): one loop over many rows' entries that vectorizes
// (a row of a few hidden states is too short to).
NEMM_CLONES inline void exp_of_difference(const double* v, const double* shift, std::size_t n, double* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = exp_nonpositive(v[i] - shift[i]);
}

// The log-sum-exp of each row of v (n rows of U, row-major) into lse, by the operations of
// logsumexp() (the same bits), with the exponentials of all rows in one vectorized pass.
// shift, e: scratch, resized to n U.
inline void row_logsumexp(const double* v, long n, int U, double* lse, std::vector<double>& shift,
                          std::vector<double>& e) {
  const std::size_t nU = std::size_t(n) * std::size_t(U);
  shift.resize(nU);
  e.resize(nU);
  for (long r = 0; r < n; ++r) {
    const double* row = v + std::size_t(r) * U;
    double m = -std::numeric_limits<double>::infinity();
    for (int u = 0; u < U; ++u) m = std::max(m, row[u]);
    lse[r] = m;
    std::fill_n(shift.data() + std::size_t(r) * U, U, m);
  }
  exp_of_difference(v, shift.data(), nU, e.data());
  for (long r = 0; r < n; ++r) {
    if (!std::isfinite(lse[r])) continue;
    const double* er = e.data() + std::size_t(r) * U;
    double sum = 0;
    for (int u = 0; u < U; ++u) sum += er[u];
    lse[r] += std::log(sum);
  }
}

// Bernoulli thresholds for 32-bit uniform words: P(word < t) = t / 2^32, with t = p 2^32
// clamped to [0, 2^32 - 1]. The compare comes before the conversion, so a NaN probability
// (a diverged model) gives 0 instead of converting NaN to an integer (undefined behaviour);
// finite inputs give the same thresholds as a plain clamp.
// t lies in [0, 2^32 - 1], and trunc(t) is converted as a signed int32 after taking 2^31 off the
// upper half (exact: both are multiples of the spacing of doubles there), which vectorizes
// (there is no vector conversion from double to a 64-bit integer below AVX-512) and equals the
// conversion through int64.
NEMM_CLONES inline void bernoulli_thresholds(const double* p, int n, uint32_t* out) {
  for (int i = 0; i < n; ++i) {
    const double v = p[i] * 4294967296.0;
    const double t = v > 0.0 ? std::min(v, 4294967295.0) : 0.0;
    const bool upper = t >= 2147483648.0;
    out[i] = uint32_t(int32_t(upper ? t - 2147483648.0 : t)) + (upper ? 0x80000000u : 0u);
  }
}

}  // namespace nemm
