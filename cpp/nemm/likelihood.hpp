// Log-domain likelihood: log A(z, x) = sum_i [x_i h_i - softplus(h_i)] with h = w z + a, summed
// over the active pixels of x only. No product of probabilities is ever formed.
#pragma once
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.hpp"

namespace nemm {

// Active-pixel lists of the rows of a dense 0/1 matrix.
struct SparseRows {
  std::vector<int64_t> start;  // n+1
  std::vector<int32_t> idx;

  SparseRows() = default;
  SparseRows(const uint8_t* X, long n, int D) {
    start.assign(n + 1, 0);
    for (long r = 0; r < n; ++r) {  // first pass: row lengths, so the second never reallocates
      const uint8_t* x = X + std::size_t(r) * D;
      int64_t c = 0;
      for (int i = 0; i < D; ++i) c += x[i] != 0;
      start[r + 1] = start[r] + c;
    }
    idx.resize(std::size_t(start[n]) + 1);  // +1: the compaction writes one slot past a row
    for (long r = 0; r < n; ++r) {
      const uint8_t* x = X + std::size_t(r) * D;
      int32_t* o = idx.data() + start[r];
      int64_t c = 0;
      for (int i = 0; i < D; ++i) {  // branch-free compaction
        o[c] = i;
        c += x[i] != 0;
      }
    }
    idx.resize(std::size_t(start[n]));
  }
  long size() const { return long(start.size()) - 1; }
  Span row(long r) const { return Span{idx.data() + start[r], int32_t(start[r + 1] - start[r])}; }
  std::vector<Span> spans() const {
    std::vector<Span> out(size());
    for (long r = 0; r < size(); ++r) out[r] = row(r);
    return out;
  }
  std::vector<Span> spans(const int64_t* rows, long n) const {
    std::vector<Span> out(n);
    for (long k = 0; k < n; ++k) out[k] = row(rows[k]);
    return out;
  }
};

// out[n, u] = log A(z_u, x_n) for the hidden states whose fields f were built (N x U).
inline void log_forward_kernel(const ForwardFields& f, const std::vector<Span>& X, RowMatrixXd& out) {
  const long N = long(X.size());
  const int U = int(f.sp.size()), Uq = int(f.H.cols());
  out.resize(N, U);
  std::vector<double> init(Uq, 0.0);
  for (int u = 0; u < U; ++u) init[u] = -f.sp[u];
#pragma omp parallel if (N > 1024)  // a minibatch stays on the calling thread
  {
    std::vector<double> row(Uq);
#pragma omp for schedule(static)
    for (long n = 0; n < N; ++n) {
      sum_rows(f.H.data(), Uq, X[n], init.data(), row.data(), Uq);
      std::memcpy(out.data() + std::size_t(n) * U, row.data(), sizeof(double) * U);
    }
  }
}

inline double logsumexp(const double* v, int n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) m = std::max(m, v[i]);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (int i = 0; i < n; ++i) s += exp_nonpositive(v[i] - m);
  return m + std::log(s);
}

// ln p(x_n) = logsumexp_u (log_weight[u] + log A(z_u, x_n)): the mixture over hidden states
// with the given log weights (ln pbar for the exact likelihood of appendix A3).
inline Eigen::VectorXd log_mixture_likelihood(const Model& m, const std::vector<uint64_t>& states,
                                              const Eigen::VectorXd& log_weight, const std::vector<Span>& X) {
  const ForwardFields f = compute_forward_fields(m.s, m.p, states);
  RowMatrixXd la;
  log_forward_kernel(f, X, la);
  const long N = la.rows();
  const int U = int(la.cols());
  Eigen::VectorXd out(N);
  for (long n = 0; n < N; ++n) {
    la.row(n) += log_weight.transpose();
    out[n] = logsumexp(la.data() + std::size_t(n) * U, U);
  }
  return out;
}

}  // namespace nemm
