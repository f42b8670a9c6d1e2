// The element-wise ascent rules shared by the machine's trainer (trainer.hpp: RMSprop) and the
// RBM's (rbm.hpp: Adam or RMSprop). Each walks one parameter array with its optimizer state.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "simd.hpp"  // NEMM_CLONES

namespace nemm {

// v = rho v + (1 - rho) g^2; p += lr g / (sqrt(v) + eps): ascent, element by element.
// Returns whether every updated p is finite, from its exponent bits (an integer test that
// vectorizes, unlike a floating-point reduction). A non-finite g leaves a non-finite p (NaN, or
// inf / inf), so this one test also catches a non-finite gradient without a pass of its own.
NEMM_CLONES inline bool rmsprop_update(double* __restrict p, const double* __restrict g, double* __restrict v,
                                       std::size_t n, double lr, double rho, double eps) {
  uint64_t nonfinite = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = rho * v[i] + (1.0 - rho) * g[i] * g[i];
    const double q = p[i] + lr * g[i] / (std::sqrt(v[i]) + eps);
    p[i] = q;
    uint64_t b;
    std::memcpy(&b, &q, sizeof(b));
    nonfinite |= uint64_t((b & 0x7FF0000000000000ull) == 0x7FF0000000000000ull);
  }
  return nonfinite == 0;
}

// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p += lr mhat / (sqrt(vhat) + eps): ascent,
// with the bias corrections c1 = 1 - b1^t, c2 = 1 - b2^t (as the factors lr / c1 and 1 / c2:
// one division per element instead of three). Static, as it was in rbm.hpp (the machine's
// translation unit includes it unused).
[[maybe_unused]] NEMM_CLONES static void adam_update(double* __restrict p, const double* __restrict g,
                                                     double* __restrict mom, double* __restrict v, std::size_t n,
                                                     double lr, double b1, double b2, double eps, double c1,
                                                     double c2) {
  const double step = lr / c1, inv_c2 = 1.0 / c2;
  for (std::size_t i = 0; i < n; ++i) {
    mom[i] = b1 * mom[i] + (1.0 - b1) * g[i];
    v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
    p[i] += step * mom[i] / (std::sqrt(v[i] * inv_c2) + eps);
  }
}

}  // namespace nemm
