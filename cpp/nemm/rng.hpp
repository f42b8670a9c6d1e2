// Random streams: xoshiro256** for scalar draws, eight xoshiro128** lanes for visible bits.
// One stream per chain, keyed by (seed, chain index) through SplitMix64 hashing, so results
// never depend on the number of threads.
#pragma once
#include <cstdint>
#include <cstring>

namespace nemm {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Hash of (seed, stream): both go through the mixer, never an offset added to a seed.
inline uint64_t stream_key(uint64_t seed, uint64_t stream) {
  uint64_t s = seed;
  uint64_t h = splitmix64(s);
  uint64_t t = stream ^ 0xD1B54A32D192ED03ull;
  return h ^ splitmix64(t);
}

inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256**: scalar draws (hidden-state choices, uniforms).
struct Xoshiro256 {
  uint64_t s[4];
  Xoshiro256() : Xoshiro256(0, 0) {}
  Xoshiro256(uint64_t seed, uint64_t stream) {
    uint64_t k = stream_key(seed, stream);
    for (auto& v : s) v = splitmix64(k);
  }
  uint64_t next() {
    const uint64_t r = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return r;
  }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

// Eight interleaved xoshiro128** streams held in one vector register (GCC/Clang vector
// extensions: two SSE2 registers on the portable build, one AVX2 register in the AVX2 clone).
// One call yields 8 independent 32-bit words, so a Bernoulli bit costs a compare.
typedef uint32_t u32x8 __attribute__((vector_size(32)));

struct alignas(32) LaneRng {
  static constexpr int K = 8;
  u32x8 s0, s1, s2, s3;
  void seed(Xoshiro256& parent) {
    for (int k = 0; k < K; ++k) {
      uint64_t a = parent.next(), b = parent.next();
      s0[k] = uint32_t(a);
      s1[k] = uint32_t(a >> 32);
      s2[k] = uint32_t(b);
      s3[k] = uint32_t(b >> 32);
      if ((s0[k] | s1[k] | s2[k] | s3[k]) == 0) s0[k] = 1;  // the all-zero state is a fixed point
    }
  }
  // One step of all eight lanes on a copy of the state held in registers: the next K words.
  static inline u32x8 advance(u32x8& a, u32x8& b, u32x8& c, u32x8& d) {
    const u32x8 b5 = (b << 2) + b;  // b * 5
    const u32x8 rot = (b5 << 7) | (b5 >> 25);
    const u32x8 r = (rot << 3) + rot;  // * 9
    const u32x8 t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >> 21);
    return r;
  }
  // n (a multiple of K) words into out.
  inline void fill(uint32_t* __restrict out, int n) {
    u32x8 a = s0, b = s1, c = s2, d = s3;
    for (int i = 0; i < n; i += K) {
      const u32x8 r = advance(a, b, c, d);
      std::memcpy(out + i, &r, sizeof(r));
    }
    s0 = a;
    s1 = b;
    s2 = c;
    s3 = d;
  }
};

}  // namespace nemm
