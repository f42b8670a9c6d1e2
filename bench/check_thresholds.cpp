// Exhaustive check (issue 12) that the binary chain's threshold arithmetic in chain.hpp gives the
// same bits as before: the int32 conversion equals the double one for every float mean, and
// clamping fields to [-30, 30] leaves every threshold unchanged. Build and run:
//   g++ -O2 -I<eigen3 include> bench/check_thresholds.cpp -o /tmp/thr && /tmp/thr   (prints 0 mismatches)
#include <Eigen/Dense>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <vector>
#include <cmath>
static uint32_t old_thr(float h) { return h >= 1.0f ? 0xFFFFFFFFu : h > 0.0f ? uint32_t(double(h) * 4294967296.0) : 0u; }
static uint32_t new_thr(float h) {
  const float x = (h < 1.0f ? h : 0.99999994f) * 4294967296.0f;
  const bool upper = x >= 2147483648.0f;
  const uint32_t t = uint32_t(int32_t(upper ? x - 2147483648.0f : (x > 0.0f ? x : 0.0f))) + (upper ? 0x80000000u : 0u);
  return h >= 1.0f ? 0xFFFFFFFFu : h > 0.0f ? t : 0u;
}
int main() {
  long bad = 0;
  // every float in [0, 1] and beyond, plus NaN/inf
  for (uint32_t b = 0; b <= 0x3F900000u; ++b) { float h; std::memcpy(&h, &b, 4); if (old_thr(h) != new_thr(h)) ++bad; }
  float sp[] = {NAN, INFINITY, -INFINITY, -0.0f, 2.0f};
  for (float h : sp) if (old_thr(h) != new_thr(h)) ++bad;
  printf("conversion mismatches: %ld\n", bad);
  // clamp: sigmoid thresholds of fields beyond +-30 equal those of +-30 (all floats with |h| in [30, 1e30])
  const int n = 1 << 20;
  long bad2 = 0, total = 0;
  std::vector<float> a(n), c(n);
  for (uint32_t b0 = 0x41F00000u; b0 < 0x7149F2CAu; b0 += n) {
    for (int sgn = 0; sgn < 2; ++sgn) {
      for (int i = 0; i < n; ++i) { uint32_t b = b0 + i; float h; std::memcpy(&h, &b, 4); h = sgn ? -h : h; a[i] = h; c[i] = h < -30.f ? -30.f : h > 30.f ? 30.f : h; }
      Eigen::Map<Eigen::ArrayXf> av(a.data(), n), cv(c.data(), n);
      av = 1.0f / (1.0f + (-av).exp());
      cv = 1.0f / (1.0f + (-cv).exp());
      for (int i = 0; i < n; ++i) { bad2 += old_thr(a[i]) != old_thr(c[i]); ++total; }
    }
  }
  printf("clamp mismatches: %ld of %ld\n", bad2, total);
}
