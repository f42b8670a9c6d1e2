// What defines one machine: Settings (sizes and variant) and Params (w, a, wbar, abar, xbar).
// Settings: D, L, one-hot or binary hidden layer, normalization, centering, tying; Params in
// double precision (eqs. 10, 11, 17). Hidden states are rows of uint64 words (state_words, hidden_bit).
#pragma once
#include <Eigen/Dense>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace nemm {

enum class Hidden { OneHot, Binary };
enum class Normalization { Softmax, Sigmoid };  // x -> z kernel: eq. 11 (softmax) or eq. 19

using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Settings {
  int D = 0;  // visible bits
  int L = 0;  // hidden units (one-hot: L states; binary: 2^L states)
  Hidden hidden = Hidden::OneHot;
  Normalization normalization = Normalization::Softmax;
  bool centered = true;        // u = wbar (x - xbar) + abar (eq. 17) instead of wbar x + abar
  bool tied = false;           // wbar = w^T: the RBM Gibbs sampler, the equilibrium baseline
  bool rao_blackwell = false;  // one-hot gradient: every state weighted by Abar(z | x'), not the sampled z

  void validate() const {
    if (D <= 0 || L <= 0) throw std::invalid_argument("D and L must be positive");
    if (L < 2 && hidden == Hidden::OneHot) throw std::invalid_argument("one-hot hidden layer needs L >= 2");
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
  Eigen::VectorXd xbar;  // D, data mean used for centering (eq. 17)
};

// Training that drives the parameters this far has diverged, though they are still finite: the
// sum of their magnitudes bounds |energy| (ln of a state's weight), and ln Z and ln p are
// differences of such numbers, rounded to 1.1e-16 of them. At 1e12 the rounding alone is
// about 1e-4 nats; beyond, ln p is noise, even positive for binary data.
constexpr double kMaxParameterScale = 1e12;

// "" or why the (finite) parameters are beyond kMaxParameterScale (checked after training steps).
inline std::string unresolvable(const Params& p) {
  const double scale = p.w.lpNorm<1>() + p.a.lpNorm<1>() + p.wbar.lpNorm<1>() + p.abar.lpNorm<1>();
  if (scale <= kMaxParameterScale) return std::string();
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "the parameters outgrew what ln Z can resolve: their magnitudes sum to %.3g, more than %.0e", scale,
                kMaxParameterScale);
  return buf;
}

// Hidden states are uint64 codes. One-hot: z = e_code. Binary: bit b of the code is z_b.
inline double hidden_bit(uint64_t code, int b, Hidden hidden) {
  return hidden == Hidden::OneHot ? double(code == uint64_t(b)) : double((code >> b) & 1u);
}

// A hidden state is a row of W = state_words(s) uint64 words, and a list of states is a
// vector of such rows back to back. One-hot: W = 1, the index. Binary: z_b is bit b % 64 of word
// b / 64, so a layer of at most 64 units is one word, its code. Wider layers are held bit for bit
// in the chains and the gradient; only what enumerates or counts states needs a code.
inline int state_words(const Settings& s) { return s.hidden == Hidden::Binary ? (s.L + 63) / 64 : 1; }

inline double hidden_bit(const uint64_t* z, int b, Hidden hidden) {
  return hidden == Hidden::OneHot ? double(z[0] == uint64_t(b)) : double((z[b >> 6] >> (b & 63)) & 1u);
}

}  // namespace nemm
