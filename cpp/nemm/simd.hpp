// SIMD row operations over active pixels (sum_rows, scatter_rows) and the SSE2/AVX2 dispatch.
// Also the vector types, loads and stores, and the padding of rows to whole registers.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "sparse_rows.hpp"

// Runtime dispatch, chosen once at load time. Two mechanisms, both giving the same bits:
// - NEMM_CLONES: function multiversioning (AVX-512, AVX2 and default clones behind an ifunc
//   resolver). ifunc needs GCC on x86-64 Linux with glibc; elsewhere the portable code alone.
// - NEMM_HAVE_AVX2_ROWS: explicit AVX2 row kernels behind __builtin_cpu_supports (no ifunc).
// Define NEMM_PORTABLE to build the portable code only, NEMM_NO_AVX512 to leave out the AVX-512
// code (to check that every path gives the same bits on a machine that has them all).
// The AVX-512 clone (x86-64-v4: AVX-512 F, BW, DQ, VL) needs GCC 12 for an "arch=" clone. No
// clone may contract a * b + c into an FMA (CMake passes -ffp-contract=off): every clone then
// rounds exactly as the portable code, whatever its vector width.
#if !defined(NEMM_PORTABLE) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && defined(__GLIBC__)
#if __GNUC__ >= 12 && !defined(NEMM_NO_AVX512)
#define NEMM_HAVE_AVX512 1
#define NEMM_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define NEMM_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#else
#define NEMM_CLONES
#endif

#if defined(__GNUC__)
#define NEMM_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define NEMM_ALWAYS_INLINE inline
#endif

