// The sampling chains x'(0) -> z(0) -> x'(1) -> z(1) -> ... (eq. 18), in float tables.
// Each chain owns its random streams, keyed by (seed, chain index), and its buffers: the loop
// itself never allocates. Chains run in parallel, one per OpenMP iteration, handed out dynamically
// (a chain depends on its own streams alone, so not on the thread that runs it; and a thread
// whose core is taken by another process holds up only the chain it is running).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>  // the AVX-512 visible sampler
#endif

#include "math.hpp"
#include "model.hpp"
#include "rng.hpp"
#include "simd.hpp"
#include "sparse_rows.hpp"

namespace nemm {

// For each 8-bit mask: the positions of its set bits, ascending (then zeros), and their number.
struct SetBitPositions {
  uint8_t p[256][8];
  uint8_t count[256];
  constexpr SetBitPositions() : p(), count() {
    for (int m = 0; m < 256; ++m) {
      int c = 0;
      for (int j = 0; j < 8; ++j)
        if ((m >> j) & 1) p[m][c++] = uint8_t(j);
      count[m] = uint8_t(c);
    }
  }
};
inline constexpr SetBitPositions kSetBitPositions{};

#if defined(NEMM_HAVE_AVX2_ROWS) && defined(NEMM_HAVE_AVX512)
// GCC 12's own _mm512_castsi256_si512 warns that its undefined upper half may be used uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// sample_visible on AVX-512 (F and VL): the same words, compares and active list, in one pass
// without the scratch buffers. Sixteen pixels at a time: two steps of the eight lanes, one
// unsigned compare into a 16-bit mask, and vpcompressd of the pixel indices into a register,
// stored whole (slots past the count are overwritten or ignored, as below). Dp: a multiple of 8.
__attribute__((target("avx512f,avx512vl"))) inline int sample_visible_avx512(LaneRng& g, const uint32_t* thr, int Dp,
                                                                             int32_t* active) {
  u32x8 a = g.s0, b = g.s1, c = g.s2, d = g.s3;
  const __m512i step = _mm512_set1_epi32(16);
  __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int n = 0, i = 0;
  for (; i + 16 <= Dp; i += 16) {
    const u32x8 lo = LaneRng::advance(a, b, c, d), hi = LaneRng::advance(a, b, c, d);
    const __m512i words = _mm512_inserti64x4(_mm512_castsi256_si512(__m256i(lo)), __m256i(hi), 1);
    const __mmask16 on = _mm512_cmplt_epu32_mask(words, _mm512_loadu_si512(thr + i));
    _mm512_storeu_si512(active + n, _mm512_maskz_compress_epi32(on, index));
    n += __builtin_popcount(unsigned(on));
    index = _mm512_add_epi32(index, step);
  }
  if (i < Dp) {  // the last eight
    const u32x8 r = LaneRng::advance(a, b, c, d);
    const __mmask8 on =
        _mm256_cmplt_epu32_mask(__m256i(r), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(thr + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(active + n),
                        _mm256_maskz_compress_epi32(
                            on, _mm256_add_epi32(_mm256_set1_epi32(i), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
    n += __builtin_popcount(unsigned(on));
  }
  g.s0 = a;
  g.s1 = b;
  g.s2 = c;
  g.s3 = d;
  return n;
}
#pragma GCC diagnostic pop
inline bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return has;
}
#endif

// x_i ~ Bernoulli(thr_i / 2^32) for i < Dp; writes the active indices (ascending) and returns
// their number. `bits` and `words` are Dp-long scratch buffers.
NEMM_CLONES inline int sample_visible(LaneRng& g, const uint32_t* thr, int Dp, uint32_t* words, uint8_t* bits,
                                      int32_t* active) {
#if defined(NEMM_HAVE_AVX2_ROWS) && defined(NEMM_HAVE_AVX512)
  if (cpu_has_avx512()) return sample_visible_avx512(g, thr, Dp, active);
#endif
  g.fill(words, Dp);
  for (int i = 0; i < Dp; ++i) bits[i] = uint8_t(words[i] < thr[i]);
  // Branch-free compaction, eight bytes at a time, skipping all-zero words (image borders):
  // the eight 0/1 bytes become an 8-bit mask (one multiply gathers byte j's bit at bit 56 + j,
  // without carries), whose set positions come from a table, written as eight independent
  // stores (no store waits for the count of the one before). Slots past the count are
  // overwritten later or ignored; they stay inside `active` since n <= i.
  int n = 0;
  for (int i = 0; i < Dp; i += 8) {
    uint64_t v;
    std::memcpy(&v, bits + i, 8);
    if (!v) continue;
    const unsigned m = unsigned((v * 0x0102040810204080ull) >> 56);
    const uint8_t* pos = kSetBitPositions.p[m];
    for (int j = 0; j < 8; ++j) active[n + j] = i + pos[j];
    n += kSetBitPositions.count[m];
  }
  return n;
}

// u = bias + sum over the active pixels of their rows of wbarT (Lp floats each, a multiple of
// 8): the x -> z field in float. Two pixels at a time into independent accumulators per block of
// 8 hidden units, added at the end; the vector type is 8 floats wide in every clone (one AVX
// register, or two SSE ones in the same order), so every clone gives the same bits.
typedef float f32x8 __attribute__((vector_size(32)));
NEMM_CLONES inline void hidden_field(const float* wbarT, const float* bias, int Lp, const int32_t* active, int n_active,
                                     float* u) {
  auto load8 = [](const float* p) {
    f32x8 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  for (int blk = 0; blk < Lp; blk += 8) {
    f32x8 a = load8(bias + blk), b = {0, 0, 0, 0, 0, 0, 0, 0};
    const float* base = wbarT + blk;
    int k = 0;
    for (; k + 2 <= n_active; k += 2) {
      a += load8(base + std::size_t(active[k]) * Lp);
      b += load8(base + std::size_t(active[k + 1]) * Lp);
    }
    if (k < n_active) a += load8(base + std::size_t(active[k]) * Lp);
    a += b;
    std::memcpy(u + blk, &a, sizeof(a));
  }
}

struct ChainState {
  Xoshiro256 rng;
  LaneRng lanes;
  std::vector<uint64_t> z;  // the hidden state, state_words(m.s) words (params.hpp)
  int n_active = 0;
  std::vector<int32_t> active;  // Dp
  std::vector<uint32_t> words;  // Dp
  std::vector<uint8_t> bits;    // Dp
  std::vector<uint32_t> thr;    // Dp (binary hidden: thresholds of the current z)
  std::vector<float> h;         // Dp (binary hidden: fields, then means, of the current z)
  std::vector<float> u;         // Lp
  std::vector<double> p;        // L

  void init(const Model& m, uint64_t seed, uint64_t index) {
    rng = Xoshiro256(seed, index);
    lanes.seed(rng);
    active.assign(m.Dp, 0);
    words.assign(m.Dp, 0);
    bits.assign(m.Dp, 0);
    thr.assign(m.Dp, 0);
    h.assign(m.Dp, 0.0f);
    u.assign(m.Lp, 0.0f);
    p.assign(m.s.L, 0.0);
    n_active = 0;
    z.assign(std::size_t(state_words(m.s)), 0);
  }

  void set_visible(const uint8_t* x, int D) {
    n_active = 0;
    for (int i = 0; i < D; ++i)
      if (x[i]) active[n_active++] = i;
  }

  void draw_visible_from_mean(const Model& m) {
    n_active = sample_visible(lanes, m.xbar_thr.data(), m.Dp, words.data(), bits.data(), active.data());
  }

  // z(t) ~ Abar(x'(t), .) from the float tables (eqs. 9, 11, 19).
  void step_hidden(const Model& m) {
    const int L = m.s.L;
    float* uu = u.data();
    hidden_field(m.wbarT.data(), m.field_bias_f.data(), m.Lp, active.data(), n_active, uu);
    if (m.s.hidden == Hidden::Binary) {
      uint64_t* zw = z.data();
      std::fill(z.begin(), z.end(), uint64_t(0));
      for (int b = 0; b < L; ++b)
        if (rng.uniform() < sigmoid(double(uu[b]))) zw[b >> 6] |= uint64_t(1) << (b & 63);
      return;
    }
    // Unnormalized log-probabilities: u (softmax) or ln sigmoid(u) (eq. 19), then a stable softmax.
    double mx = -std::numeric_limits<double>::infinity();
    for (int b = 0; b < L; ++b) {
      p[b] = m.s.normalization == Normalization::Softmax ? double(uu[b]) : log_sigmoid(double(uu[b]));
      mx = std::max(mx, p[b]);
    }
    double tot = 0;
    for (int b = 0; b < L; ++b) tot += (p[b] = exp_nonpositive(p[b] - mx));
    double r = rng.uniform() * tot;
    int c = 0;
    while (c < L - 1 && r >= p[c]) r -= p[c++];
    z[0] = uint64_t(c);
  }

  // The Dp thresholds of sigmoid(w z + a) for the binary state z, in float (eqs. 8, 10).
  void binary_thresholds(const Model& m, uint32_t* out) {
    const int Dp = m.Dp;
    float* hh = h.data();  // its own float buffer: no float written into uint32 storage
    std::memcpy(hh, m.a_f.data(), sizeof(float) * Dp);
    // The columns of the active units only, in ascending b (the order, hence the bits, of a
    // loop over all units).
    for (std::size_t k = 0; k < z.size(); ++k)
      for (uint64_t bits_left = z[k]; bits_left; bits_left &= bits_left - 1) {
        const int b = int(k * 64) + __builtin_ctzll(bits_left);
        const float* col = m.wT.data() + std::size_t(b) * Dp;
        for (int i = 0; i < Dp; ++i) hh[i] += col[i];
      }
    // Fields clamped to [-30, 30] first: sigmoid(-30) < 1e-13 and sigmoid(30) rounds to 1 in
    // float, so the thresholds are those of the unclamped fields (0 and 2^32 - 1), but exp never
    // overflows and the sigmoid never returns a subnormal float (slow on many CPUs). NaN stays NaN.
    for (int i = 0; i < Dp; ++i) hh[i] = hh[i] < -30.0f ? -30.0f : hh[i] > 30.0f ? 30.0f : hh[i];
    // Vectorized float sigmoid.
    Eigen::Map<Eigen::ArrayXf> hv(hh, Dp);
    hv = 1.0f / (1.0f + (-hv).exp());
    // Threshold of P(word < thr) = h, trunc(h 2^32): the product is exact in float (a power of
    // two), and it is converted as a signed int32 after taking 2^31 off the upper half, which
    // vectorizes and equals the conversion through double. Means of 1 or NaN (a diverged model)
    // are kept out of the conversion (no undefined behaviour) and give 2^32 - 1 and 0.
    for (int i = 0; i < Dp; ++i) {
      const float x = (hh[i] < 1.0f ? hh[i] : 0.99999994f) * 4294967296.0f;  // < 2^32, no overflow
      const bool upper = x >= 2147483648.0f;
      const uint32_t t =
          uint32_t(int32_t(upper ? x - 2147483648.0f : (x > 0.0f ? x : 0.0f))) + (upper ? 0x80000000u : 0u);
      out[i] = hh[i] >= 1.0f ? 0xFFFFFFFFu : hh[i] > 0.0f ? t : 0u;
    }
  }

  // x'(t+1) ~ A(z(t), .) (eqs. 8, 10).
  void step_visible(const Model& m) {
    const uint32_t* t;
    if (m.s.hidden == Hidden::OneHot) {
      t = m.thr.data() + std::size_t(z[0]) * m.Dp;
    } else if (m.visible_thr.enabled()) {
      // Small 2^L: the thresholds of each visited state are computed once per refresh.
      t = m.visible_thr.ready(z[0]);  // enabled for a few units only: one word
      if (!t) {
        uint32_t* slot = m.visible_thr.claim(z[0]);
        binary_thresholds(m, slot ? slot : thr.data());
        if (slot) m.visible_thr.publish(z[0]);
        t = slot ? slot : thr.data();
      }
    } else {
      binary_thresholds(m, thr.data());
      t = thr.data();
    }
    n_active = sample_visible(lanes, t, m.Dp, words.data(), bits.data(), active.data());
  }
};

// What a run of T double steps leaves for the gradient: the fantasy states x'(t) as active
// lists and the hidden states z(t), chain-major (sample s = c * T + t).
struct Recording {
  int C = 0, T = 0, W = 1;
  std::vector<uint64_t> z;                  // C*T states of W words
  std::vector<std::vector<int32_t>> idx;    // per chain: concatenated active lists
  std::vector<std::vector<int64_t>> start;  // per chain: T+1 offsets

  void reserve(int C_, int T_, int D, int W_) {
    if (C_ == C && T_ == T && W_ == W) return;
    C = C_;
    T = T_;
    W = W_;
    z.assign(std::size_t(C) * T * W, 0);
    idx.resize(C);
    start.resize(C);
    for (int c = 0; c < C; ++c) {
      idx[c].resize(std::size_t(T) * D);
      start[c].assign(T + 1, 0);
    }
  }
  std::vector<Span> spans() const {
    std::vector<Span> out(std::size_t(C) * T);
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < T; ++t)
        out[std::size_t(c) * T + t] = Span{idx[c].data() + start[c][t], int32_t(start[c][t + 1] - start[c][t])};
    return out;
  }
};

class Chains {
 public:
  std::vector<ChainState> chains;

  void reset(const Model& m, int n_chains, uint64_t seed) {
    chains.assign(n_chains, ChainState());
    for (int c = 0; c < n_chains; ++c) {
      chains[c].init(m, seed, uint64_t(c));
      chains[c].draw_visible_from_mean(m);
    }
  }
  int size() const { return int(chains.size()); }

  // T double steps on every chain, recording (x'(t), z(t)).
  void run(const Model& m, int T, Recording& rec) {
    const int C = size(), D = m.s.D, W = state_words(m.s);
    rec.reserve(C, T, D, W);
    RegionError err;
#pragma omp parallel for schedule(dynamic, 1) if (C > 1) num_threads(n_threads())
    for (int c = 0; c < C; ++c)
      err.run([&] {
        ChainState& ch = chains[c];
        int32_t* out = rec.idx[c].data();
        int64_t* st = rec.start[c].data();
        st[0] = 0;
        for (int t = 0; t < T; ++t) {
          ch.step_hidden(m);
          std::memcpy(out + st[t], ch.active.data(), sizeof(int32_t) * ch.n_active);
          st[t + 1] = st[t] + ch.n_active;
          std::copy_n(ch.z.data(), W, rec.z.data() + (std::size_t(c) * T + t) * W);
          ch.step_visible(m);
        }
      });
    err.rethrow();
  }

  // Hidden trajectory z(0..T-1) of every chain after `burn_in` unrecorded double steps, states
  // of state_words(m.s) words.
  void hidden_trajectory(const Model& m, long burn_in, long T, uint64_t* out) {
    const int C = size(), W = state_words(m.s);
    RegionError err;
#pragma omp parallel for schedule(dynamic, 1) if (C > 1) num_threads(n_threads())
    for (int c = 0; c < C; ++c)
      err.run([&] {
        ChainState& ch = chains[c];
        for (long t = 0; t < burn_in; ++t) {
          ch.step_hidden(m);
          ch.step_visible(m);
        }
        uint64_t* o = out + std::size_t(c) * T * W;
        for (long t = 0; t < T; ++t) {
          ch.step_hidden(m);
          std::copy_n(ch.z.data(), W, o + std::size_t(t) * W);
          ch.step_visible(m);
        }
      });
    err.rethrow();
  }

  // Visible samples: after burn_in double steps, every `thin` steps, per_chain states per chain.
  // X is (C*per_chain) x D, chain-major; Z holds the hidden state that produced each x
  // (state_words(m.s) words each).
  void sample(const Model& m, long burn_in, long thin, long per_chain, uint8_t* X, uint64_t* Z) {
    const int C = size(), D = m.s.D, W = state_words(m.s);
    RegionError err;
#pragma omp parallel for schedule(dynamic, 1) if (C > 1) num_threads(n_threads())
    for (int c = 0; c < C; ++c)
      err.run([&] {
        ChainState& ch = chains[c];
        for (long t = 0; t < burn_in; ++t) {
          ch.step_hidden(m);
          ch.step_visible(m);
        }
        for (long k = 0; k < per_chain; ++k) {
          for (long t = 0; t < thin; ++t) {
            ch.step_hidden(m);
            ch.step_visible(m);
          }
          const std::size_t row = std::size_t(c) * per_chain + k;
          uint8_t* x = X + row * D;
          std::memset(x, 0, D);
          for (int j = 0; j < ch.n_active; ++j) x[ch.active[j]] = 1;
          std::copy_n(ch.z.data(), W, Z + row * W);
        }
      });
    err.rethrow();
  }
};

}  // namespace nemm
