// Log-domain likelihood: log A(z, x) for many x and z, and ln p(x) as a mixture over z.
// log A(z, x) = sum_i [x_i h_i - softplus(h_i)] with h = w z + a (eqs. 8, 10), summed over the
// active pixels of x only; ln p(x) = logsumexp_z [ln weight(z) + log A(z, x)] (appendix A3).
// No product of probabilities is ever formed.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.hpp"
#include "math.hpp"
#include "model.hpp"
#include "simd.hpp"
#include "sparse_rows.hpp"

namespace nemm {

// The initial values of log_forward_kernel's row sums: init[u] = -sp[u] (Uq entries, padding 0).
inline void log_forward_init(const ForwardFields& f, std::vector<double>& init) {
  init.assign(std::size_t(f.H.cols()), 0.0);
  for (Eigen::Index u = 0; u < f.sp.size(); ++u) init[std::size_t(u)] = -f.sp[u];
}

// log_forward_kernel's rows into out (row n at out + n ld, U columns) as an orphaned `omp for`
// over pieces (a tile of columns of H times a piece of rows): inside a parallel region the
// threads share them; outside it the calling thread does them all. Every out[n, u] is the same
// row sum whatever the pieces: the same bits on any number of threads.
inline void log_forward_pieces(const ForwardFields& f, const std::vector<Span>& X, const double* init, double* out,
                               std::size_t ld) {
  const long N = long(X.size());
  const int U = int(f.sp.size()), Uq = int(f.H.cols());
  const ColumnTiles tiles(Uq, int(f.H.rows()));
  const long row_pieces = (N + kRowPiece - 1) / kRowPiece;
  RegionError err;  // this thread's: rethrown after the loop, which every thread meets
  std::vector<double> scratch;
  err.run([&] { scratch.resize(std::size_t(tiles.width)); });
#pragma omp for schedule(dynamic, 1)
  for (long k = 0; k < tiles.count * row_pieces; ++k) {
    const int t = int(k / row_pieces);
    const long r = k % row_pieces;
    err.run([&] {
      sum_rows_tile(f.H.data(), Uq, X.data(), r * kRowPiece, std::min(N, (r + 1) * kRowPiece), init, tiles.begin(t),
                    tiles.end(t), out, ld, U, scratch.data());
    });
  }
  err.rethrow();
}

// The number of active pixels of all rows: the work of a sum over the rows is this times a width.
inline double active_pixels(const std::vector<Span>& X) {
  double n = 0;
  for (const Span& x : X) n += x.n;
  return n;
}

// out[n, u] = log A(z_u, x_n) for the hidden states whose fields f were built (N x U), as the
// row sum init[u] + sum_{i in x_n} H[i, u] with init = -sp: one sum_rows per data point, in
// tiles of columns that stay in cache, on all threads when the work is large.
inline void log_forward_kernel(const ForwardFields& f, const std::vector<Span>& X, RowMatrixXd& out) {
  const int U = int(f.sp.size());
  out.resize(long(X.size()), U);
  std::vector<double> init;
  log_forward_init(f, init);
  RegionError err;
#pragma omp parallel if (worth_threads(active_pixels(X) * double(f.H.cols()))) num_threads(n_threads())
  err.always([&] { log_forward_pieces(f, X, init.data(), out.data(), std::size_t(U)); });
  err.rethrow();
}

// Binary hidden layers up to this many units: ln p may enumerate all 2^L states (65,536).
constexpr int kEnumerateMaxL = 16;

// c[z] = sum_i softplus(h_i(z)) for every code z < 2^L, the normalizer of log A(z, .), with
// h(z) = a + sum_{b: z_b = 1} w[:, b] added in ascending b as compute_forward_fields does (so
// the same bits). Depth first over the high bits: h(z) = h(z without its highest bit) +
// w[:, highest bit], one vector add per state instead of popcount(z). The 2^k values of the
// low k bits root independent subtrees of equal size, one per OpenMP iteration; every c[z] is a
// function of z alone, so the thread count cannot change a bit.
inline void binary_normalizers(const Settings& s, const Params& p, std::vector<double>& c) {
  const int D = s.D, L = s.L, k = std::min(L, 6);
  const long n_lo = 1L << k;
  c.assign(std::size_t(1) << L, 0.0);
  RegionError err;
#pragma omp parallel if (L > 8) num_threads(n_threads())
  {
    std::vector<double> hs, e;  // h along the current path
    err.run([&] {
      hs.resize(std::size_t(L - k + 1) * D);
      e.resize(std::size_t(D));
    });
    auto visit = [&](auto& self, int depth, uint64_t code, int from) -> void {
      const double* hp = hs.data() + std::size_t(depth) * D;
      double* hc = hs.data() + std::size_t(depth + 1) * D;
      for (int b = from; b < L; ++b) {
        const double* wb = p.w.col(b).data();
        for (int i = 0; i < D; ++i) hc[i] = hp[i] + wb[i];
        const uint64_t child = code | (uint64_t(1) << b);
        c[child] = softplus_sum(hc, D, e.data());
        self(self, depth + 1, child, b + 1);
      }
    };
#pragma omp for schedule(dynamic, 1)
    for (long lo = 0; lo < n_lo; ++lo)
      err.run([&] {
        double* h0 = hs.data();
        for (int i = 0; i < D; ++i) h0[i] = p.a[i];
        for (int b = 0; b < k; ++b)
          if ((lo >> b) & 1) {
            const double* wb = p.w.col(b).data();
            for (int i = 0; i < D; ++i) h0[i] += wb[i];
          }
        c[lo] = softplus_sum(h0, D, e.data());
        visit(visit, 0, uint64_t(lo), k);
      });
  }
  err.rethrow();
}

// sum_j exp(v[j] - mx) over n entries (mx = max_j v[j], finite), in 8 interleaved partial sums
// in a fixed order. Blocks of 8 whose entries all lie 64 or more below the maximum are skipped:
// together (at most 2^16 of them, each < e^-64) they weigh under 1e-23 of the sum, whose largest
// term is 1, far below the rounding of a double. Most of the 2^L states are that improbable
// for a given x once the machine is trained, so most exponentials are never evaluated.
NEMM_CLONES inline double sum_exp_shifted(const double* v, long n, double mx) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const double cut = mx - 64.0;
  long j = 0;
  for (; j + 8 <= n; j += 8) {
    bool any = false;
    for (int q = 0; q < 8; ++q) any |= v[j + q] > cut;
    if (!any) continue;
    for (int q = 0; q < 8; ++q) acc[q] += exp_nonpositive(v[j + q] - mx);
  }
  for (int q = 0; j < n; ++j, ++q) acc[q] += exp_nonpositive(v[j] - mx);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// max_j v[j] over n entries (-inf when empty or all -inf; NaN entries are passed over), in four
// independent lanes so that the comparisons overlap.
inline double max_of(const double* v, long n) {
  double m[4] = {-std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                 -std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  long j = 0;
  for (; j + 4 <= n; j += 4)
    for (int q = 0; q < 4; ++q) m[q] = v[j + q] > m[q] ? v[j + q] : m[q];
  for (; j < n; ++j) m[0] = v[j] > m[0] ? v[j] : m[0];
  const double a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
  return a > b ? a : b;
}

// ln p(x) = logsumexp_z [log_weight[z] + log A(z, x)] over all 2^L binary states z
// (log_weight: 2^L entries, -inf for states without weight), with
//   log A(z, x) = a.x + (x^T w) z - c(z)     (eqs. 8, 10; c from binary_normalizers),
// so that a data point costs one pass over its active pixels (x^T w and a.x together) and one
// pass over the 2^L states: v(z) = [log_weight(z) - c(z)] + S_hi(z) + S_lo(z), where S_hi and
// S_lo are the sums of (x^T w)_b over the high and the low half of z's bits (2^(L/2) entries
// each). Log domain throughout; rows in parallel, each a function of its x alone. The 2^L
// normalizers are computed once at construction and reused for every piece of rows.
class EnumeratedLikelihood {
 public:
  EnumeratedLikelihood(const Model& m, const std::vector<double>& log_weight)
      : D_(m.s.D), L_(m.s.L), Lw_(pad2(m.s.L + 1)) {
    binary_normalizers(m.s, m.p, base_);
    for (std::size_t z = 0; z < base_.size(); ++z) base_[z] = log_weight[z] - base_[z];
    // Row i of the table: w[i, 0..L), a[i], zero padding: one sum_rows gives x^T w and a.x.
    table_.assign(std::size_t(D_) * Lw_, 0.0);
    for (int i = 0; i < D_; ++i) {
      for (int b = 0; b < L_; ++b) table_[std::size_t(i) * Lw_ + b] = m.p.w(i, b);
      table_[std::size_t(i) * Lw_ + L_] = m.p.a[i];
    }
  }

  Eigen::VectorXd operator()(const std::vector<Span>& X) const {
    const long n_states = 1L << L_, N = long(X.size());
    const int n_low = L_ / 2, n_high = L_ - n_low;
    const std::vector<double> zero(Lw_, 0.0);
    Eigen::VectorXd out(N);
    RegionError err;
#pragma omp parallel if (N * n_states > (1L << 16)) num_threads(n_threads())
    {
      std::vector<double> r, s_lo, s_hi, v;
      err.run([&] {
        r.resize(std::size_t(Lw_));
        s_lo.resize(std::size_t(1) << n_low);
        s_hi.resize(std::size_t(1) << n_high);
        v.resize(std::size_t(n_states));
      });
#pragma omp for schedule(dynamic, 8)
      for (long n = 0; n < N; ++n)
        err.run([&] {
          sum_rows(table_.data(), Lw_, X[n], zero.data(), r.data(), Lw_);
          // Subset sums: S(j) = S(j without its highest bit) + r[highest bit].
          s_lo[0] = 0.0;
          for (std::size_t j = 1; j < s_lo.size(); ++j) {
            int hb = 63 - __builtin_clzll(j);
            s_lo[j] = s_lo[j ^ (std::size_t(1) << hb)] + r[hb];
          }
          s_hi[0] = 0.0;
          for (std::size_t j = 1; j < s_hi.size(); ++j) {
            int hb = 63 - __builtin_clzll(j);
            s_hi[j] = s_hi[j ^ (std::size_t(1) << hb)] + r[n_low + hb];
          }
          const std::size_t n_lo = s_lo.size();
          for (std::size_t hi = 0; hi < s_hi.size(); ++hi) {  // vectorizes: no reduction inside
            const double sh = s_hi[hi];
            const double* bz = base_.data() + hi * n_lo;
            double* vz = v.data() + hi * n_lo;
            for (std::size_t j = 0; j < n_lo; ++j) vz[j] = bz[j] + (sh + s_lo[j]);
          }
          const double mx = max_of(v.data(), n_states);
          out[n] = std::isfinite(mx) ? r[L_] + mx + std::log(sum_exp_shifted(v.data(), n_states, mx)) : mx;
        });
    }
    err.rethrow();
    return out;
  }

 private:
  int D_, L_, Lw_;
  std::vector<double> base_, table_;
};

// ln p(x_n) = logsumexp_u (log_weight[u] + log A(z_u, x_n)): the mixture over hidden states
// with the given log weights (ln pbar for the exact likelihood of appendix A3). Prepared once
// (forward fields, or the 2^L normalizers) and evaluated on pieces of a large X. Binary layers
// of at most kEnumerateMaxL units with many states are enumerated (repeated states: their
// weights are added): from 1/64 of the 2^L states on, a pass over all 2^L states costs less
// than the sum over the active pixels of each given state.
class MixtureLikelihood {
 public:
  MixtureLikelihood(const Model& m, const std::vector<uint64_t>& states, const Eigen::VectorXd& log_weight)
      : log_weight_(log_weight) {
    if (m.s.hidden == Hidden::Binary && m.s.L <= kEnumerateMaxL && 64 * states.size() >= (std::size_t(1) << m.s.L)) {
      std::vector<double> lw(std::size_t(1) << m.s.L, -std::numeric_limits<double>::infinity());
      for (std::size_t u = 0; u < states.size(); ++u) {
        double& t = lw[states[u]];
        const double w = log_weight[Eigen::Index(u)];
        if (t == -std::numeric_limits<double>::infinity()) {
          t = w;
        } else if (w != -std::numeric_limits<double>::infinity()) {
          const double hi = std::max(t, w), lo = std::min(t, w);
          t = hi + std::log1p(std::exp(lo - hi));
        }
      }
      enumerated_.emplace_back(m, lw);
    } else {
      compute_forward_fields(m.s, m.p, states, f_);
    }
  }

  Eigen::VectorXd operator()(const std::vector<Span>& X) const {
    if (!enumerated_.empty()) return enumerated_.front()(X);
    RowMatrixXd la;
    log_forward_kernel(f_, X, la);
    const long N = la.rows();
    const int U = int(la.cols());
    la.rowwise() += log_weight_.transpose();
    Eigen::VectorXd out(N);
    std::vector<double> shift, e;
    for (long n0 = 0; n0 < N; n0 += 512)  // in pieces: the scratch stays small for any U
      row_logsumexp(la.data() + std::size_t(n0) * U, std::min(N - n0, 512L), U, out.data() + n0, shift, e);
    return out;
  }

 private:
  Eigen::VectorXd log_weight_;
  ForwardFields f_;
  std::vector<EnumeratedLikelihood> enumerated_;  // one entry when the states are enumerated
};

inline Eigen::VectorXd log_mixture_likelihood(const Model& m, const std::vector<uint64_t>& states,
                                              const Eigen::VectorXd& log_weight, const std::vector<Span>& X) {
  return MixtureLikelihood(m, states, log_weight)(X);
}

}  // namespace nemm