namespace nemm {

// Rows padded to a whole number of registers: 8 floats (two SSE registers), 2 doubles (one).
inline int pad8(int n) { return (n + 7) & ~7; }
inline int pad2(int n) { return (n + 1) & ~1; }

// GCC/Clang vector extensions; memcpy loads and stores: no alignment or aliasing assumptions.
typedef double f64x2 __attribute__((vector_size(16)));  // an SSE2 register: the portable baseline
typedef float f32x4 __attribute__((vector_size(16)));   // an SSE2 register of floats (the chain)

template <class V>
NEMM_ALWAYS_INLINE V loadv(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class V>
NEMM_ALWAYS_INLINE void storev(double* p, const V& v) {
  std::memcpy(p, &v, sizeof(v));
}
NEMM_ALWAYS_INLINE f64x2 load2(const double* p) { return loadv<f64x2>(p); }
NEMM_ALWAYS_INLINE f32x4 load4f(const float* p) {
  f32x4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Portable (SSE2) stand-in for a 4-wide register: two 2-wide registers, so that every column
// sees the same additions in the same order as in the AVX2 code (hence the same bits).
struct f64x2pair {
  f64x2 lo{}, hi{};
  f64x2pair() = default;
  f64x2pair operator+(const f64x2pair& o) const {
    f64x2pair r;
    r.lo = lo + o.lo;
    r.hi = hi + o.hi;
    return r;
  }
  f64x2pair& operator+=(const f64x2pair& o) {
    lo += o.lo;
    hi += o.hi;
    return *this;
  }
};
template <>
NEMM_ALWAYS_INLINE f64x2pair loadv<f64x2pair>(const double* p) {
  f64x2pair v;
  v.lo = load2(p);
  v.hi = load2(p + 2);
  return v;
}
template <>
NEMM_ALWAYS_INLINE void storev<f64x2pair>(double* p, const f64x2pair& v) {
  std::memcpy(p, &v.lo, sizeof(v.lo));
  std::memcpy(p + 2, &v.hi, sizeof(v.hi));
}

// The row kernels for W = 4 NV4 + 2 NV2 columns, written once for a 4-wide register type V4
// (f64x2pair or f64x4) and inlined into the SSE2 and AVX2 instantiations below. Each column is
// summed in the same order by both (even and odd pixels in two accumulators, then added).
//
// out[0..W) = init[0..W) + sum_k table[x.p[k] * stride + 0..W): the table rows of the active pixels.
template <class V4, int NV4, int NV2>
NEMM_ALWAYS_INLINE void sum_rows_body(const double* table, int stride, Span x, const double* init, double* out) {
  constexpr int O2 = 4 * NV4;  // offset of the 2-wide tail
  V4 a4[NV4 ? NV4 : 1], b4[NV4 ? NV4 : 1];
  f64x2 a2[NV2 ? NV2 : 1], b2[NV2 ? NV2 : 1];
  for (int j = 0; j < NV4; ++j) {
    a4[j] = loadv<V4>(init + 4 * j);
    b4[j] = V4{};
  }
  for (int j = 0; j < NV2; ++j) {
    a2[j] = load2(init + O2 + 2 * j);
    b2[j] = f64x2{};
  }
  int32_t k = 0;
  for (; k + 2 <= x.n; k += 2) {
    const double* r = table + std::size_t(x.p[k]) * stride;
    const double* q = table + std::size_t(x.p[k + 1]) * stride;
    for (int j = 0; j < NV4; ++j) {
      a4[j] += loadv<V4>(r + 4 * j);
      b4[j] += loadv<V4>(q + 4 * j);
    }
    for (int j = 0; j < NV2; ++j) {
      a2[j] += load2(r + O2 + 2 * j);
      b2[j] += load2(q + O2 + 2 * j);
    }
  }
  if (k < x.n) {
    const double* r = table + std::size_t(x.p[k]) * stride;
    for (int j = 0; j < NV4; ++j) a4[j] += loadv<V4>(r + 4 * j);
    for (int j = 0; j < NV2; ++j) a2[j] += load2(r + O2 + 2 * j);
  }
  for (int j = 0; j < NV4; ++j) storev(out + 4 * j, V4(a4[j] + b4[j]));
  for (int j = 0; j < NV2; ++j) storev(out + O2 + 2 * j, f64x2(a2[j] + b2[j]));
}

// dst[x.p[k] * stride + 0..W) += src[0..W) for every active pixel.
template <class V4, int NV4, int NV2>
NEMM_ALWAYS_INLINE void scatter_rows_body(double* dst, int stride, Span x, const double* src) {
  constexpr int O2 = 4 * NV4;
  V4 s4[NV4 ? NV4 : 1];
  f64x2 s2[NV2 ? NV2 : 1];
  for (int j = 0; j < NV4; ++j) s4[j] = loadv<V4>(src + 4 * j);
  for (int j = 0; j < NV2; ++j) s2[j] = load2(src + O2 + 2 * j);
  for (int32_t k = 0; k < x.n; ++k) {
    double* d = dst + std::size_t(x.p[k]) * stride;
    for (int j = 0; j < NV4; ++j) storev(d + 4 * j, V4(loadv<V4>(d + 4 * j) + s4[j]));
    for (int j = 0; j < NV2; ++j) storev(d + O2 + 2 * j, f64x2(load2(d + O2 + 2 * j) + s2[j]));
  }
}

template <int NV4, int NV2>
inline void sum_rows_sse2(const double* table, int stride, Span x, const double* init, double* out) {
  sum_rows_body<f64x2pair, NV4, NV2>(table, stride, x, init, out);
}
template <int NV4, int NV2>
inline void scatter_rows_sse2(double* dst, int stride, Span x, const double* src) {
  scatter_rows_body<f64x2pair, NV4, NV2>(dst, stride, x, src);
}

#if !defined(NEMM_PORTABLE) && defined(__GNUC__) && defined(__x86_64__)
#define NEMM_HAVE_AVX2_ROWS 1
typedef double f64x4 __attribute__((vector_size(32)));  // one AVX register
template <int NV4, int NV2>
__attribute__((target("avx2"))) void sum_rows_avx2(const double* table, int stride, Span x, const double* init,
                                                   double* out) {
  sum_rows_body<f64x4, NV4, NV2>(table, stride, x, init, out);
}
template <int NV4, int NV2>
__attribute__((target("avx2"))) void scatter_rows_avx2(double* dst, int stride, Span x, const double* src) {
  scatter_rows_body<f64x4, NV4, NV2>(dst, stride, x, src);
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

// The entry points, for any even width W: widths up to 8 get unrolled code; wider rows go in
// blocks of 8 columns. out, init, src: W doubles; table, dst: rows of `stride` doubles.
inline void sum_rows(const double* table, int stride, Span x, const double* init, double* out, int W) {
  switch (W) {
    case 2:
      return sum_rows_fixed<0, 1>(table, stride, x, init, out);
    case 4:
      return sum_rows_fixed<1, 0>(table, stride, x, init, out);
    case 6:
      return sum_rows_fixed<1, 1>(table, stride, x, init, out);
    case 8:
      return sum_rows_fixed<2, 0>(table, stride, x, init, out);
    default:
      break;
  }
  for (int blk = 0; blk < W; blk += 8) sum_rows(table + blk, stride, x, init + blk, out + blk, std::min(8, W - blk));
}

inline void scatter_rows(double* dst, int stride, Span x, const double* src, int W) {
  switch (W) {
    case 2:
      return scatter_rows_fixed<0, 1>(dst, stride, x, src);
    case 4:
      return scatter_rows_fixed<1, 0>(dst, stride, x, src);
    case 6:
      return scatter_rows_fixed<1, 1>(dst, stride, x, src);
    case 8:
      return scatter_rows_fixed<2, 0>(dst, stride, x, src);
    default:
      break;
  }
  for (int blk = 0; blk < W; blk += 8) scatter_rows(dst + blk, stride, x, src + blk, std::min(8, W - blk));
}

}  // namespace nemm
